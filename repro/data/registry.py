"""Registry of datasets by name: synthetic domains and the real datasets' loaders.

A factory takes (root, split, n, size) and returns a sequence of HandSample. Modules register themselves
with `@register_dataset`; `open_dataset` imports the built-in ones on first use.
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
    needs_root: bool
    splits: tuple[str, ...]
    default_split: str
    description: str


DATASETS: dict[str, DatasetEntry] = {}
_BUILTIN_MODULES = ("repro.data.synthetic", "repro.data.real.freihand", "repro.data.real.rhd", "repro.data.real.stb")


def register_dataset(name: str, *, needs_root: bool, splits: tuple[str, ...], default_split: str, description: str):
    def wrap(factory: Factory) -> Factory:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} registered twice")
        DATASETS[name] = DatasetEntry(name, factory, needs_root, splits, default_split, description)
        return factory

    return wrap


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        import_module(module)


def dataset_names() -> list[str]:
    _load_builtins()
    return sorted(DATASETS)


def open_dataset(name: str, root: str | Path | None = None, split: str | None = None, n: int | None = None, size: int = DEFAULT_SIZE) -> Sequence[HandSample]:
    """Open dataset `name` with crops of `size` px; real datasets need `root`, synthetic ones render
    (or read their cache)."""
    _load_builtins()
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    entry = DATASETS[name]
    split = split or entry.default_split
    if split not in entry.splits:
        raise DataError(f"dataset {name!r} has no split {split!r}; expected one of {entry.splits}")
    if entry.needs_root and root is None:
        raise DataError(f"dataset {name!r} reads files from disk: pass --root PATH")
    return entry.factory(Path(root) if root is not None else None, split, n, size)
