"""Decoded crops of a real dataset's split: decoded once, on disk, memory-mapped by every reader.

A real split is decoded image by image (JPEG/PNG, mirror, crop, resize). The store does that once per
split, in a process pool over the cores, into cache_dir()/store/<dataset>/<split>-<digest>-<size>/:

- images.npy     uint8 (N, 3, S, S), memory-mapped by every training and worker that reads the split,
                 so processes on one machine share one copy in the page cache instead of each holding
                 its own in RAM;
- labels.npz     xyz (N, 21, 3) mm, uv (N, 21, 2), K (N, 3, 3) float32 and visible (N, 21) bool;
- manifest.json  what the entry was built from, written last.

The key is the loader's digest (the one in a run's identity: name, split, root, the annotation files'
size and mtime, crop size, n) and the crop size. A build holds a file lock, so processes that want the
same store build it once and the others wait, then map it; it writes into a temporary folder that is
renamed into place only when complete, so a killed build never leaves a half store. Each crop is the
loader's own sample (repro.data.real.common.build_sample), so a stored sample equals a loaded one.
The loader has checked its split's layout (annotation files, image counts) when it was opened, before
any image is decoded here.
"""

import json
import multiprocessing
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from repro.data.cache import default_workers
from repro.data.errors import DataError
from repro.data.sample import HandSample
from repro.files import building, write_json
from repro.paths import cache_dir

# Bump when the files or the crop rule change: a store of another format is rebuilt.
FORMAT = 1
# Samples per decoding task: enough to amortise a task's round trip, few enough for a smooth progress bar;
# a split of a few chunks is decoded in-process (repro.data.cache.default_workers), sparing the pool's start.
CHUNK = 256
LABELS = {"xyz": (np.float32, (21, 3)), "uv": (np.float32, (21, 2)), "K": (np.float32, (3, 3)), "visible": (np.bool_, (21,))}


def store_dir(dataset) -> Path:
    """Where the store of `dataset` (an opened real split: name, split, size, digest) lives."""
    return cache_dir() / "store" / dataset.name / f"{dataset.split}-{dataset.digest[:16]}-{dataset.size}"


def _manifest(dataset) -> dict:
    return {
        "format": FORMAT,
        "dataset": dataset.name,
        "split": dataset.split,
        "digest": dataset.digest,
        "size": dataset.size,
        "n": len(dataset),
    }


def _complete(folder: Path, manifest: dict) -> bool:
    path = folder / "manifest.json"
    return path.is_file() and json.loads(path.read_text()) == manifest


def open_store(dataset, workers: int | None = None) -> "StoredSplit":
    """The store of `dataset`, built first when there is none. workers: decoding processes (default:
    repro.data.cache.default_workers, one per core; 1 decodes in this process)."""
    folder, manifest = store_dir(dataset), _manifest(dataset)
    if not _complete(folder, manifest):  # a built store is mapped without taking the lock
        with building(folder):
            if not _complete(folder, manifest):  # another process may have built it while we waited
                _build(dataset, folder, manifest, workers)
    return StoredSplit(dataset, folder)


