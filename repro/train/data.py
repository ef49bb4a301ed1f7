"""A dataset's split as tensors in memory, by role (train / val / test) and dataset name."""

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from repro.data.errors import DataError
from repro.data.registry import DATASETS, open_dataset

# dataset -> role -> split name; real datasets read <data_root>/<dataset>/ (rhd: the RHD_published_v2 folder).
SPLIT_OF_ROLE = {
    "synth-frei": {"train": "train", "val": "val", "test": "test"},
    "synth-stb": {"test": "test"},
    "synth-rhd": {"test": "test"},
    "freihand": {"train": "training", "val": "evaluation"},
    "stb": {"train": "train", "test": "test"},
    "rhd": {"train": "training", "test": "evaluation"},
}


@dataclass
class SplitTensors:
    name: str  # e.g. "synth-stb"
    split: str
    images: torch.Tensor  # uint8 (N, 3, S, S)
    xyz: torch.Tensor  # (N, 21, 3) mm
    uv: torch.Tensor  # (N, 21, 2) crop pixels
    visible: torch.Tensor  # (N, 21)
    digest: str
    dataset: object  # the underlying sequence (for the CLIP feature cache)

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, mask: torch.Tensor, label: str) -> "SplitTensors":
        """The samples where `mask` is true, e.g. one cross-validation fold."""
        digest = hashlib.sha256(f"{self.digest}:{label}".encode()).hexdigest()
        return dataclasses.replace(self, split=f"{self.split}[{label}]", images=self.images[mask], xyz=self.xyz[mask],
                                   uv=self.uv[mask], visible=self.visible[mask], digest=digest)  # fmt: skip


def cv_split(train: SplitTensors, folds: int, fold: int) -> tuple[SplitTensors, SplitTensors, torch.Tensor]:
    """(train without fold k, fold k, the fold's mask): samples are dealt to folds in turn (index mod k)."""
    held_out = torch.arange(len(train)) % folds == fold
    return train.subset(~held_out, f"cv{fold}of{folds}-train"), train.subset(held_out, f"cv{fold}of{folds}-val"), held_out


def load_split(name: str, role: str, n: int | None, size: int, data_root: str | None) -> SplitTensors:
    if name not in SPLIT_OF_ROLE or role not in SPLIT_OF_ROLE[name]:
        roles = {k: tuple(v) for k, v in SPLIT_OF_ROLE.items()}
        raise DataError(f"dataset {name!r} has no {role!r} split for training/evaluation; known: {roles}")
    split = SPLIT_OF_ROLE[name][role]
    root = None
    if DATASETS.get(name) is None or DATASETS[name].needs_root:
        if data_root is None and not name.startswith("synth-"):
            raise DataError(f"dataset {name!r} is read from disk: set data_root (--data-root PATH holding {name}/)")
        root = Path(data_root) / name if data_root else None
    dataset = open_dataset(name, root=root, split=split, n=n, size=size)
    if hasattr(dataset, "data"):  # synthetic splits are already tensors
        d = dataset.data
        return SplitTensors(name, split, d["image"], d["xyz"], d["uv"], d["visible"], dataset.digest, dataset)
    samples = [dataset[i] for i in tqdm(range(len(dataset)), desc=f"load {name}/{split}", unit="img")]
    stack = lambda key: torch.stack([getattr(s, key) for s in samples])  # noqa: E731
    return SplitTensors(name, split, stack("image"), stack("xyz"), stack("uv"), stack("visible"), dataset.digest, dataset)
