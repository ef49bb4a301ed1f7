"""The frozen-feature cache: f_CI for every image of a dataset, f_CT for every prompt.

CLIP is frozen (SPEC section 2), so these features are functions of (encoder weights,
preprocessing, data) alone: we compute them once and store them under
cache_dir()/features/<key>/ as features.pt (float32 (N, dim)) and manifest.json (what the key was
made of). The key hashes the encoder's identity, its weights digest, its preprocessing (image size
included), and the dataset's digest and length (or the prompts themselves), so any change
recomputes. The manifest is written last: an entry without one, e.g. from a killed fill, is ignored.
"""

import hashlib
import json
from pathlib import Path
from typing import Iterator, Sequence

import torch
from tqdm import tqdm

from repro.clip.encoders import ClipEncoder
from repro.clip.errors import ClipError
from repro.clip.prompts import all_prompts
from repro.files import save_tensor, write_json
from repro.paths import cache_dir


def mix_features(image: torch.Tensor, text: torch.Tensor, ratio: float) -> torch.Tensor:
    """f_CLIP = r * f_CI + (1 - r) * f_CT, row by row: what training fuses and what Figs. 3-4 show."""
    return ratio * image + (1 - ratio) * text


def _entry_dir(record: dict) -> Path:
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir() / "features" / key


def _load(folder: Path, record: dict) -> torch.Tensor | None:
    manifest, tensor = folder / "manifest.json", folder / "features.pt"
    if not (manifest.is_file() and tensor.is_file()) or json.loads(manifest.read_text()) != record:
        return None
    features = torch.load(tensor, weights_only=True)
    return features if features.shape == (record["n"], record["dim"]) else None


def _store(folder: Path, record: dict, features: torch.Tensor) -> None:
    save_tensor(features.contiguous(), folder / "features.pt")
    write_json(record, folder / "manifest.json")


def _encoder_record(encoder: ClipEncoder) -> dict:
    return {"encoder": encoder.identity, "weights": encoder.weights_digest, "preprocessing": encoder.preprocessing, "dim": encoder.dim}


def _cached(record: dict, desc: str, unit: str, batches: Iterator[torch.Tensor]) -> torch.Tensor:
    """The entry for `record` if stored, else the concatenated `batches` (lazily encoded), stored."""
    folder = _entry_dir(record)
    cached = _load(folder, record)
    if cached is not None:
        return cached
    chunks = []
    with tqdm(total=record["n"], desc=desc, unit=unit) as bar:
        for chunk in batches:
            chunks.append(chunk)
            bar.update(len(chunk))
    features = torch.cat(chunks) if chunks else torch.empty(0, record["dim"])
    _store(folder, record, features)
    return features


def image_features(encoder: ClipEncoder, dataset: Sequence, batch_size: int = 64) -> torch.Tensor:
    """f_CI(x) for every sample of `dataset`, in dataset order: float32 (len(dataset), dim)."""
    digest = getattr(dataset, "digest", None)
    if not digest:
        raise ClipError(f"{type(dataset).__name__} has no `digest`: the feature cache cannot tell its images apart from another dataset's")
    record = {"kind": "image", "dataset": digest, "n": len(dataset), **_encoder_record(encoder)}
    batches = (
        encoder.encode_images(torch.stack([dataset[i].image for i in range(start, min(start + batch_size, len(dataset)))]))
        for start in range(0, len(dataset), batch_size)
    )
    return _cached(record, f"f_CI {encoder.identity}", "img", batches)


def text_features(encoder: ClipEncoder, prompts: Sequence[str] | None = None, batch_size: int = 256) -> torch.Tensor:
    """f_CT(t) for every prompt (default: the 3,920 of the paper, in their fixed order): (len, dim)."""
    prompts = list(all_prompts() if prompts is None else prompts)
    prompts_digest = hashlib.sha256("\n".join(prompts).encode()).hexdigest()
    record = {"kind": "text", "prompts": prompts_digest, "n": len(prompts), **_encoder_record(encoder)}
    batches = (encoder.encode_texts(prompts[start : start + batch_size]) for start in range(0, len(prompts), batch_size))
    return _cached(record, f"f_CT {encoder.identity}", "prompt", batches)
