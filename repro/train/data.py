"""A dataset's split as tensors, by role (train / val / test) and dataset name.

Synthetic splits come from their render cache; real ones from their decoded-crop store
(repro.data.store), whose images stay on disk, memory-mapped and shared by every process that reads
them. A run opens every split it reads (repro.train.identity) before loading any: opening a real
split checks its layout, so a missing file fails before any image is decoded."""

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from repro.data.domains import DOMAINS, diagnostics_of, restyled_twin_of
from repro.data.errors import DataError
from repro.data.registry import dataset_root, is_synthetic, open_dataset
from repro.data.store import open_store

# dataset -> role -> split name; real datasets read <data_root>/<dataset>/ (rhd: the RHD_published_v2 folder).
SPLIT_OF_ROLE = {
    "synth-frei": {"train": "train", "val": "val", "test": "test"},
    "synth-stb": {"test": "test"},
    "synth-rhd": {"test": "test"},
    # Every diagnostic target is a test set, every restyled twin a training set (repro.data.domains).
    **{d.name: {"test": "test"} for d in DOMAINS.values() if d.diagnoses is not None},
    **{d.name: {"train": "train"} for d in DOMAINS.values() if d.restyles is not None},
    "freihand": {"train": "training", "val": "evaluation"},
    "stb": {"train": "train", "test": "test"},
    "rhd": {"train": "training", "test": "evaluation"},
}


def restyled_twin(source: str) -> str:
    """The dataset whose sample i is `source`'s training sample i re-rendered in another style."""
    twin = restyled_twin_of(source)
    if twin is None:
        raise DataError(
            f"the restyle objectives need a source with a restyled twin (a synthetic domain re-rendered in other styles); {source!r} has none"
        )
    return twin


def evaluated_splits(targets: tuple[str, ...]) -> list[str]:
    """The test datasets a run evaluates: its targets, each followed by its diagnostic targets (the
    target's styles with the source's views, and the reverse; repro.data.domains.diagnostics_of)."""
    return [name for t in targets for name in (t, *diagnostics_of(t))]


class Rows:
    """Rows `index` of an image tensor, gathered when indexed: a subset of a memory-mapped store that
    reads only the batches asked for (images[mask] would copy nine tenths of a 25 GB store into RAM
    for every cross-validation fold)."""

    def __init__(self, images: torch.Tensor, index: torch.Tensor):
        self.images, self.index = images, index

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> torch.Tensor:
        return self.images[self.index[key]]


@dataclass
class SplitTensors:
    name: str  # e.g. "synth-stb"
    split: str
    images: torch.Tensor | Rows  # uint8 (N, 3, S, S); a real split's is memory-mapped from its store
    xyz: torch.Tensor  # (N, 21, 3) mm
    uv: torch.Tensor  # (N, 21, 2) crop pixels
    visible: torch.Tensor  # (N, 21)
    digest: str
    dataset: object  # the underlying sequence (for the CLIP feature cache): a render cache or a crop store

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, mask: torch.Tensor, label: str) -> "SplitTensors":
        """The samples where `mask` is true, e.g. one cross-validation fold; its images are read from
        the split's own (a store's stay on disk), its labels copied."""
        digest = hashlib.sha256(f"{self.digest}:{label}".encode()).hexdigest()
        index = mask.nonzero().squeeze(1)
        images = Rows(self.images.images, self.images.index[index]) if isinstance(self.images, Rows) else Rows(self.images, index)
        return dataclasses.replace(
            self,
            split=f"{self.split}[{label}]",
            images=images,
            xyz=self.xyz[mask],
            uv=self.uv[mask],
            visible=self.visible[mask],
            digest=digest,
        )


CV_SEED = 0  # the one fixed shuffle of pose groups behind every cross-validation fold
# Names how cv_split deals samples to folds, in the identity of every cross-validation run
# (repro.train.identity), so that a run on folds dealt another way (before v1: index mod k) is not reused.
CV_DEALING = f"pose-groups/mix64-round-robin/seed{CV_SEED}/v1"


