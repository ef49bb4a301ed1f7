"""Fig. 3: t-SNE of the CLIP-augmented source features ("aug") against the image features of the
source and of each target, plus two numbers the paper does not give: how much of each target's
feature distribution the aug features cover, compared with the plain source features.

aug = r * f_CI(x) + (1 - r) * f_CT(t) with r = 0.5 (the paper's 0.5 * (f_CI(x) + f_CT(t))), x a
source image and t drawn uniformly (seeded) from the 3,920 prompts. f_CI and f_CT are unit length
and the mix is not renormalised: the features exactly as training feeds them to Branch2.

Coverage, computed in the original feature space (t-SNE keeps neighbourhoods, not distances):
- nn_aug_share: the share of target points whose nearest neighbour (Euclidean) among the aug points
  and the source points together is an aug point. There is one aug and one source point per source
  image, so the two sets are equally large and 0.5 is the no-preference level; a tie counts half.
- mmd2_aug, mmd2_source: the squared maximum mean discrepancy between the empirical distributions of
  the target features and of the aug (resp. source) features, RBF kernel
  k(a, b) = exp(-|a - b|^2 / (2 s^2)) with s = the median pairwise distance of the target, aug and
  source points pooled: one bandwidth for both, so the two numbers compare. V-statistic (biased)
  estimate: exactly 0 for identical sets and never negative. Lower = closer to the target.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
import torch

from repro.config import ConfigError
from repro.files import write_json
from repro.report.figures import new_figure, save_png

AUG = "aug"
DEFINITIONS = {
    "nn_aug_share": "share of target points whose nearest neighbour (Euclidean, original feature space) among the aug and "
    "source points together is an aug point; both sets have one point per source image, so 0.5 = no preference; ties count half",
    "mmd2_aug": "squared MMD (V-statistic) between target and aug features, RBF kernel exp(-d^2 / (2 bandwidth^2)), "
    "bandwidth = median pairwise distance of target, aug and source pooled",
    "mmd2_source": "the same between target and source features, same bandwidth; lower = closer to the target",
}


def nn_aug_share(target: torch.Tensor, aug: torch.Tensor, source: torch.Tensor) -> float:
    """Share of target rows whose nearest row of aug ∪ source is an aug row (ties count half)."""
    d_aug = torch.cdist(target.double(), aug.double()).min(dim=1).values
    d_source = torch.cdist(target.double(), source.double()).min(dim=1).values
    return float(((d_aug < d_source).double() + 0.5 * (d_aug == d_source).double()).mean())


def median_bandwidth(*sets: torch.Tensor) -> float:
    """The median pairwise Euclidean distance of the pooled rows (the median heuristic)."""
    distances = torch.pdist(torch.cat(sets).double())
    positive = distances[distances > 0]
    return float(positive.median()) if len(positive) else 1.0  # all points equal: any bandwidth gives MMD 0


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Squared MMD between the empirical distributions of rows of x and y, RBF kernel (V-statistic)."""

    def kernel_mean(a, b):
        return torch.exp(-torch.cdist(a.double(), b.double()).square() / (2 * bandwidth**2)).mean()

    return float(kernel_mean(x, x) + kernel_mean(y, y) - 2 * kernel_mean(x, y))


def coverage(targets: dict[str, torch.Tensor], aug: torch.Tensor, source: torch.Tensor) -> dict:
    """Per target: nn_aug_share, mmd2_aug, mmd2_source and the bandwidth used (see the module docstring)."""
    out = {}
    for name, target in targets.items():
        s = median_bandwidth(target, aug, source)
        out[name] = {
            "nn_aug_share": nn_aug_share(target, aug, source),
            "mmd2_aug": mmd2(target, aug, s),
            "mmd2_source": mmd2(target, source, s),
            "bandwidth": s,
            "n_target": len(target),
        }
    return out


def tsne_2d(features: torch.Tensor, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = len(features)
    perplexity = min(30.0, (n - 1) / 3)  # sklearn needs perplexity < n; 30 is its default
    tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed)
    # One thread: on a small machine shared with other jobs, sklearn's OpenMP threads spin-wait on each
    # other and a one-second embedding can take a minute; 1,200 points take seconds on one core.
    with threadpool_limits(limits=1):
        return tsne.fit_transform(features.double().numpy())


