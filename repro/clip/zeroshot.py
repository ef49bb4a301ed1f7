"""`repro clip eval`: does a CLIP tell apart the styles of held-out renders, zero-shot?

For each image we rank the 3,920 prompts by cosine similarity and read the words of the best one:
hand-colour top-1 is right if its hand colour is the image's; background top-1 is right if its
colour-slot word is the image's backdrop word, or its lighting word when the render is bright or
dark (the captions use either, so both are true descriptions). Chance is 1/7 and about 1/17.
Image->text R@1/R@5 rank the distinct captions of the evaluated images against each image; the
image's own caption counts as found at rank r if fewer than r captions score strictly higher.
The two top-1 figures come with their 95% Wilson score intervals ("..._ci95"): on 500 renders one
image is 0.2 points, and the interval is about +-2.7 points at 0.90.
"""

from typing import Sequence

import torch
from scipy.stats import binomtest

from repro.clip.encoders import ClipEncoder
from repro.clip.features import image_features, text_features
from repro.clip.prompts import all_parts


def background_right(slot: str, style: dict) -> bool:
    return slot == style["backdrop"] or (style["lighting"] != "normal" and slot == style["lighting"])


def proportion_ci95(hits: int, n: int) -> list[float]:
    """The 95% Wilson score interval [low, high] of a proportion hits / n."""
    interval = binomtest(hits, n).proportion_ci(0.95, method="wilson")
    return [float(interval.low), float(interval.high)]


def evaluate(encoder: ClipEncoder, dataset: Sequence, batch_size: int = 64) -> dict:
    """Zero-shot style accuracy and caption retrieval of `encoder` on `dataset` (captioned, styled)."""
    images = image_features(encoder, dataset, batch_size)
    samples = [dataset[i] for i in range(len(dataset))]
    styles = [s.meta["style"] for s in samples]

    parts = all_parts()
    best = (images @ text_features(encoder).T).argmax(dim=1).tolist()
    colour_hits = [parts[b].hand_colour == st["hand_colour"] for b, st in zip(best, styles)]
    background_hits = [background_right(parts[b].slot, st) for b, st in zip(best, styles)]

    position = {c: i for i, c in enumerate(dict.fromkeys(s.caption for s in samples))}
    captions = list(position)
    own = torch.tensor([position[s.caption] for s in samples])
    scores = images @ text_features(encoder, captions).T
    rank = (scores > scores.gather(1, own[:, None])).sum(dim=1)

    n = len(samples)
    return {
        "clip": encoder.identity,
        "weights": encoder.weights_digest[:12],
        "n": n,
        "hand_colour_top1": sum(colour_hits) / n,
        "hand_colour_top1_ci95": proportion_ci95(sum(colour_hits), n),
        "background_top1": sum(background_hits) / n,
        "background_top1_ci95": proportion_ci95(sum(background_hits), n),
        "n_captions": len(captions),
        "i2t_R@1": (rank < 1).float().mean().item(),
        "i2t_R@5": (rank < 5).float().mean().item(),
    }
