"""Fig. 4: retrieval with CLIP-augmented queries, plus a number for it the paper does not give.

For a source image x and a prompt t, the query q = r * f_CI(x) + (1 - r) * f_CT(t) ranks the other
source images g by cos(q, f_CI(g)) (paper Fig. 4; r = 0.6 by default, the paper's STB ratio).

precision@k of the prompt's style. The synthetic world records each render's style (meta["style"]).
Each (query image, prompt) pair changes exactly one style attribute of the query image, to a word
that some gallery image carries and the query image does not:
- "hand_colour": the prompt's hand colour word; an image carries it iff style["hand_colour"] is it;
- "slot": the prompt's colour-slot word; "bright" / "dark" are carried iff style["lighting"] is that
  word, any other slot word (a backdrop colour, pattern or scenery) iff style["backdrop"] is.
The rest of the prompt describes the query image itself (its hand colour, its backdrop word, its
scene word; head and hand word drawn at random), so only the text can move the retrieval to the
changed word. precision@k = the share of the k retrieved images that carry the changed word,
averaged over the pairs. Baseline: the image-only query (r = 1) on the same pairs. chance: the share
of the gallery (query excluded) that carries the word. An attribute the gallery shows one value of
cannot be changed: synth-frei shows one backdrop (green) and one lighting (bright), so on it every
pair changes the hand colour (among its three).
"""

import random
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from repro.clip.features import mix_features
from repro.clip.prompts import HANDS, HEADS, LIGHTING_WORDS, caption
from repro.config import ConfigError
from repro.data.errors import DataError
from repro.files import write_json
from repro.report.figures import new_figure, save_png

ATTRIBUTES = ("hand_colour", "slot")
DEFINITIONS = {
    "precision_at_k": "share of the top-k retrieved gallery images (query excluded) that carry the prompt's changed style word, "
    "mean over pairs; hand colour: style.hand_colour == word; slot word: style.lighting == word for bright/dark, "
    "else style.backdrop == word",
    "precision_at_k_image_only": "the same for the image-only query (r = 1) on the same pairs",
    "chance": "share of the gallery (query excluded) carrying the word, mean over pairs",
}


class Pair(NamedTuple):
    query: int  # gallery index of the query image
    attribute: str  # which style attribute the prompt changes: "hand_colour" or "slot"
    word: str  # the word it changes it to
    prompt: str


def carries(style: dict, attribute: str, word: str) -> bool:
    if attribute == "hand_colour":
        return style["hand_colour"] == word
    return style["lighting"] == word if word in LIGHTING_WORDS else style["backdrop"] == word


def own_word(style: dict, attribute: str, word: str) -> str:
    """What the image shows where a pair changes `attribute` to `word` (for labels)."""
    if attribute == "hand_colour":
        return style["hand_colour"]
    return style["lighting"] if word in LIGHTING_WORDS else style["backdrop"]


def gallery_words(styles: list[dict]) -> dict[str, list[str]]:
    """The words of each attribute that at least one gallery image carries."""
    slot = {s["backdrop"] for s in styles} | {s["lighting"] for s in styles if s["lighting"] in LIGHTING_WORDS}
    return {"hand_colour": sorted({s["hand_colour"] for s in styles}), "slot": sorted(slot)}


def draw_pairs(styles: list[dict], count: int, seed: int) -> list[Pair]:
    """`count` seeded pairs: a query image, then an attribute it can be moved on (uniformly), then a word."""
    rng = random.Random(seed)
    words = gallery_words(styles)
    options = [{a: [w for w in words[a] if not carries(s, a, w)] for a in ATTRIBUTES} for s in styles]
    movable = [i for i, o in enumerate(options) if any(o.values())]
    if not movable:
        raise DataError("every gallery image has the same style: no prompt can move a query to a style the gallery shows")
    pairs = []
    for _ in range(count):
        q = rng.choice(movable)
        style, choices = styles[q], options[q]
        attribute = rng.choice([a for a in ATTRIBUTES if choices[a]])
        word = rng.choice(choices[attribute])
        prompt = caption(
            rng.choice(HEADS),
            word if attribute == "hand_colour" else style["hand_colour"],
            rng.choice(HANDS),
            word if attribute == "slot" else style["backdrop"],
            style["scene"],
        )
        pairs.append(Pair(q, attribute, word, prompt))
    return pairs


def relevance(styles: list[dict], pairs: list[Pair]) -> torch.Tensor:
    """bool (pairs, gallery): whether gallery image g carries pair p's changed word."""
    masks = {}
    for p in pairs:
        if (p.attribute, p.word) not in masks:
            masks[p.attribute, p.word] = torch.tensor([carries(s, p.attribute, p.word) for s in styles])
    return torch.stack([masks[p.attribute, p.word] for p in pairs])