def summary_lines(cover: dict, source: str) -> list[str]:
    return [
        f"Coverage in the original feature space. NN share: share of target points whose nearest neighbour among aug ∪ {source}",
        f"is an aug point (aug and {source} equally many points: 50% = no preference). MMD²: RBF kernel, lower = closer.",
    ] + [
        f"{name}: NN share {c['nn_aug_share']:.0%}; MMD² to aug {c['mmd2_aug']:.3f}, to {source} {c['mmd2_source']:.3f}"
        for name, c in cover.items()
    ]


def plot(points: pd.DataFrame, title: str, caption: list[str]):
    fig = new_figure(9, 7.5)
    ax = fig.add_subplot()
    sns.scatterplot(data=points, x="x", y="y", hue="set", s=14, alpha=0.7, linewidth=0, ax=ax)
    ax.set(xlabel="t-SNE 1", ylabel="t-SNE 2", xticks=[], yticks=[])
    ax.set_title(title, fontsize=10)
    ax.legend(title=None, markerscale=1.5)
    fig.supxlabel("\n".join(caption), fontsize=7.5, ha="left", x=0.01)
    return fig


def run_fig3(
    *, clip: str, clip_checkpoint, n: int, ratio: float, seed: int, source: str, targets: list[str], data_root: str | None, size: int, out
) -> tuple[dict, list]:
    """Compute, draw and write Fig. 3; returns (the numbers, the files written)."""
    from repro.clip.encoders import build_encoder
    from repro.clip.features import image_features, mix_features, text_features
    from repro.clip.prompts import all_prompts
    from repro.data.registry import is_synthetic
    from repro.train.data import load_split

    if source in targets or AUG in targets:
        raise ConfigError(f"the targets {targets} must not name the source ({source}) or {AUG!r}: each set needs its own label")
    encoder = build_encoder(clip, clip_checkpoint)
    src = load_split(source, "train", n, size, data_root)
    f_source = image_features(encoder, src.dataset)
    prompts = all_prompts()
    drawn = torch.randint(len(prompts), (len(src),), generator=torch.Generator().manual_seed(seed)).tolist()
    # Encode only the drawn sentences: the same rows as indexing f_CT of all 3,920, at a fraction of the cost.
    aug = mix_features(f_source, text_features(encoder, [prompts[i] for i in drawn]), ratio)
    splits = {t: load_split(t, "test", n, size, data_root) for t in targets}
    f_targets = {t: image_features(encoder, split.dataset) for t, split in splits.items()}

    cover = coverage(f_targets, aug, f_source)
    sets = {AUG: aug, source: f_source, **f_targets}
    coords = tsne_2d(torch.cat(list(sets.values())), seed)
    points = pd.DataFrame(
        {
            "set": [name for name, f in sets.items() for _ in range(len(f))],
            "index": [i for f in sets.values() for i in range(len(f))],
            "prompt": [prompts[i] for i in drawn] + [""] * (len(coords) - len(drawn)),
            "x": coords[:, 0],
            "y": coords[:, 1],
        }
    )
    world = " (synthetic world)" if is_synthetic(source) else ""
    title = (
        f"Fig. 3{world}: t-SNE of aug = {ratio:g}·f_CI(x) + {1 - ratio:g}·f_CT(t) for {source} images x and random prompts t,\n"
        f"against f_CI of {source} and of the targets ({encoder.identity}; {len(src)} source images)"
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    numbers = {
        "ratio": ratio,
        "n_source": len(src),
        "source": source,
        "clip": encoder.identity,
        "clip_weights_digest": encoder.weights_digest,
        "data_digests": {s.name: s.digest for s in (src, *splits.values())},
        "coverage": cover,
        "definitions": DEFINITIONS,
    }
    points.to_csv(out / "fig3_tsne.csv", index=False)
    files = [
        save_png(plot(points, title, summary_lines(cover, source)), out / "fig3_tsne.png"),
        out / "fig3_tsne.csv",
        write_json(numbers, out / "fig3_coverage.json"),
    ]
    return numbers, files
