"""CLIP's image preprocessing on uint8 tensors: resize (shortest side, then centre crop), scale, normalise.

open_clip's own transform works on PIL images one at a time; datasets here yield uint8 tensors in
batches, so we do the same steps with torchvision's tensor ops. Resizing uint8 (not float) keeps the
result in [0, 255] as PIL does, and an image already at the model's size is passed through untouched,
so features of such images equal open_clip's own pipeline exactly.
"""

from typing import Callable

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from repro.clip.errors import ClipError


def _shortest(images: torch.Tensor, size: int, mode: InterpolationMode) -> torch.Tensor:
    return TF.center_crop(TF.resize(images, size, interpolation=mode, antialias=True), [size, size])


def _squash(images: torch.Tensor, size: int, mode: InterpolationMode) -> torch.Tensor:
    return TF.resize(images, [size, size], interpolation=mode, antialias=True)


# open_clip's PreprocessCfg.resize_mode values that we reproduce.
RESIZE_MODES: dict[str, Callable[[torch.Tensor, int, InterpolationMode], torch.Tensor]] = {
    "shortest": _shortest,
    "squash": _squash,
}


def resize(images: torch.Tensor, size: int, resize_mode: str = "shortest", interpolation: str = "bicubic") -> torch.Tensor:
    """uint8 (B, 3, H, W) -> uint8 (B, 3, size, size), as open_clip's eval transform resizes."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ClipError(f"CLIP expects uint8 images of shape (B, 3, H, W); got {images.dtype} {tuple(images.shape)}")
    if images.shape[-2:] == (size, size):
        return images
    if resize_mode not in RESIZE_MODES:
        raise ClipError(f"resize mode {resize_mode!r} is not supported; expected one of {sorted(RESIZE_MODES)}")
    return RESIZE_MODES[resize_mode](images, size, InterpolationMode(interpolation))


def input_size(preprocess_cfg: dict) -> int:
    """The square input side of an open_clip model's preprocess_cfg: its "size" is an int for the
    ResNet towers and a (H, W) pair for the ViTs."""
    size = preprocess_cfg["size"]
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def normalise(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, S, S) -> float32 with CLIP's per-channel mean/std (given for values in [0, 1])."""
    return (images.float() / 255.0 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
