"""On-disk cache of rendered synthetic splits: shards of samples plus a manifest.

A cache directory is reused when its manifest matches the request (domain spec, split, count, size,
generator version) and every shard's checksum matches; otherwise it is rebuilt beside the old one and
swapped in only when complete, so an interrupted build never leaves a half-written cache behind.

Batches render in worker processes, one torch thread each, with glibc's allocator told to keep
freed memory (repro.allocator): the renderer is many elementwise ops on MB-sized temporaries, which
two processes keep busier than two threads in one (bench/render.py; RESULTS.md). A sample is a pure function of its index and renders identically in any batch,
so the cache's bytes do not depend on the number of workers (tested).
"""

import hashlib
import json
import multiprocessing
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from tqdm import tqdm

from repro.allocator import keep_freed_memory
from repro.data import domains
from repro.data.domains import get_domain, split_seed
from repro.data.errors import DataError
from repro.data.registry import DEFAULT_SIZE
from repro.files import building, file_sha256
from repro.paths import cache_dir

SHARD = 1024
RENDER_BATCH = 64
# Starting the pool costs about a second (its forkserver imports torch): only worth it with several batches a worker.
MIN_BATCHES_PER_WORKER = 4


def default_workers(n_batches: int) -> int:
    """$REPRO_RENDER_WORKERS, else one per available core, never more than the work can use."""
    env = os.environ.get("REPRO_RENDER_WORKERS")
    if env is not None:
        if not env.isdigit() or int(env) < 1:
            raise DataError(f"REPRO_RENDER_WORKERS must be a positive integer, got {env!r}")
        return int(env)
    return max(1, min(len(os.sched_getaffinity(0)), n_batches // MIN_BATCHES_PER_WORKER))


def _render_batch(domain_name: str, split: str, start: int, stop: int, size: int) -> dict:
    from repro.data.synthetic import render_range

    out = render_range(get_domain(domain_name), split, start, stop, size)
    out.pop("mask")  # the hand's silhouette: no training or evaluation reads it, and it was a quarter of the bytes
    return out


def _canonical(part: dict) -> dict:
    """Interned style strings, so a batch from a worker pickles to the same bytes as one rendered here
    (pickle writes a string shared by many samples once; unpickling would un-share it per batch)."""
    part["style"] = [{sys.intern(k): sys.intern(v) for k, v in style.items()} for style in part["style"]]
    return part


def _init_worker() -> None:
    torch.set_num_threads(1)
    keep_freed_memory()


def render_batches(domain_name: str, split: str, start: int, stop: int, size: int, workers: int) -> Iterator[dict]:
    """Samples start..stop-1 in batches of RENDER_BATCH, in order; in `workers` processes when > 1."""
    ranges = [(b, min(stop, b + RENDER_BATCH)) for b in range(start, stop, RENDER_BATCH)]
    if workers <= 1:
        for b, e in ranges:
            yield _canonical(_render_batch(domain_name, split, b, e, size))
        return
    # forkserver, not fork: the caller may hold threads (MLflow, torch) whose locks a fork would copy.
    # The server imports the renderer once per process; workers fork from it already loaded.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["repro.data.synthetic"])
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        n = len(ranges)
        yield from map(
            _canonical, pool.map(_render_batch, [domain_name] * n, [split] * n, [b for b, _ in ranges], [e for _, e in ranges], [size] * n)
        )


def _concat(parts: Iterable[dict], total: int) -> dict:
    """Join rendered batches or cache shards of `total` samples in all: tensors along the first axis, each
    part copied into tensors of the whole as it comes, so that an iterator of parts holds one part beside
    the result (a list of every shard beside their torch.cat held a split twice); lists end to end."""
    out, start = {}, 0
    for part in parts:
        for k, v in part.items():
            if torch.is_tensor(v):
                if k not in out:
                    out[k] = v.new_empty((total, *v.shape[1:]))
                out[k][start : start + len(v)] = v
            else:
                out.setdefault(k, []).extend(v)
        start += len(next(iter(part.values())))  # every value, tensor or list, has one entry per sample
    return out


def _spec_digest(domain) -> str:
    return hashlib.sha256(repr(domain).encode()).hexdigest()[:16]


def split_dir(domain: str, split: str, n: int, size: int, root: Path | None = None) -> Path:
    return (root or cache_dir() / "data") / domain / f"{split}-n{n}-{size}px"


def _wanted(domain, split: str, n: int, size: int) -> dict:
    return {
        "domain": domain.name,
        "split": split,
        "n": n,
        "size": size,
        "generator_version": domains.GENERATOR_VERSION,
        "seed": split_seed(domain, split),
        "spec_digest": _spec_digest(domain),
    }


def _valid_manifest(path: Path, wanted: dict) -> dict | None:
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    if any(manifest.get(k) != v for k, v in wanted.items()):
        return None
    for shard in manifest["shards"]:
        file = path / shard["file"]
        if not file.exists() or file_sha256(file) != shard["sha256"]:
            return None
    return manifest


def build_domain(
    domain_name: str, split: str, n: int | None = None, size: int | None = None, root: Path | None = None, workers: int | None = None
) -> Path:
    """Render (domain, split) into the cache unless a matching cache exists; returns its directory.
    `workers`: render processes (default: default_workers)."""
    domain = get_domain(domain_name)
    split_seed(domain, split)  # validates the split name
    n = n if n is not None else domain.splits[split]
    size = size or DEFAULT_SIZE
    if n <= 0:
        raise DataError(f"--n must be positive, got {n}")
    if workers is not None and workers < 1:
        raise DataError(f"--workers must be positive, got {workers}")
    path = split_dir(domain.name, split, n, size, root)
    wanted = _wanted(domain, split, n, size)
    with building(path):
        if _valid_manifest(path, wanted):
            print(f"reusing {path}", file=sys.stderr)
        else:
            _render_to(path, domain, split, n, size, wanted, workers or default_workers(-(-n // RENDER_BATCH)))
    return path


def _render_to(path: Path, domain, split: str, n: int, size: int, wanted: dict, workers: int) -> None:
    """Render into `path`.building, then swap it in for whatever `path` held."""
    tmp = path.with_name(path.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shards = []
    batches = render_batches(domain.name, split, 0, n, size, workers)
    with tqdm(total=n, desc=f"render {domain.name}/{split} ({workers} worker{'s' * (workers > 1)})", unit="img") as bar:
        for start in range(0, n, SHARD):
            stop = min(n, start + SHARD)
            parts = []
            for _ in range(start, stop, RENDER_BATCH):  # RENDER_BATCH divides SHARD
                parts.append(next(batches))
                bar.update(len(parts[-1]["caption"]))
            file = tmp / f"shard-{start // SHARD:05d}.pt"
            torch.save(_concat(parts, stop - start), file)
            shards.append({"file": file.name, "count": stop - start, "sha256": file_sha256(file)})
    digest = hashlib.sha256(json.dumps([wanted, [s["sha256"] for s in shards]]).encode()).hexdigest()
    (tmp / "manifest.json").write_text(json.dumps({**wanted, "shards": shards, "digest": digest}, indent=1))
    old = path.with_name(path.name + ".stale")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def open_domain(domain_name: str, split: str, n: int | None = None, size: int | None = None, root: Path | None = None):
    """(folder, manifest) of a split's cache entry, building it if needed; nothing is loaded into memory."""
    path = build_domain(domain_name, split, n=n, size=size, root=root)
    return path, json.loads((path / "manifest.json").read_text())


def load_shard(path: Path, shard: dict) -> dict:
    """The tensors of one shard (an entry of manifest["shards"]) of a cache entry opened by open_domain."""
    return torch.load(path / shard["file"], weights_only=False)


def load_shards(path: Path, manifest: dict) -> dict:
    """The tensors of a cache entry opened by open_domain, read one shard at a time."""
    shards = manifest["shards"]
    return _concat((load_shard(path, s) for s in shards), sum(s["count"] for s in shards))


def load_domain(domain_name: str, split: str, n: int | None = None, size: int | None = None, root: Path | None = None):
    """Tensors of a whole split (building it if needed) and its manifest."""
    path, manifest = open_domain(domain_name, split, n=n, size=size, root=root)
    return load_shards(path, manifest), manifest
