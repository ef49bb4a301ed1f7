"""On-disk cache of rendered synthetic splits: shards of samples plus a manifest.

A cache directory is reused when its manifest matches the request (domain spec, split, count, size,
generator version) and every shard's checksum matches; otherwise it is rebuilt beside the old one and
swapped in only when complete, so an interrupted build never leaves a half-written cache behind.
"""

import hashlib
import json
import shutil
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from repro.data.domains import GENERATOR_VERSION, get_domain, split_seed
from repro.data.errors import DataError
from repro.data.registry import DEFAULT_SIZE
from repro.files import file_sha256
from repro.paths import cache_dir

SHARD = 1024
RENDER_BATCH = 64


def _concat(parts: list[dict]) -> dict:
    """Join rendered batches: tensors along the first axis, lists end to end."""
    return {k: torch.cat([p[k] for p in parts]) if torch.is_tensor(parts[0][k]) else [x for p in parts for x in p[k]] for k in parts[0]}


def _spec_digest(domain) -> str:
    return hashlib.sha256(repr(domain).encode()).hexdigest()[:16]


def split_dir(domain: str, split: str, n: int, size: int, root: Path | None = None) -> Path:
    return (root or cache_dir() / "data") / domain / f"{split}-n{n}-{size}px"


def _wanted(domain, split: str, n: int, size: int) -> dict:
    return {"domain": domain.name, "split": split, "n": n, "size": size, "generator_version": GENERATOR_VERSION,
            "seed": split_seed(domain, split), "spec_digest": _spec_digest(domain)}  # fmt: skip


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


def build_domain(domain_name: str, split: str, n: int | None = None, size: int | None = None, root: Path | None = None) -> Path:
    """Render (domain, split) into the cache unless a matching cache exists; returns its directory."""
    from repro.data.synthetic import render_range

    domain = get_domain(domain_name)
    split_seed(domain, split)  # validates the split name
    n = n if n is not None else domain.splits[split]
    size = size or DEFAULT_SIZE
    if n <= 0:
        raise DataError(f"--n must be positive, got {n}")
    path = split_dir(domain.name, split, n, size, root)
    wanted = _wanted(domain, split, n, size)
    if _valid_manifest(path, wanted):
        print(f"reusing {path}", file=sys.stderr)
        return path

    tmp = path.with_name(path.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shards = []
    with tqdm(total=n, desc=f"render {domain.name}/{split}", unit="img") as bar:
        for start in range(0, n, SHARD):
            stop = min(n, start + SHARD)
            parts = []
            for b in range(start, stop, RENDER_BATCH):
                parts.append(render_range(domain, split, b, min(stop, b + RENDER_BATCH), size))
                bar.update(min(stop, b + RENDER_BATCH) - b)
            shard = _concat(parts)
            file = tmp / f"shard-{start // SHARD:05d}.pt"
            torch.save(shard, file)
            shards.append({"file": file.name, "count": stop - start, "sha256": file_sha256(file)})
    digest = hashlib.sha256(json.dumps([wanted, [s["sha256"] for s in shards]]).encode()).hexdigest()
    (tmp / "manifest.json").write_text(json.dumps({**wanted, "shards": shards, "digest": digest}, indent=1))
    old = path.with_name(path.name + ".stale")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def load_domain(domain_name: str, split: str, n: int | None = None, size: int | None = None, root: Path | None = None):
    """Tensors of a whole split (building it if needed) and its manifest."""
    path = build_domain(domain_name, split, n=n, size=size, root=root)
    manifest = json.loads((path / "manifest.json").read_text())
    parts = [torch.load(path / s["file"], weights_only=False) for s in manifest["shards"]]
    return _concat(parts), manifest
