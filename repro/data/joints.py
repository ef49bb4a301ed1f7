"""The canonical 21-joint hand: FreiHAND's order, bone list, evaluation root.

Order: 0 wrist; then thumb, index, middle, ring, little, each from its base (thumb CMC, finger MCP)
to its tip. The evaluation root is the palm centre, the midpoint of the wrist and the middle MCP
(SPEC section 1).
"""

import torch

N_JOINTS = 21
FINGERS = ("thumb", "index", "middle", "ring", "little")
JOINT_NAMES = ("wrist",) + tuple(
    f"{finger}_{part}"
    for finger in FINGERS
    for part in (("cmc", "mcp", "ip", "tip") if finger == "thumb" else ("mcp", "pip", "dip", "tip"))
)
WRIST = 0
MIDDLE_MCP = 9
MIDDLE_PIP = 10
PINKY_MCP = 17

# (parent, child) for the 20 bones: wrist to each finger base, then along each finger.
BONES = tuple((WRIST if k == 0 else 1 + 4 * f + k - 1, 1 + 4 * f + k) for f in range(5) for k in range(4))


ROOT = "palm centre (midpoint of wrist and middle MCP)"  # the evaluation root (repro.decisions)


def palm_centre(xyz: torch.Tensor) -> torch.Tensor:
    """Midpoint of wrist and middle MCP; xyz (..., 21, 3) -> (..., 3)."""
    return 0.5 * (xyz[..., WRIST, :] + xyz[..., MIDDLE_MCP, :])


def bone_lengths(xyz: torch.Tensor) -> torch.Tensor:
    """Lengths of the 20 bones in BONES order; xyz (..., 21, 3) -> (..., 20)."""
    parents = torch.tensor([p for p, _ in BONES])
    children = torch.tensor([c for _, c in BONES])
    return (xyz[..., children, :] - xyz[..., parents, :]).norm(dim=-1)
