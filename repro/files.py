"""Small file helpers shared by the data and CLIP caches and the trainer's checkpoints: file
digests, atomic writes, and a lock per cache entry.

Writes go to a temporary file next to the target, then are renamed over it. A rename within one
directory is atomic, so a killed process leaves either the old file or the new one, never a
half-written cache entry or checkpoint.
"""

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch
from filelock import FileLock


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in blocks so large shards need no memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def building(path: Path):
    """Hold `path`.lock while checking for and building the cache entry at `path`: processes that want
    the same entry (study workers side by side) build it once; the others wait, then reuse it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        yield


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes files private; cache entries are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_tensor(obj, path: Path) -> None:
    """torch.save, atomically, the same objects as the same bytes. Saved to a path, torch names the zip
    archive inside after the file, here a random temporary name: bit-identical synthclip weights got a
    new sha256 in every clone, and so every run trained on them a new run hash. Through an open file
    the archive is always called "archive"."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    _atomic(path, write)


def write_json(record: dict, path: Path) -> Path:
    """Sorted, indented JSON, atomically; returns the path."""
    _atomic(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n"))
    return path
