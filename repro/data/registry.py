"""Registry of datasets by name: synthetic domains and the real datasets' loaders.

A factory takes (root, split, n, size) and returns a sequence of HandSample. Modules register themselves
with `@register_dataset`; `open_dataset` imports the built-in ones on first use.

`root` means two things: for a real dataset (synthetic=False) it is the folder holding its files,
`<data_root>/<name>`; for a synthetic one it is the root of its render cache (None: cache_dir()/data).
Callers that hold a --data-root get the right `root` from `dataset_root(name, data_root)`, which never
puts a synthetic cache under --data-root.
"""

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Callable, Sequence

from repro.data.errors import DataError
from repro.data.sample import HandSample

Factory = Callable[[Path | None, str, int | None, int], Sequence[HandSample]]
DEFAULT_SIZE = 128  # crop side in pixels


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    factory: Factory
    synthetic: bool  # rendered by this suite (cached under cache_dir()); False: a real dataset read from disk
    splits: tuple[str, ...]
    default_split: str
    description: str


DATASETS: dict[str, DatasetEntry] = {}
_BUILTIN_MODULES = ("repro.data.synthetic", "repro.data.real.freihand", "repro.data.real.rhd", "repro.data.real.stb")


def register_dataset(name: str, *, synthetic: bool, splits: tuple[str, ...], default_split: str, description: str):
    def wrap(factory: Factory) -> Factory:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} registered twice")
        DATASETS[name] = DatasetEntry(name, factory, synthetic, splits, default_split, description)
        return factory

    return wrap


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        import_module(module)


def dataset_entry(name: str) -> DatasetEntry:
    """The registry entry of dataset `name` (DataError listing the known ones if there is none)."""
    _load_builtins()
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def is_synthetic(name: str) -> bool:
    """Whether dataset `name` is rendered by this suite (DataError if it is unknown)."""
    return dataset_entry(name).synthetic


def dataset_root(name: str, data_root: str | Path | None) -> Path | None:
    """The `root` to open dataset `name` with, given a --data-root folder: `<data_root>/<name>` for a real
    dataset, None for a synthetic one (its cache root is cache_dir(), never under --data-root)."""
    entry = dataset_entry(name)
    if entry.synthetic:
        return None
    if data_root is None:
        raise DataError(f"dataset {name!r} is read from disk: pass --data-root PATH (a folder holding {name}/)")
    return Path(data_root) / name


def open_dataset(
    name: str, root: str | Path | None = None, split: str | None = None, n: int | None = None, size: int = DEFAULT_SIZE
) -> Sequence[HandSample]:
    """Open dataset `name` with crops of `size` px; real datasets need `root`, synthetic ones render
    (or read their cache)."""
    entry = dataset_entry(name)
    split = split or entry.default_split
    if split not in entry.splits:
        raise DataError(f"dataset {name!r} has no split {split!r}; expected one of {entry.splits}")
    if not entry.synthetic and root is None:
        raise DataError(f"dataset {name!r} reads files from disk: pass --root PATH")
    return entry.factory(Path(root) if root is not None else None, split, n, size)
