"""The frozen-feature cache: f_CI for every image of a dataset, f_CT for every prompt.

CLIP is frozen (SPEC section 2), so these features are functions of (encoder weights,
preprocessing, data) alone: we compute them once and store them under
cache_dir()/features/<key>/ as features.pt (float32 (N, dim)) and manifest.json (what the key was
made of). The key hashes the encoder's identity, its weights digest, its preprocessing (image size
included), the arithmetic (fp32, or bf16 autocast on CUDA: their features differ in the last digits),
and the dataset's digest and length (or the prompts themselves), so any change recomputes. The
manifest is written last: an entry without one, e.g. from a killed fill, is ignored. A fill holds a
lock per entry (under cache_dir()/locks/), so processes that want the same entry compute it once.

A fill runs in batches on the training device, reading the crops as the dataset stores them: a real
split's memory-mapped crop store (repro.data.store), a synthetic split's render cache.
"""

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Sequence

import torch
from tqdm import tqdm

from repro.clip.encoders import ClipEncoder
from repro.clip.errors import ClipError
from repro.clip.prompts import all_prompts
from repro.files import building, save_tensor, write_json
from repro.paths import cache_dir


def mix_features(image: torch.Tensor, text: torch.Tensor, ratio: float) -> torch.Tensor:
    """f_CLIP = r * f_CI + (1 - r) * f_CT, row by row: what training fuses and what Figs. 3-4 show."""
    return ratio * image + (1 - ratio) * text


def _key(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:24]


def _load(folder: Path, record: dict) -> torch.Tensor | None:
    manifest, tensor = folder / "manifest.json", folder / "features.pt"
    if not (manifest.is_file() and tensor.is_file()) or json.loads(manifest.read_text()) != record:
        return None
    features = torch.load(tensor, weights_only=True)
    return features if features.shape == (record["n"], record["dim"]) else None


def _store(folder: Path, record: dict, features: torch.Tensor) -> None:
    save_tensor(features.contiguous(), folder / "features.pt")
    write_json(record, folder / "manifest.json")


def _encoder_record(encoder: ClipEncoder, device: torch.device) -> dict:
    precision = "bf16" if device.type == "cuda" else "fp32"
    return {
        "encoder": encoder.identity,
        "weights": encoder.weights_digest,
        "preprocessing": encoder.preprocessing,
        "dim": encoder.dim,
        "precision": precision,
    }


def feature_device(device: torch.device | str | None = None) -> torch.device:
    """`device`, or by default the training device: CUDA when there is one (repro.train.run's rule)."""
    return torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def _encoding_on(encoder: ClipEncoder, device: torch.device):
    """Encode on `device`, in bf16 autocast on CUDA. An open_clip encoder's model is moved there for the
    fill and back after it: encoders are built on the CPU and shared by the runs of one set of inputs."""
    model, home = getattr(encoder, "model", None), getattr(encoder, "device", None)
    if model is not None:
        model.to(device)
        encoder.device = device
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            yield
    finally:
        if model is not None:
            model.to(home)
            encoder.device = home


def _cached(
    record: dict, desc: str, unit: str, encoder: ClipEncoder, device, batch_size: int, encode: Callable[[int, int], torch.Tensor]
) -> torch.Tensor:
    """The entry for `record` if stored, else encode(start, stop) over every batch of record["n"] rows, stored."""
    key = _key(record)
    folder = cache_dir() / "features" / key
    cached = _load(folder, record)
    if cached is not None:
        return cached
    with building(cache_dir() / "locks" / f"features-{key}"):
        cached = _load(folder, record)  # another process may have filled it while we waited
        if cached is not None:
            return cached
        n, chunks = record["n"], []
        with _encoding_on(encoder, device), tqdm(total=n, desc=desc, unit=unit) as bar:
            for start in range(0, n, batch_size):
                chunks.append(encode(start, min(n, start + batch_size)))
                bar.update(len(chunks[-1]))
        features = torch.cat(chunks) if chunks else torch.empty(0, record["dim"])
        _store(folder, record, features)
    return features


def _crops(dataset: Sequence) -> Callable[[int, int], torch.Tensor]:
    """uint8 (B, 3, S, S) crops start..stop-1 of `dataset`: sliced from its stored images where it has
    them (a real split's memory-mapped store: `images`; a synthetic split's render cache: `data`),
    else stacked sample by sample."""
    images = getattr(dataset, "images", None)
    if images is None and hasattr(dataset, "data"):
        images = dataset.data["image"]
    if images is not None:
        return lambda start, stop: images[start:stop]
    return lambda start, stop: torch.stack([dataset[i].image for i in range(start, stop)])


def image_features(
    encoder: ClipEncoder, dataset: Sequence, batch_size: int = 256, device: torch.device | str | None = None
) -> torch.Tensor:
    """f_CI(x) for every sample of `dataset`, in dataset order: float32 (len(dataset), dim) on the CPU,
    computed on `device` (default: feature_device())."""
    digest = getattr(dataset, "digest", None)
    if not digest:
        raise ClipError(f"{type(dataset).__name__} has no `digest`: the feature cache cannot tell its images apart from another dataset's")
    device = feature_device(device)
    record = {"kind": "image", "dataset": digest, "n": len(dataset), **_encoder_record(encoder, device)}
    crops = _crops(dataset)

    def encode(start: int, stop: int) -> torch.Tensor:
        return encoder.encode_images(crops(start, stop))

    return _cached(record, f"f_CI {encoder.identity} on {device}", "img", encoder, device, batch_size, encode)


def text_features(
    encoder: ClipEncoder, prompts: Sequence[str] | None = None, batch_size: int = 256, device: torch.device | str | None = None
) -> torch.Tensor:
    """f_CT(t) for every prompt (default: the 3,920 of the paper, in their fixed order): (len, dim) on the
    CPU, computed on `device` (default: feature_device())."""
    prompts = list(all_prompts() if prompts is None else prompts)
    prompts_digest = hashlib.sha256("\n".join(prompts).encode()).hexdigest()
    device = feature_device(device)
    record = {"kind": "text", "prompts": prompts_digest, "n": len(prompts), **_encoder_record(encoder, device)}

    def encode(start: int, stop: int) -> torch.Tensor:
        return encoder.encode_texts(prompts[start:stop])

    return _cached(record, f"f_CT {encoder.identity} on {device}", "prompt", encoder, device, batch_size, encode)
