"""Synthetic domains as datasets: sample i of (domain, split) is a pure function of
(domain, split, i, GENERATOR_VERSION), rendered in batches and read back from the on-disk cache."""

from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from repro.data import domains
from repro.data.domains import DOMAINS, DomainSpec, split_seed
from repro.data.registry import DEFAULT_SIZE, register_dataset
from repro.data.sample import HandSample
from repro.data.world.scene import draw_scene, render_scenes

STYLE_KEYS = ("hand_colour", "backdrop", "lighting", "scene")


def sample_rng(domain: DomainSpec, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([domains.GENERATOR_VERSION, split_seed(domain, split), index]))


def render_range(domain: DomainSpec, split: str, start: int, stop: int, size: int) -> dict:
    """Render samples start..stop-1: tensors stacked on the first axis, plus captions and styles."""
    scenes = [draw_scene(domain, sample_rng(domain, split, i)) for i in range(start, stop)]
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
        fold. Today every sample draws its own pose, so its group is its index."""
        return torch.arange(len(self))


def _factory(domain_name: str):
    def open_split(root: Path | None, split: str, n: int | None, size: int = DEFAULT_SIZE):
        return SyntheticDataset(domain_name, split, n=n, size=size, root=root)

    return open_split


for _name, _spec in DOMAINS.items():
    register_dataset(_name, needs_root=False, synthetic=True, splits=tuple(_spec.splits), default_split=next(iter(_spec.splits)), description=_spec.description)(_factory(_name))