def pose_groups(split: SplitTensors) -> torch.Tensor:
    """(N,) int64: the pose group of each sample of `split`, from its dataset's `pose_groups()` (FreiHAND:
    annotation i % 32560, so a pose's 4 background versions share a group); a dataset without the
    method: each sample its own group."""
    method = getattr(split.dataset, "pose_groups", None)
    groups = torch.arange(len(split)) if method is None else torch.as_tensor(method(), dtype=torch.long)
    if groups.shape != (len(split),):
        raise DataError(
            f"{split.name}/{split.split}: its dataset gives {tuple(groups.shape)} pose groups for "
            f"{len(split)} samples (a subset's dataset is still the whole split's: pass groups)"
        )
    return groups


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fixed bijection of uint64 that scrambles the bits (same on every machine)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def fold_of_groups(groups: torch.Tensor, folds: int, seed: int = CV_SEED) -> torch.Tensor:
    """(N,) int64: the fold of each sample. The distinct groups are shuffled by a seeded hash of their id
    and dealt round-robin (j-th group in shuffled order -> fold j mod k): every group lies in one fold
    and the folds hold as many groups as possible equally (sizes differ by at most one group). Pure:
    the same groups give the same folds on any machine and library version."""
    if folds < 2:
        raise DataError(f"cross-validation needs at least 2 folds, got {folds}")
    unique, inverse = torch.unique(groups.long(), return_inverse=True)
    if len(unique) < folds:
        raise DataError(f"{folds}-fold cross-validation needs at least {folds} pose groups, got {len(unique)}")
    ids = unique.numpy().astype(np.uint64)  # two's complement for negative ids: still distinct
    with np.errstate(over="ignore"):
        keys = _mix64(ids ^ _mix64(np.full_like(ids, seed) + np.uint64(0x9E3779B97F4A7C15)))
    order = np.lexsort((unique.numpy(), keys))  # by key; the id breaks (improbable) ties
    fold_of_unique = torch.empty(len(unique), dtype=torch.long)
    fold_of_unique[torch.from_numpy(order)] = torch.arange(len(unique)) % folds
    return fold_of_unique[inverse]


def cv_split(
    train: SplitTensors, folds: int, fold: int, groups: torch.Tensor | None = None
) -> tuple[SplitTensors, SplitTensors, torch.Tensor]:
    """(train without fold k, fold k, the fold's (N,) bool mask over `train`), with folds of whole pose
    groups (fold_of_groups), so no pose has renders on both sides. groups: (N,), default pose_groups(train)."""
    groups = pose_groups(train) if groups is None else torch.as_tensor(groups, dtype=torch.long)
    if groups.shape != (len(train),):
        raise DataError(f"cv_split: {tuple(groups.shape)} pose groups for {len(train)} samples")
    if not 0 <= fold < folds:
        raise DataError(f"cv_split: fold {fold} out of range for {folds} folds")
    held_out = fold_of_groups(groups, folds) == fold
    return train.subset(~held_out, f"cv{fold}of{folds}-train"), train.subset(held_out, f"cv{fold}of{folds}-val"), held_out


@dataclass(frozen=True)
class OpenSplit:
    """A dataset's split opened for a role, not yet in memory: enough for its digest (a run's identity)."""

    name: str  # dataset name, e.g. "synth-stb"
    split: str
    dataset: object

    @property
    def digest(self) -> str:
        return self.dataset.digest


def open_split(name: str, role: str, n: int | None, size: int, data_root: str | None) -> OpenSplit:
    if name not in SPLIT_OF_ROLE or role not in SPLIT_OF_ROLE[name]:
        roles = {k: tuple(v) for k, v in SPLIT_OF_ROLE.items()}
        raise DataError(f"dataset {name!r} has no {role!r} split for training/evaluation; known: {roles}")
    split = SPLIT_OF_ROLE[name][role]
    # A real dataset reads <data_root>/<name>; a synthetic one renders into its cache, never under data_root.
    return OpenSplit(name, split, open_dataset(name, root=dataset_root(name, data_root), split=split, n=n, size=size))


def split_tensors(opened: OpenSplit) -> SplitTensors:
    """The split's tensors: a synthetic split's render cache, a real split's crop store (built on first use)."""
    name, split, dataset = opened.name, opened.split, opened.dataset
    if is_synthetic(name):
        d = dataset.data
        return SplitTensors(name, split, d["image"], d["xyz"], d["uv"], d["visible"], dataset.digest, dataset)
    stored = open_store(dataset)
    labels = stored.labels
    return SplitTensors(name, split, stored.images, labels["xyz"], labels["uv"], labels["visible"], stored.digest, stored)


def load_split(name: str, role: str, n: int | None, size: int, data_root: str | None) -> SplitTensors:
    return split_tensors(open_split(name, role, n, size, data_root))
