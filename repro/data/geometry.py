"""Camera geometry shared by the renderer and the real loaders. Pure functions on tensors."""

import torch


def project(K: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
    """Pinhole projection; K (..., 3, 3), xyz (..., N, 3) in the camera frame -> uv (..., N, 2)."""
    p = xyz @ K.transpose(-1, -2)
    return p[..., :2] / p[..., 2:3]


def mirror_x(xyz: torch.Tensor, uv: torch.Tensor, K: torch.Tensor, width: int):
    """Mirror a left hand into a right hand: negate x, flip u in an image of `width` pixels.

    u = fx x / z + cx becomes W-1-u = fx (-x) / z + (W-1-cx): only cx changes.
    Returns (xyz, uv, K) mirrored; the image itself is flipped with `torch.flip(img, [-1])`.
    """
    xyz = xyz.clone()
    xyz[..., 0] = -xyz[..., 0]
    uv = uv.clone()
    uv[..., 0] = (width - 1) - uv[..., 0]
    K = K.clone()
    K[..., 0, 2] = (width - 1) - K[..., 0, 2]
    return xyz, uv, K


def crop_intrinsics(K: torch.Tensor, x0, y0, scale) -> torch.Tensor:
    """Intrinsics after cropping at top-left (x0, y0) and resizing by `scale` (crop px per source px).

    Pixel centres sit at integer coordinates, so the map is u' = scale * (u - x0 + 0.5) - 0.5.
    """
    A = torch.zeros(K.shape[:-2] + (3, 3), dtype=K.dtype)
    scale = torch.as_tensor(scale, dtype=K.dtype)
    A[..., 0, 0] = scale
    A[..., 1, 1] = scale
    A[..., 0, 2] = scale * (0.5 - torch.as_tensor(x0, dtype=K.dtype)) - 0.5
    A[..., 1, 2] = scale * (0.5 - torch.as_tensor(y0, dtype=K.dtype)) - 0.5
    A[..., 2, 2] = 1.0
    return A @ K
