"""An articulated 21-joint right hand with anatomical joint limits, in millimetres.

Hand frame: wrist at the origin, +y from the wrist to the middle MCP, +z the palm normal (out of the
palm), +x towards the thumb; for a right hand this is a right-handed frame. Fingers are planar
chains: abduction turns a finger about the palm normal at its MCP, flexion bends it towards the palm
(+z). The thumb's flexion plane is tilted by its opposition angle.
"""

from dataclasses import dataclass

import numpy as np
import torch

from repro.data.joints import N_JOINTS

# Limits in degrees (min, max), after standard hand-kinematics tables (e.g. Lee & Kunii 1995).
FINGER_LIMITS = {
    "mcp_flex": (-20.0, 85.0),
    "mcp_abd": (-20.0, 20.0),
    "pip_flex": (0.0, 105.0),
    "dip_flex": (0.0, 80.0),
}
THUMB_LIMITS = {
    "cmc_flex": (-10.0, 50.0),  # across the palm, about the palm normal
    "cmc_abd": (0.0, 60.0),  # out of the palm plane
    "opposition": (0.0, 50.0),  # twist of the thumb's flexion plane towards the fingers
    "mcp_flex": (0.0, 60.0),
    "ip_flex": (-10.0, 80.0),
}

# Mean bone lengths (mm): metacarpal direction is set by MCP positions; phalanges per finger.
PHALANGES = {  # proximal, middle, distal
    "index": (39.0, 23.0, 20.0),
    "middle": (44.0, 27.0, 21.0),
    "ring": (41.0, 26.0, 21.0),
    "little": (32.0, 18.0, 19.0),
}
THUMB_BONES = (46.0, 32.0, 28.0)  # metacarpal (CMC-MCP), proximal (MCP-IP), distal (IP-tip)
PALM_LENGTH = 68.0  # wrist to middle MCP
PALM_WIDTH = 56.0  # index MCP to little MCP
# MCP positions as (x / palm width, y / palm length); the middle MCP defines +y.
MCP_LAYOUT = {"index": (0.40, 0.97), "middle": (0.0, 1.0), "ring": (-0.34, 0.95), "little": (-0.64, 0.86)}
THUMB_CMC = (0.34, 0.24)
THUMB_REST_ANGLE = 42.0  # thumb metacarpal direction, degrees from +y towards +x
# Capsule radii (mm) per bone, FreiHAND bone order (thumb, index, middle, ring, little; base to tip).
BONE_RADII = (13.0, 10.5, 9.0, 8.0) + (11.0, 8.8, 7.8, 7.0) + (11.0, 9.2, 8.2, 7.2) + (10.5, 8.8, 7.8, 7.0) + (10.0, 7.8, 7.0, 6.4)


@dataclass
class HandParams:
    """Shape and articulation of a batch of hands; all tensors have a leading batch dimension."""

    scale: torch.Tensor  # (B,) global size factor
    bone_jitter: torch.Tensor  # (B, 20) per-bone length factors
    palm_width: torch.Tensor  # (B,) palm width factor
    finger_angles: torch.Tensor  # (B, 4, 4) degrees: mcp_flex, mcp_abd, pip_flex, dip_flex
    thumb_angles: torch.Tensor  # (B, 5) degrees: cmc_flex, cmc_abd, opposition, mcp_flex, ip_flex


def _limits(table) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = zip(*table.values())
    return np.array(lo), np.array(hi)


def sample_hand(rng: np.random.Generator) -> dict:
    """Random shape and pose for one hand, as plain arrays (a pure function of the generator state).

    Poses mix a correlated curl per finger (grasps, fists, pointing) with independent uniform angles
    so that the pose space is covered, and are clipped to the joint limits.
    """
    f_lo, f_hi = _limits(FINGER_LIMITS)
    t_lo, t_hi = _limits(THUMB_LIMITS)
    uniform = rng.uniform(f_lo, f_hi, size=(4, 4))
    curl = rng.uniform(0.0, 1.0, size=(4, 1)) ** rng.uniform(0.5, 2.0)
    correlated = f_lo + curl * (f_hi - f_lo) + rng.normal(0.0, 8.0, size=(4, 4))
    correlated[:, 1] = rng.normal(0.0, 7.0, size=4)  # abduction does not follow the curl
    fingers = np.where(rng.uniform() < 0.5, uniform, correlated)
    thumb = rng.uniform(t_lo, t_hi)
    return {
        "scale": rng.uniform(0.85, 1.15),
        "bone_jitter": np.clip(rng.normal(1.0, 0.04, size=20), 0.9, 1.1),
        "palm_width": rng.uniform(0.9, 1.1),
        "finger_angles": np.clip(fingers, f_lo, f_hi),
        "thumb_angles": np.clip(thumb, t_lo, t_hi),
    }