def retrieve(queries: torch.Tensor, gallery: torch.Tensor, exclude: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k gallery rows by cosine similarity per query row, never the row `exclude[p]`: (indices, similarities)."""
    sims = F.normalize(queries.double(), dim=-1) @ F.normalize(gallery.double(), dim=-1).T
    sims[torch.arange(len(queries)), exclude] = float("-inf")
    top = sims.topk(k, dim=1)
    return top.indices, top.values


def precision_at_k(indices: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Per query: the share of its retrieved indices (P, k) that are relevant (P, N)."""
    return relevant.gather(1, indices).double().mean(dim=1)


def precision_report(
    f_gallery: torch.Tensor, f_prompts: torch.Tensor, pairs: list[Pair], relevant: torch.Tensor, ratio: float, k: int
) -> dict:
    """precision@k of the mixed and the image-only query and chance, overall and per attribute."""
    exclude = torch.tensor([p.query for p in pairs])
    images = f_gallery[exclude]
    mixed = precision_at_k(retrieve(mix_features(images, f_prompts, ratio), f_gallery, exclude, k)[0], relevant)
    image_only = precision_at_k(retrieve(images, f_gallery, exclude, k)[0], relevant)
    chance = relevant.double().sum(dim=1) / (len(f_gallery) - 1)  # the query never carries its pair's word

    def summary(mask):
        return {
            "pairs": int(mask.sum()),
            "precision_at_k": float(mixed[mask].mean()),
            "precision_at_k_image_only": float(image_only[mask].mean()),
            "chance": float(chance[mask].mean()),
        }

    attributes = torch.tensor([ATTRIBUTES.index(p.attribute) for p in pairs])
    by_attribute = {a: summary(attributes == i) for i, a in enumerate(ATTRIBUTES) if (attributes == i).any()}
    return {**summary(torch.ones(len(pairs), dtype=torch.bool)), "by_attribute": by_attribute}


def plot(images: torch.Tensor, styles: list[dict], rows: list[tuple[Pair, torch.Tensor, torch.Tensor]], relevant: torch.Tensor, title: str):
    """One row per pair: the query image, then its top-k (green frame: carries the changed word; red: not)."""
    k = len(rows[0][1])
    fig = new_figure(1.3 * (k + 1), 1.75 * len(rows) + 0.4)
    fig.suptitle(title, fontsize=9)
    for subfig, (pair, indices, sims), rel in zip(fig.subfigures(len(rows), 1, squeeze=False)[:, 0], rows, relevant):
        subfig.suptitle(f'"{pair.prompt}"  ({pair.attribute.replace("_", " ")} -> {pair.word})', fontsize=8)
        tiles = [(pair.query, f"query: {own_word(styles[pair.query], pair.attribute, pair.word)}", "black")] + [
            (int(g), f"cos {s:.3f}", "green" if rel[g] else "red") for g, s in zip(indices.tolist(), sims.tolist())
        ]
        for ax, (g, label, frame) in zip(subfig.subplots(1, k + 1), tiles):
            ax.imshow(images[g].permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(label, fontsize=7)
            for spine in ax.spines.values():
                spine.set_edgecolor(frame)
                spine.set_linewidth(2.5)
    return fig


def run_fig4(
    *,
    clip: str,
    clip_checkpoint,
    n: int,
    ratio: float,
    k: int,
    queries: int,
    pairs: int,
    seed: int,
    source: str,
    data_root: str | None,
    size: int,
    out,
) -> tuple[dict, list]:
    """Compute, draw and write Fig. 4; returns (the numbers, the files written)."""
    from repro.clip.encoders import build_encoder
    from repro.clip.features import image_features, text_features
    from repro.data.registry import is_synthetic
    from repro.train.data import load_split

    gallery = load_split(source, "train", n, size, data_root)
    if not 1 <= k < len(gallery):
        raise ConfigError(f"--k must be between 1 and the gallery size - 1 ({len(gallery) - 1}), got {k}")
    styles = [gallery.dataset[i].meta.get("style") for i in range(len(gallery))]
    if None in styles:
        raise DataError(f"{source} has no style labels (meta['style']): precision@k needs the synthetic world's")
    drawn = draw_pairs(styles, max(pairs, queries), seed)
    encoder = build_encoder(clip, clip_checkpoint)
    f_gallery = image_features(encoder, gallery.dataset)
    f_prompts = text_features(encoder, [p.prompt for p in drawn])
    relevant = relevance(styles, drawn)
    report = precision_report(f_gallery, f_prompts, drawn, relevant, ratio, k)

    shown = drawn[:queries]
    exclude = torch.tensor([p.query for p in shown])
    indices, sims = retrieve(mix_features(f_gallery[exclude], f_prompts[: len(shown)], ratio), f_gallery, exclude, k)
    world = " (synthetic world)" if is_synthetic(source) else ""
    title = (
        f"Fig. 4{world}: {source} images ranked by cos({ratio:g}·f_CI(x) + {1 - ratio:g}·f_CT(t), f_CI)  [{encoder.identity}]\n"
        f"precision@{k} of the prompt's style over {report['pairs']} pairs: {report['precision_at_k']:.2f} "
        f"(image only: {report['precision_at_k_image_only']:.2f}, chance: {report['chance']:.2f})\n"
        f"frame green: carries the prompt's changed word, red: does not"
    )
    fig = plot(gallery.images, styles, list(zip(shown, indices, sims)), relevant[: len(shown)], title)
    numbers = {
        "ratio": ratio,
        "k": k,
        "gallery": f"{source}/{gallery.split}",
        "n_gallery": len(gallery),
        "clip": encoder.identity,
        "clip_weights_digest": encoder.weights_digest,
        "data_digests": {source: gallery.digest},
        **report,
        "definitions": DEFINITIONS,
    }
    out = Path(out)
    return numbers, [save_png(fig, out / "fig4_retrieval.png"), write_json(numbers, out / "fig4_precision.json")]