def _build(dataset, folder: Path, manifest: dict, workers: int | None) -> None:
    """Decode every sample of `dataset` into `folder`.building, then swap it in for whatever `folder` held."""
    n, size = len(dataset), dataset.size
    tmp = folder.with_name(folder.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)  # a killed build's leftovers: only the lock holder builds
    tmp.mkdir(parents=True)
    try:
        _require_space(dataset, tmp, n * 3 * size * size)
        # Header and file size written here; the decoders fill the data through maps of their own.
        np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, 3, size, size)).flush()
        labels = {key: np.zeros((n, *shape), dtype=dtype) for key, (dtype, shape) in LABELS.items()}
        ranges = [(start, min(n, start + CHUNK)) for start in range(0, n, CHUNK)]
        workers = workers or default_workers(len(ranges))
        desc = f"decode {dataset.name}/{dataset.split} ({workers} worker{'s' * (workers > 1)})"
        with tqdm(total=n, desc=desc, unit="img") as bar:
            for (start, stop), part in zip(ranges, _decoded(dataset, tmp / "images.npy", ranges, workers)):
                for key, value in part.items():
                    labels[key][start:stop] = value
                bar.update(stop - start)
        np.savez(tmp / "labels.npz", **labels)
        write_json(manifest, tmp / "manifest.json")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = folder.with_name(folder.name + ".stale")
    if folder.exists():  # a store of another format; readers that still map it keep their pages
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _require_space(dataset, folder: Path, need: int) -> None:
    """The store's images are a sparse file filled through memory maps: a disk that fills up mid-build
    kills the decoders with SIGBUS, no message. So the space is checked first (the labels are small)."""
    free = shutil.disk_usage(folder).free
    if free < need:
        raise DataError(
            f"{folder}: the crop store of {dataset.name}/{dataset.split} needs {need / 2**30:.2f} GiB and that disk has "
            f"{free / 2**30:.2f} GiB free; free space there or point $REPRO_CACHE at a larger disk"
        )


def _decode_into(dataset, images: np.ndarray, start: int, stop: int) -> dict:
    """Samples start..stop-1 of `dataset`: crops written into `images`, labels returned."""
    samples = [dataset[i] for i in range(start, stop)]
    images[start:stop] = np.stack([s.image.numpy() for s in samples])
    return {key: np.stack([getattr(s, key).numpy() for s in samples]) for key in LABELS}


_WORKER: dict = {}  # a pool process's dataset and its map of the images file


def _init_worker(dataset, images_path: Path) -> None:
    torch.set_num_threads(1)  # one process per core already
    _WORKER.update(dataset=dataset, images=np.load(images_path, mmap_mode="r+"))


def _decode_chunk(start: int, stop: int) -> dict:
    return _decode_into(_WORKER["dataset"], _WORKER["images"], start, stop)


def _decoded(dataset, images_path: Path, ranges: list[tuple[int, int]], workers: int) -> Iterator[dict]:
    """The labels of each range, in order, after its crops were written; in `workers` processes when > 1."""
    if workers <= 1:
        images = np.load(images_path, mmap_mode="r+")
        for start, stop in ranges:
            yield _decode_into(dataset, images, start, stop)
        return
    # forkserver, not fork: the caller may hold threads (MLflow, torch) whose locks a fork would copy.
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(dataset, images_path)) as pool:
        yield from pool.map(_decode_chunk, [start for start, _ in ranges], [stop for _, stop in ranges])


class StoredSplit(Sequence):
    """A real split read from its store: `images` uint8 (N, 3, S, S) memory-mapped, `labels` in memory.

    Stands in for its loader where a split's samples are read (training, the CLIP feature cache): the
    same digest, length and pose groups, and sample i equal to the loader's (meta aside)."""

    def __init__(self, dataset, folder: Path):
        self.dataset = dataset
        self.folder = folder
        self.name, self.split, self.size = dataset.name, dataset.split, dataset.size
        # Copy-on-write: torch wants a writable array, and pages nobody writes stay shared with every reader.
        self.images = torch.from_numpy(np.load(folder / "images.npy", mmap_mode="c"))
        with np.load(folder / "labels.npz") as stored:
            self.labels = {key: torch.from_numpy(stored[key]) for key in LABELS}

    @property
    def digest(self) -> str:
        return self.dataset.digest

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> HandSample:
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.name} {self.split}: index {i} out of range for {len(self)} samples")
        i %= len(self)
        return HandSample(
            image=self.images[i],
            xyz=self.labels["xyz"][i],
            uv=self.labels["uv"][i],
            visible=self.labels["visible"][i],
            K=self.labels["K"][i],
            meta={"store": str(self.folder), "index": i},
        )

    def pose_groups(self) -> torch.Tensor:
        return self.dataset.pose_groups()
