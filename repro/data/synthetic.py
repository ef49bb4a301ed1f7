"""Synthetic domains as datasets: sample i of (domain, split) is a pure function of
(domain, split, i, GENERATOR_VERSION), rendered in batches and read back from the on-disk cache."""

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from repro.data import domains
from repro.data.domains import DOMAINS, DomainSpec, split_seed
from repro.data.registry import DEFAULT_SIZE, register_dataset
from repro.data.sample import HandSample
from repro.data.world.scene import draw_scene, render_scenes, restyle_scene

STYLE_KEYS = ("hand_colour", "backdrop", "lighting", "scene")
_POSE, _BACKGROUND = 1, 2  # tags that keep a pose's generator apart from its versions' background generators


def _rng(entropy: list[int]) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([domains.GENERATOR_VERSION, *entropy]))


def sample_rng(domain: DomainSpec, split: str, index: int) -> np.random.Generator:
    """The generator of sample `index` of a domain without versions (and of a twin's restyling)."""
    return _rng([split_seed(domain, split), index])


def draw_sample(domain: DomainSpec, split: str, index: int) -> dict:
    """The drawn scene of sample `index`: a pure function of (domain, split, index, GENERATOR_VERSION).

    A domain with versions shows pose index // versions in version index % versions: the pose, hand,
    camera, crop, hand colour and light come from the pose's generator, the background from the
    (pose, version)'s. A twin (spec.restyles) is its source's sample in another style (restyled_sample)."""
    if domain.restyles is not None:
        return restyled_sample(domain, split, index)
    if domain.versions == 1:
        return draw_scene(domain, sample_rng(domain, split, index))
    pose, version = divmod(index, domain.versions)
    seed = split_seed(domain, split)
    return draw_scene(domain, _rng([seed, pose, _POSE]), version=version, background_rng=_rng([seed, pose, _BACKGROUND, version + 1]))


def restyled_sample(twin: DomainSpec, split: str, index: int) -> dict:
    """Sample `index` of twin.restyles (same hand, pose, camera, crop: the same joints, uv, K and
    visibility) re-rendered in a style drawn uniformly from the twin's pools (hand colour x backdrop x
    lighting x scene) less the original's own style, from the twin's own seed block."""
    original = draw_sample(twin.restyles, split, index)
    own = tuple(original[k] for k in STYLE_KEYS)
    pools = (twin.hand_colours, twin.backdrops, twin.lighting, twin.scenes)  # in STYLE_KEYS order
    rng = sample_rng(twin, split, index)
    while True:  # rejection: uniform over every other style, one draw but rarely two
        style = tuple(pool[int(rng.integers(len(pool)))] for pool in pools)
        if style != own:
            return restyle_scene(original, dict(zip(STYLE_KEYS, style)), rng)


def render_range(domain: DomainSpec, split: str, start: int, stop: int, size: int) -> dict:
    """Render samples start..stop-1: tensors stacked on the first axis, plus captions and styles."""
    scenes = [draw_sample(domain, split, i) for i in range(start, stop)]
    out = render_scenes(scenes, size)
    out.pop("depth")
    out["caption"] = [s["caption"] for s in scenes]
    out["style"] = [{k: s[k] for k in STYLE_KEYS} for s in scenes]
    return out


class SyntheticDataset:
    """A rendered split held in memory (images uint8); built into the cache on first use."""

    def __init__(self, domain: str, split: str, n: int | None = None, size: int = DEFAULT_SIZE, root: Path | None = None):
        from repro.data.cache import open_domain  # the cache depends on this module's renderer

        self.domain = DOMAINS[domain]
        self.split = split
        self.name = domain
        self.size = size
        self._path, self.manifest = open_domain(domain, split, n=n, size=size, root=root)

    @cached_property
    def data(self) -> dict:
        """The split's tensors, read on first use: a digest or a length needs only the manifest."""
        from repro.data.cache import load_shards

        return load_shards(self._path, self.manifest)

    def shards(self) -> Iterator[tuple[int, dict]]:
        """(index of its first sample, its tensors) of each cache shard in order, one in memory at a
        time: for a pass over a split too large to hold (repro data export)."""
        from repro.data.cache import load_shard

        start = 0
        for shard in self.manifest["shards"]:
            yield start, load_shard(self._path, shard)
            start += shard["count"]

    @property
    def digest(self) -> str:
        return self.manifest["digest"]

    def __len__(self) -> int:
        return sum(shard["count"] for shard in self.manifest["shards"])

    def __getitem__(self, i: int) -> HandSample:
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.name}/{self.split} has {len(self)} samples, asked for {i}")
        d = self.data
        return HandSample(
            image=d["image"][i],
            xyz=d["xyz"][i],
            uv=d["uv"][i],
            visible=d["visible"][i],
            K=d["K"][i],
            caption=d["caption"][i],
            meta={"domain": self.name, "split": self.split, "index": i % len(self), "style": d["style"][i], "mirrored": False},
        )

    def pose_groups(self) -> torch.Tensor:
        """(N,) int64: the pose each sample shows, so that cross-validation keeps a pose's renders in one
        fold: index // versions (the domain's spec), so a pose's versions (backgrounds) share a group;
        a domain without versions draws a pose per sample, its group is its index. n keeps the first
        n samples, whose position is their index."""
        return torch.arange(len(self)) // self.domain.versions


def _factory(domain_name: str):
    def open_split(root: Path | None, split: str, n: int | None, size: int = DEFAULT_SIZE):
        return SyntheticDataset(domain_name, split, n=n, size=size, root=root)

    return open_split


for _name, _spec in DOMAINS.items():
    register_dataset(
        _name,
        synthetic=True,
        splits=tuple(_spec.splits),
        default_split=next(iter(_spec.splits)),
        description=_spec.description,
    )(_factory(_name))
