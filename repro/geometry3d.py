"""3D pose geometry (pure functions): Rodrigues and the Zimmermann & Brox (2017) normalisation.

Conventions (row vectors, as in hand3d's `canonical_trafo`):
- root = the PALM CENTRE, the midpoint of the wrist (0) and the middle MCP (9)
  (`repro.data.joints.palm_centre`), as in hand3d with `use_wrist_coord=False`;
- scale s = length of the middle finger's proximal phalanx, middle MCP (9) -> middle PIP (10);
- coords_rel_norm = (xyz - root) / s: root-relative, in units of the reference bone, camera axes;
- canonical frame: the middle MCP lies on the -y axis and the little MCP (17) in the z = 0 plane
  with x > 0 (hand3d: "Node that will be at 0/-D/0" and "z=0, x>0");
- R (B,3,3) is a proper rotation (det +1) with coords_rel_norm = canonical @ R, hence
  canonical = coords_rel_norm @ R^T. R is what f_PP's viewpoint stream has to predict: the model
  outputs c = canonical @ rodrigues(axis_angle), its axis-angle optionally squashed by bounded_angle.
All hands are right hands (left hands are mirrored by the loaders), so no flip is applied.
"""

import math

import torch

from repro.data.joints import MIDDLE_MCP, MIDDLE_PIP, PINKY_MCP, palm_centre

_EPS = 1e-8
_SMALL_THETA2 = 1e-8  # below this squared angle the Taylor expansion is used


def _skew(v: torch.Tensor) -> torch.Tensor:
    """(B,3) -> (B,3,3) cross-product matrices [v]_x."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def rodrigues(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from axis-angle vectors: (B,3) -> (B,3,3).

    R = I + A(t) K + B(t) K^2 with K = [axis_angle]_x, t = |axis_angle|, A = sin t / t,
    B = (1 - cos t) / t^2 (so the unnormalised K is used and t only enters through A and B).
    Guard at t = 0: for t^2 < 1e-8 the Taylor expansions A = 1 - t^2/6, B = 1/2 - t^2/24 are
    used and the square root is never taken of a zero, so values and gradients stay finite
    (at 0: R = I, dR = [d axis_angle]_x to first order).
    R acts on column vectors (R @ v rotates v by t about the axis).
    """
    theta2 = (axis_angle * axis_angle).sum(-1)
    small = theta2 < _SMALL_THETA2
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / (theta * theta))
    k = _skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(k)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def bounded_angle(axis_angle: torch.Tensor, limit: float = math.pi) -> torch.Tensor:
    """The same axis with its angle t = |axis_angle| mapped to limit * tanh(t / limit): (B,3) -> (B,3).

    Below limit = pi every rotation is still reached once (axis-angle covers SO(3) up to t = pi), small
    angles barely move (factor 1 - t^2 / (3 limit^2), 0.992 at t = 0.5), and no head output gives an
    angle past the limit: unbounded heads drift to angles of thousands of radians, where R turns
    over and over with the heads' outputs and the pose loss's gradient explodes (RESULTS.md). Guarded
    at t = 0 like rodrigues: below t^2 = 1e-8 the factor's Taylor expansion is used."""
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)
    small = theta2 < _SMALL_THETA2
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    factor = torch.where(small, 1.0 - theta2 / (3.0 * limit * limit), limit * torch.tanh(theta / limit) / theta)
    return axis_angle * factor


def normalize_pose(xyz: torch.Tensor):
    """Zimmermann & Brox normalisation of right-hand joints.

    xyz: (B,21,3) camera frame, mm. Returns
      coords_rel_norm (B,21,3): (xyz - palm centre) / s, camera axes;
      scale (B,): s = |xyz[9] - xyz[10]| in mm (middle MCP -> PIP);
      R (B,3,3): rotation with coords_rel_norm = canonical @ R;
      canonical (B,21,3): coords_rel_norm @ R^T, middle MCP on -y, little MCP at z = 0 (x > 0).
    The root is the palm centre (midpoint of wrist and middle MCP).
    """
    root = palm_centre(xyz)
    scale = (xyz[:, MIDDLE_PIP] - xyz[:, MIDDLE_MCP]).norm(dim=-1)
    rel = (xyz - root[:, None, :]) / scale.clamp_min(_EPS)[:, None, None]

    # Rows of R are the canonical axes written in camera coordinates: canonical_j = R rel_j.
    m = rel[:, MIDDLE_MCP]
    ey = -m / m.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    p = rel[:, PINKY_MCP]
    p_perp = p - (p * ey).sum(-1, keepdim=True) * ey
    ex = p_perp / p_perp.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    ez = torch.linalg.cross(ex, ey, dim=-1)
    rot = torch.stack([ex, ey, ez], dim=-2)  # (B,3,3), det +1
    canonical = rel @ rot.transpose(-1, -2)
    return rel, scale, rot, canonical


def denormalize(coords_rel_norm: torch.Tensor, scale: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
    """Inverse of the translation/scale of `normalize_pose`: coords * s + root.

    coords_rel_norm (B,21,3), scale (B,) mm, root (B,3) mm (the palm centre) -> (B,21,3) mm.
    """
    return coords_rel_norm * scale[:, None, None] + root[:, None, :]
