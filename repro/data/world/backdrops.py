"""Procedural backdrop textures on 2D coordinates, batched.

Each texture maps coordinates X, Y (b, H, W) in texture units (1 unit is about the image height on a
flat backdrop, about 400 mm on a room's wall) and per-sample parameters to colours (b, 3, H, W):
`p` (b, 8) uniform numbers, `base` and `second` (b, 3) colours. The same textures serve as flat
backdrops ("... background") and as wallpaper in a room ("... room").
"""

import math

import torch

from repro.data.world.style import COLOUR_RGB


def _mix(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Where mask (b, H, W) in [0, 1]: colour a, else colour b; colours (b, 3) or (b, 3, H, W)."""
    a = a[..., None, None] if a.dim() == 2 else a
    b = b[..., None, None] if b.dim() == 2 else b
    return mask[:, None] * a + (1 - mask[:, None]) * b


def _col(p, i):
    return p[:, i, None, None]


def _smoothstep(edge: torch.Tensor, x: torch.Tensor, width: float) -> torch.Tensor:
    return ((x - edge) / width + 0.5).clamp(0, 1)


def plain(X, Y, p, base, second):
    shade = 1 + 0.08 * (_col(p, 0) - 0.5) + 0.12 * (Y - 0.5) * (_col(p, 1) - 0.5)
    return base[..., None, None] * shade[:, None]


def dotted(X, Y, p, base, second):
    spacing = 0.07 + 0.07 * _col(p, 0)
    radius = 0.20 + 0.14 * _col(p, 1)
    lx = torch.frac(X / spacing + _col(p, 2) + 10) - 0.5
    ly = torch.frac(Y / spacing + _col(p, 3) + 10) - 0.5
    dot = 1 - _smoothstep(radius, torch.sqrt(lx * lx + ly * ly), 0.06)
    return _mix(dot, second, base)


def _cell_hash(i: torch.Tensor, j: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """A deterministic pseudo-random number in [0, 1) per integer cell."""
    return torch.frac(torch.sin(i * 12.9898 + j * 78.233 + seed * 37.719) * 43758.5453).abs()


def flower(X, Y, p, base, second):
    spacing = 0.16 + 0.10 * _col(p, 0)
    petals = torch.where(_col(p, 1) < 0.5, 5.0, 6.0)
    gx, gy = X / spacing + 10, Y / spacing + 10
    ix, iy = torch.floor(gx), torch.floor(gy)
    jx = 0.25 * (_cell_hash(ix, iy, _col(p, 2)) - 0.5)
    jy = 0.25 * (_cell_hash(iy, ix, _col(p, 3)) - 0.5)
    lx, ly = gx - ix - 0.5 - jx, gy - iy - 0.5 - jy
    rho, phi = torch.sqrt(lx * lx + ly * ly), torch.atan2(ly, lx) + _col(p, 4) * math.pi
    edge = 0.36 * (0.45 + 0.55 * torch.abs(torch.cos(petals * phi / 2)))
    petal = 1 - _smoothstep(edge, rho, 0.04)
    centre = 1 - _smoothstep(torch.full_like(rho, 0.09), rho, 0.03)
    heart = torch.tensor(COLOUR_RGB["yellow"]).expand_as(base)
    return _mix(centre, heart, _mix(petal, second, base))


def _sky(Y, p, horizon):
    top = torch.tensor([0.35, 0.58, 0.90])[None, :, None, None]
    low = torch.tensor([0.82, 0.90, 0.97])[None, :, None, None]
    w = ((Y - horizon + 0.6) / 0.6).clamp(0, 1)[:, None]
    return top * (1 - w) + low * w


def mountain(X, Y, p, base, second):
    horizon = 0.45 + 0.2 * _col(p, 0)
    ridge = (
        horizon
        - 0.08
        - 0.22
        * _col(p, 1)
        * (
            0.55 * torch.abs(torch.sin(3.1 * X + 6 * _col(p, 2)))
            + 0.30 * torch.abs(torch.sin(7.3 * X + 6 * _col(p, 3)))
            + 0.15 * torch.abs(torch.sin(17.0 * X + 6 * _col(p, 4)))
        )
    )
    rock = torch.tensor([0.42, 0.45, 0.55])[None, :, None, None] * (0.8 + 0.4 * ((Y - ridge) / 0.3).clamp(0, 1))[:, None]
    snow = _smoothstep(ridge + 0.05, Y, 0.02)  # 0 near the peaks
    snowy = _mix(snow, rock, torch.tensor([0.95, 0.96, 0.98]).expand_as(base))
    meadow = torch.tensor([0.28, 0.50, 0.20]).expand_as(base)
    land = _mix(_smoothstep(horizon + 0.12, Y, 0.02), meadow, snowy)
    return _mix(_smoothstep(ridge, Y, 0.01), land, _sky(Y, p, horizon))


def lake(X, Y, p, base, second):
    horizon = 0.40 + 0.2 * _col(p, 0)
    treeline = horizon - 0.03 - 0.05 * torch.abs(torch.sin(23 * X + 6 * _col(p, 1))) * (0.5 + torch.abs(torch.sin(5 * X)))
    shore = torch.tensor([0.12, 0.30, 0.14]).expand_as(base)
    depth = (Y - horizon).clamp_min(0)
    ripple = 0.5 + 0.5 * torch.sin(30 * torch.log(depth + 0.02) + 3 * torch.sin(9 * X + 6 * _col(p, 2)))
    water = torch.tensor([0.12, 0.32, 0.58])[None, :, None, None] * (0.85 + 0.3 * ripple[:, None])
    scene = _mix(_smoothstep(horizon, Y, 0.005), water, shore)
    return _mix(_smoothstep(treeline, Y, 0.01), scene, _sky(Y, p, horizon))


def clutter(X, Y, p, base, second):
    """A stand-in for a photograph behind a pasted hand: two layers of randomly coloured boxes (large
    ones, then small ones in front) over the base colour, each box's colour random per cell. How much
    of the base shows is drawn per sample, from almost all of it (a plain wall) to almost none."""
    out = base[..., None, None].expand(-1, -1, *X.shape[1:])
    busy = _col(p, 7)  # the share of cells holding a box
    for layer, (size, span, share) in enumerate(((0.16, 0.22, 0.8), (0.05, 0.07, 0.35))):
        side = size + span * _col(p, layer)
        gx = X / side + 10 + 3 * _col(p, 2 + layer)
        gy = Y / (side * (0.6 + 0.8 * _col(p, 4 + layer))) + 10
        ix, iy, seed = torch.floor(gx), torch.floor(gy), _col(p, 6) + 7 * layer
        rgb = torch.stack([_cell_hash(ix, iy, seed + 0.37 * k) for k in range(3)], 1)
        box = (_cell_hash(iy, ix, seed + 0.11) < share * busy).float()
        out = _mix(box, 0.35 * base[..., None, None] + 0.65 * rgb, out)
    return out


TEXTURES = {"clutter": clutter, "dotted": dotted, "flower": flower, "mountain": mountain, "lake": lake}
TEXTURES.update({name: plain for name in COLOUR_RGB})