def stack_params(samples: list[dict]) -> HandParams:
    def cat(key):
        return torch.tensor(np.stack([s[key] for s in samples]), dtype=torch.float32)

    return HandParams(cat("scale"), cat("bone_jitter"), cat("palm_width"), cat("finger_angles"), cat("thumb_angles"))


def _rot_about(axis: torch.Tensor, angle: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rodrigues rotation of v about unit `axis` by `angle` (radians); all broadcast over the batch."""
    cos, sin = torch.cos(angle)[..., None], torch.sin(angle)[..., None]
    return v * cos + torch.cross(axis, v, dim=-1) * sin + axis * (axis * v).sum(-1, keepdim=True) * (1 - cos)


def _chain(base, direction, normal, lengths, flexions):
    """Planar chain from `base`: each bone turns from `direction` towards `normal` by the cumulative flexion."""
    joints, total, p = [], torch.zeros_like(lengths[:, 0]), base
    for k in range(lengths.shape[1]):
        total = total + flexions[:, k]
        p = p + lengths[:, k, None] * (torch.cos(total)[:, None] * direction + torch.sin(total)[:, None] * normal)
        joints.append(p)
    return joints


def hand_joints(params: HandParams) -> torch.Tensor:
    """Joint positions in the hand frame, (B, 21, 3) mm, canonical (FreiHAND) order."""
    B = params.scale.shape[0]
    s = params.scale[:, None]
    jit = params.bone_jitter
    z = torch.tensor([0.0, 0.0, 1.0]).expand(B, 3)
    joints = [torch.zeros(B, 3)]

    # Thumb: metacarpal from the CMC, rotated across the palm and out of its plane; flexion plane twisted.
    deg = torch.deg2rad(params.thumb_angles)
    cmc = torch.stack([THUMB_CMC[0] * PALM_WIDTH * params.palm_width, torch.full((B,), THUMB_CMC[1] * PALM_LENGTH), torch.zeros(B)], -1) * s * jit[:, :1]
    rest = torch.tensor([np.sin(np.deg2rad(THUMB_REST_ANGLE)), np.cos(np.deg2rad(THUMB_REST_ANGLE)), 0.0], dtype=torch.float32).expand(B, 3)
    direction = _rot_about(z, deg[:, 0], rest)  # +angle turns the thumb towards the fingers (about +z)
    lateral = torch.nn.functional.normalize(torch.cross(direction, z, dim=-1), dim=-1)
    direction = _rot_about(lateral, deg[:, 1], direction)  # abduction lifts it out of the palm (+z)
    normal = torch.nn.functional.normalize(torch.cross(lateral, direction, dim=-1), dim=-1)
    normal = _rot_about(direction, -deg[:, 2], normal)  # opposition twists the flexion plane
    lengths = torch.tensor(THUMB_BONES) * jit[:, 1:4] * s
    flex = torch.stack([torch.zeros(B), deg[:, 3], deg[:, 4]], -1)
    joints += [cmc] + _chain(cmc, direction, normal, lengths, flex)

    for f, name in enumerate(("index", "middle", "ring", "little")):
        deg = torch.deg2rad(params.finger_angles[:, f])
        bx, by = MCP_LAYOUT[name]
        mcp = torch.stack([bx * PALM_WIDTH * params.palm_width, torch.full((B,), by * PALM_LENGTH), torch.zeros(B)], -1)
        mcp = mcp * s * jit[:, 4 + 4 * f, None]
        meta_dir = torch.nn.functional.normalize(mcp, dim=-1)
        spread = -1.0 if bx >= 0 else 1.0  # positive abduction turns a finger away from the middle finger
        direction = _rot_about(z, spread * deg[:, 1], meta_dir)
        lengths = torch.tensor(PHALANGES[name]) * jit[:, 5 + 4 * f : 8 + 4 * f] * s
        flex = torch.stack([deg[:, 0], deg[:, 2], deg[:, 3]], -1)
        joints += [mcp] + _chain(mcp, direction, z, lengths, flex)
    out = torch.stack(joints, 1)
    assert out.shape[1] == N_JOINTS
    return out
