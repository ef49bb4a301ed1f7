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
THUMB_BONES = (42.0, 31.0, 27.0)  # metacarpal (CMC-MCP), proximal (MCP-IP), distal (IP-tip)
PALM_LENGTH = 68.0  # wrist to middle MCP
PALM_WIDTH = 56.0  # index MCP to little MCP
# MCP positions as (x / palm width, y / palm length); the middle MCP defines +y.
MCP_LAYOUT = {"index": (0.40, 0.97), "middle": (0.0, 1.0), "ring": (-0.34, 0.95), "little": (-0.64, 0.86)}
THUMB_CMC = (0.34, 0.24)
THUMB_REST_ANGLE = 42.0  # thumb metacarpal direction, degrees from +y towards +x
# At zero abduction a finger points FINGER_FAN times its metacarpal's angle off +y (the wrist-MCP
# lines fan out ~20-30 degrees, the relaxed fingers far less: the metacarpal bases are spread over the
# carpus, not at one wrist point).
FINGER_FAN = 0.35
# Flesh radius (mm) at the child joint of each bone, FreiHAND bone order (thumb, index, middle, ring,
# little; base to tip); the wrist's is WRIST_RADIUS. Each bone is drawn as a capsule tapering from its
# parent joint's radius to its child's, so fingers taper from the knuckle to the tip (the tip's radius
# ~0.7 of the proximal phalanx's base: the mild proximal-to-distal taper most adults have, Weinberg 2022,
# "Objective assessment of tapering of the fingers in adults", PLOS ONE 17:e0279202); finger breadths
# (18-21 mm at the base here) of the order hand surveys tabulate (e.g. Vergara, Agost & Gracia-Ibanez
# 2018, "Dorsal and palmar aspect dimensions of hand anthropometry"), scaled to this hand's length:
# 160 mm at scale 1, a small adult's, with segments in the proportions of Buchholz, Armstrong &
# Goldstein 1992, "Anthropometric data for describing the kinematics of the human hand" (wrist to
# middle MCP ~0.4 of the hand's length; the thumb's bones ~0.25, 0.2, 0.16 of it).
WRIST_RADIUS = 13.0
BONE_RADII = (14.0, 11.0, 9.4, 8.0) + (10.3, 9.0, 7.9, 7.0) + (10.6, 9.3, 8.1, 7.2) + (10.1, 8.8, 7.7, 6.9) + (9.2, 7.9, 6.9, 6.3)
PALM_THICKNESS = 28.0  # mm, the palm ellipsoid's depth: hand thickness at the metacarpals, ~30 mm in adults
PALM_ELLIPSOID = (-0.1, 0.52, 1.5, 0.6, 0.58)  # centre (x / width, y / length, z mm), semi-axes (x / width (+6 mm), y / length)
CARPUS = (0.55, 0.2, 11.0)  # the metacarpals' capsules start at (x, y) fractions of their MCP's, radius (mm)
THENAR = (13.0, 10.0, 9.0, 3.0)  # thenar ellipsoid (mm): half-width across the bone, half-depth, offsets towards the palm and out of it
FINGERTIP_INSET = 0.6  # the distal capsule stops 0.6 r short of the tip keypoint, which lies 0.4 r under the skin


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


# --- Poses ------------------------------------------------------------------------------------------
# A pose is drawn from a mixture: half are random poses with the couplings real hands have (below),
# half the gestures hand datasets are full of: STB's counting sequences show 1 to 5 fingers (Zhang et
# al. 2017), FreiHAND's subjects grasp objects and hold open hands (Zimmermann et al. 2019), RHD's
# characters gesture and act (Zimmermann & Brox 2017). Probabilities, summing to 1:
POSE_MODES = {
    "synergy": 0.50,  # random: a grasp-closure synergy with coupled per-finger deviations
    "open": 0.07,  # flat hand, fingers extended and spread, thumb out (counting 5)
    "fist": 0.08,  # every finger curled, the thumb over the middle finger
    "point": 0.07,  # index extended, the others curled under the thumb (counting 1)
    "count2": 0.06,  # index and middle extended and spread (V), the thumb over the ring finger
    "count3": 0.06,  # index, middle and ring extended, the thumb holding the little finger down
    "count4": 0.06,  # four fingers extended, the thumb folded across the palm
    "pinch": 0.10,  # thumb tip on the index tip (precision grip, "OK"); the other fingers relaxed or extended
}
_MODE_CDF = np.cumsum(list(POSE_MODES.values()))[:-1]
# Finger states of the named gestures: uniform (lo, hi) degrees for MCP and PIP flexion.
EXTENDED = ((-8.0, 10.0), (0.0, 12.0))
CURLED = ((65.0, 85.0), (80.0, 105.0))
# Thumb states: uniform (lo, hi) degrees for cmc_flex, cmc_abd, opposition, mcp_flex, ip_flex.
THUMB_STATES = {
    "out": ((-10.0, 5.0), (15.0, 40.0), (0.0, 15.0), (0.0, 15.0), (-10.0, 10.0)),
    "over": ((10.0, 50.0), (5.0, 45.0), (15.0, 50.0), (20.0, 60.0), (0.0, 60.0)),  # over curled fingers
    "across": ((35.0, 50.0), (0.0, 15.0), (15.0, 35.0), (25.0, 45.0), (10.0, 35.0)),  # folded across the palm
    "pinch": ((0.0, 45.0), (20.0, 60.0), (20.0, 50.0), (0.0, 45.0), (0.0, 60.0)),
}  # the "over" and "pinch" thumbs are then placed on THUMB_TARGETS within these ranges
_THUMB_STATE = {"open": "out", "count4": "across", "pinch": "pinch"}  # the others: "over"
# DIP follows PIP: DIP ~ (2/3) PIP, the classic coupling of the two interphalangeal joints (one tendon
# system moves both; Rijpkema & Girard 1991, "Computer animation of knowledge-based human grasping";
# Lin, Wu & Huang 2000, "Modeling the constraints of human hand motion"), with a small residual: the
# linkage is tight but not exact in free motion and manipulation (Roda-Sales, Sancho-Bru & Vergara 2022,
# "Studying kinematic linkage of finger joints", PeerJ 10:e14051).
DIP_PER_PIP, DIP_RESIDUAL = 2.0 / 3.0, 5.0
# Neighbouring fingers flex together. Finger movements are not independent: moving one finger moves
# its neighbours ("enslaving"), most for ring and little, least for the index (Hager-Ross & Schieber
# 2000, "Quantifying the independence of human finger movements", J. Neurosci. 20:8542; Ingram et al.
# 2008, "The statistics of natural hand movements", Exp. Brain Res. 188:223), and a few postural
# synergies, the first an overall opening and closing of the hand, explain most of the variance of
# grasp postures (Santello, Flanders & Soechting 1998, "Postural hand synergies for tool use",
# J. Neurosci. 18:10105). So each finger's closure (0 extended .. 1 curled) is the hand's closure plus a
# deviation correlated between neighbours (index, middle, ring, little), plus the resting cascade (the
# ulnar fingers sit more flexed).
FINGER_DEVIATION = 0.2
FINGER_DEVIATION_CORR = np.array(
    [
        [1.00, 0.45, 0.20, 0.05],
        [0.45, 1.00, 0.60, 0.35],
        [0.20, 0.60, 1.00, 0.80],
        [0.05, 0.35, 0.80, 1.00],
    ]
)
_DEVIATION_CHOLESKY = np.linalg.cholesky(FINGER_DEVIATION_CORR)
CASCADE = np.array([0.0, 0.03, 0.06, 0.10])
MCP_RANGE, PIP_RANGE = (-10.0, 85.0), (0.0, 105.0)  # closure 0 .. 1 maps onto these (before noise and clipping)
# Abduction: fingers spread mostly when extended; the abduction range shrinks as the MCP flexes (the
# collateral ligaments tighten: Lin, Wu & Huang 2000). A hand-level spread s in [-0.3, 1] turns each
# finger away from the middle finger by s * FINGER_SPREAD (negative s: fingers pressed together),
# scaled by 1 - ABDUCTION_SHRINK * MCP flexion / 85 deg; the middle finger moves little either way.
FINGER_SPREAD = np.array([16.0, 3.0, 11.0, 20.0])
ABDUCTION_SHRINK = 0.8


def _dip(pip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return DIP_PER_PIP * pip + rng.normal(0.0, DIP_RESIDUAL, size=np.shape(pip))


def _abduction(mcp: np.ndarray, spread: float, rng: np.random.Generator) -> np.ndarray:
    """Abduction of the four fingers for a hand-level spread, shrinking with MCP flexion."""
    room = 1.0 - ABDUCTION_SHRINK * np.clip(mcp, 0.0, 85.0) / 85.0
    middle_side = rng.choice([-1.0, 1.0])  # the middle finger leans either way
    direction = np.array([1.0, middle_side, 1.0, 1.0])
    return room * (spread * FINGER_SPREAD * direction + rng.normal(0.0, 2.0, size=4))


def _fingers(mcp: np.ndarray, pip: np.ndarray, spread: float, rng: np.random.Generator) -> np.ndarray:
    """(4, 4) finger angles from MCP and PIP flexion: DIP and abduction follow their couplings; clipped."""
    f_lo, f_hi = _limits(FINGER_LIMITS)
    angles = np.stack([mcp, _abduction(mcp, spread, rng), pip, _dip(pip, rng)], -1)
    return np.clip(angles, f_lo, f_hi)


def _synergy_pose(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random pose from the hand's synergies: closure, neighbour-correlated finger deviations, the
    thumb opposing as the hand closes."""
    closure = rng.uniform()
    deviation = FINGER_DEVIATION * _DEVIATION_CHOLESKY @ rng.standard_normal(4)  # ~ N(0, FINGER_DEVIATION^2 CORR)
    finger = np.clip(closure + CASCADE + deviation, 0.0, 1.0)
    # How a finger's closure splits between MCP and PIP: a hand-level style (hook grip: PIP first;
    # flat "table-top" grip: MCP first) and a little per finger; MCP and PIP stay positively coupled.
    style = rng.normal(0.0, 0.12) + rng.normal(0.0, 0.06, size=4)
    mcp = MCP_RANGE[0] + np.clip(finger + style, 0.0, 1.0) * (MCP_RANGE[1] - MCP_RANGE[0]) + rng.normal(0.0, 4.0, size=4)
    pip = PIP_RANGE[0] + np.clip(finger - style, 0.0, 1.0) * (PIP_RANGE[1] - PIP_RANGE[0]) + rng.normal(0.0, 5.0, size=4)
    spread = rng.uniform(-0.3, 1.0)
    fingers = _fingers(mcp, pip, spread, rng)
    # The thumb closes with the hand (its closure mostly the fingers'), and its opposition comes with CMC
    # abduction out of the palm and flexion across it: the thumb opposes as the hand closes (Santello et
    # al. 1998's first synergy couples thumb rotation with finger flexion).
    t_close = np.clip(0.65 * closure + 0.35 * rng.uniform() + rng.normal(0.0, 0.08), 0.0, 1.0)
    t_opp = np.clip(t_close + rng.normal(0.0, 0.12), 0.0, 1.0)
    mcp_t = 5.0 + 45.0 * t_close + rng.normal(0.0, 8.0)
    thumb = np.array(
        [
            -8.0 + 45.0 * t_close + rng.normal(0.0, 6.0),  # cmc_flex: across the palm
            10.0 + 40.0 * t_opp + rng.normal(0.0, 6.0),  # cmc_abd: out of the palm plane
            50.0 * t_opp + rng.normal(0.0, 4.0),  # opposition
            mcp_t,
            0.8 * mcp_t + rng.normal(0.0, 10.0),  # ip_flex: flexes with the MCP
        ]
    )
    return fingers, thumb


def _uniform(ranges, rng: np.random.Generator) -> np.ndarray:
    """Uniform draws within (..., (lo, hi)) ranges, one per range."""
    ranges = np.asarray(ranges)
    return rng.uniform(ranges[..., 0], ranges[..., 1])


def _gesture_pose(mode: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A named gesture: each finger extended or curled (uniform within its state's ranges), the thumb in
    its state; DIP and abduction from the same couplings as the synergy poses."""
    extended = {"open": 4, "fist": 0, "point": 1, "count2": 2, "count3": 3, "count4": 4, "pinch": 0}[mode]
    mcp_pip = _uniform([EXTENDED if f < extended else CURLED for f in range(4)], rng)  # (4, 2)
    if mode == "pinch":  # index half flexed to meet the thumb (see _place_thumb); the others relaxed or extended ("OK")
        mcp_pip[0] = _uniform(PINCH_INDEX, rng)
        relax = rng.uniform() * rng.uniform(0.2, 1.0)
        mcp_pip[1:] = np.array([[-5.0, 0.0]]) + relax * np.array([[60.0, 80.0]]) + rng.normal(0.0, 6.0, size=(3, 2))
    spread = {"open": rng.uniform(0.4, 1.0), "count2": rng.uniform(0.3, 1.0)}.get(mode, rng.uniform(-0.3, 0.6))
    fingers = _fingers(mcp_pip[:, 0], mcp_pip[:, 1], spread, rng)
    return fingers, _uniform(THUMB_STATES[_THUMB_STATE.get(mode, "over")], rng)


PINCH_INDEX = ((20.0, 55.0), (25.0, 70.0))  # the pinching index finger's MCP and PIP flexion (deg)
# Where a gesture's thumb tip rests: the midpoint of two joints of one finger, and the distance (mm, at scale 1) its tip
# keypoint keeps from it (flesh in between): on the curled fingers it holds down, or on the index tip.
THUMB_TARGETS = {
    "fist": ((10, 11), 16.0),  # the middle finger's middle phalanx
    "point": ((10, 11), 16.0),
    "count2": ((14, 15), 16.0),  # the ring finger's
    "count3": ((18, 19), 22.0),  # the little finger's (as near as this thumb's ranges reach)
    "pinch": ((8, 8), 12.0),  # the index tip, pad to pad
}


def _place_thumb(hand: dict, mode: str, rng: np.random.Generator, candidates: int = 96) -> dict:
    """Thumb angles within the mode's thumb state (and for a pinch the index flexion, within PINCH_INDEX)
    that put the thumb tip at THUMB_TARGETS' distance from its target: the best of `candidates` random
    ones, the drawn pose among them (typically within a millimetre or two)."""
    (j1, j2), gap = THUMB_TARGETS[mode]
    pinch = mode == "pinch"
    lo, hi = np.array(THUMB_STATES[_THUMB_STATE.get(mode, "over")] + (PINCH_INDEX if pinch else ())).T
    fingers = hand["finger_angles"]
    trial = rng.uniform(lo, hi, size=(candidates, len(lo)))
    trial[0] = np.concatenate([hand["thumb_angles"], fingers[0, [0, 2]] if pinch else []])
    tried = np.repeat(fingers[None], candidates, 0)
    if pinch:  # the index flexes with the thumb; its DIP keeps its coupling and its drawn residual
        residual = fingers[0, 3] - DIP_PER_PIP * fingers[0, 2]
        tried[:, 0, 0], tried[:, 0, 2], tried[:, 0, 3] = trial[:, 5], trial[:, 6], DIP_PER_PIP * trial[:, 6] + residual
        tried = np.clip(tried, *_limits(FINGER_LIMITS))
    tip, finger = _candidate_joints(hand, trial[:, :5], tried, (j1 - 5) // 4)  # both targets lie on one finger
    target = 0.5 * (finger[(j1 - 5) % 4] + finger[(j2 - 5) % 4])
    k = int(np.abs(np.linalg.norm(tip - target, axis=-1) - gap * hand["scale"]).argmin())
    return {**hand, "thumb_angles": trial[k, :5], "finger_angles": tried[k]}


def sample_hand(rng: np.random.Generator, mode: str | None = None) -> dict:
    """Random shape and pose for one hand, as plain arrays (a pure function of the generator state).

    The pose mode is drawn from POSE_MODES (synergy-driven random poses or named gestures) unless `mode`
    names one, and recorded under "pose"; every angle is clipped to the joint limits (FINGER_LIMITS,
    THUMB_LIMITS).
    """
    hand = {
        "scale": rng.uniform(0.85, 1.15),
        "bone_jitter": np.clip(rng.normal(1.0, 0.04, size=20), 0.9, 1.1),
        "palm_width": rng.uniform(0.9, 1.1),
    }
    drawn = list(POSE_MODES)[int(np.searchsorted(_MODE_CDF, rng.uniform(), side="right"))]
    mode = drawn if mode is None else mode
    fingers, thumb = _synergy_pose(rng) if mode == "synergy" else _gesture_pose(mode, rng)
    t_lo, t_hi = _limits(THUMB_LIMITS)
    hand.update(finger_angles=fingers, thumb_angles=np.clip(thumb, t_lo, t_hi), pose=mode)
    if mode in THUMB_TARGETS:
        hand = _place_thumb(hand, mode, rng)
    return hand


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


def _thumb_joints(params: HandParams) -> list[torch.Tensor]:
    """CMC, MCP, IP and tip of the thumb, each (B, 3): the metacarpal from the CMC, rotated across the
    palm and out of its plane; its flexion plane twisted by the opposition."""
    B = params.scale.shape[0]
    s, jit = params.scale[:, None], params.bone_jitter
    z = torch.tensor([0.0, 0.0, 1.0]).expand(B, 3)
    deg = torch.deg2rad(params.thumb_angles)
    cmc = (
        torch.stack([THUMB_CMC[0] * PALM_WIDTH * params.palm_width, torch.full((B,), THUMB_CMC[1] * PALM_LENGTH), torch.zeros(B)], -1)
        * s
        * jit[:, :1]
    )
    rest = torch.tensor([np.sin(np.deg2rad(THUMB_REST_ANGLE)), np.cos(np.deg2rad(THUMB_REST_ANGLE)), 0.0], dtype=torch.float32).expand(B, 3)
    direction = _rot_about(z, deg[:, 0], rest)  # +angle turns the thumb towards the fingers (about +z)
    lateral = torch.nn.functional.normalize(torch.cross(direction, z, dim=-1), dim=-1)
    direction = _rot_about(lateral, deg[:, 1], direction)  # abduction lifts it out of the palm (+z)
    normal = torch.nn.functional.normalize(torch.cross(lateral, direction, dim=-1), dim=-1)
    normal = _rot_about(direction, -deg[:, 2], normal)  # opposition twists the flexion plane
    lengths = torch.tensor(THUMB_BONES) * jit[:, 1:4] * s
    flex = torch.stack([torch.zeros(B), deg[:, 3], deg[:, 4]], -1)
    return [cmc] + _chain(cmc, direction, normal, lengths, flex)


def _finger_joints(params: HandParams, f: int) -> list[torch.Tensor]:
    """MCP, PIP, DIP and tip of finger f (0 index .. 3 little), each (B, 3): a planar chain flexing
    towards the palm normal, turned about it at the MCP by the abduction."""
    B = params.scale.shape[0]
    s, jit = params.scale[:, None], params.bone_jitter
    z = torch.tensor([0.0, 0.0, 1.0]).expand(B, 3)
    name = ("index", "middle", "ring", "little")[f]
    deg = torch.deg2rad(params.finger_angles[:, f])
    bx, by = MCP_LAYOUT[name]
    mcp = torch.stack([bx * PALM_WIDTH * params.palm_width, torch.full((B,), by * PALM_LENGTH), torch.zeros(B)], -1)
    mcp = mcp * s * jit[:, 4 + 4 * f, None]
    fan = FINGER_FAN * torch.atan2(mcp[:, 0], mcp[:, 1])  # the rest direction's angle from +y towards +x
    rest = torch.stack([torch.sin(fan), torch.cos(fan), torch.zeros(B)], -1)
    spread = -1.0 if bx >= 0 else 1.0  # positive abduction turns a finger away from the middle finger
    direction = _rot_about(z, spread * deg[:, 1], rest)
    lengths = torch.tensor(PHALANGES[name]) * jit[:, 5 + 4 * f : 8 + 4 * f] * s
    flex = torch.stack([deg[:, 0], deg[:, 2], deg[:, 3]], -1)
    return [mcp] + _chain(mcp, direction, z, lengths, flex)


def _cross_np(a, b):  # as np.cross, without its per-call axis handling (most of its cost here)
    a, b = np.broadcast_arrays(a, b)
    return np.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        -1,
    )


def _rot_about_np(axis, angle, v):
    cos, sin = np.cos(angle)[..., None], np.sin(angle)[..., None]
    return v * cos + _cross_np(axis, v) * sin + axis * (axis * v).sum(-1, keepdims=True) * (1 - cos)


def _unit_np(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _candidate_joints(hand: dict, thumb_angles: np.ndarray, finger_angles: np.ndarray, f: int):
    """A NumPy (float64) mirror of _thumb_joints' tip and _finger_joints(f) for N candidate poses of one
    hand (thumb_angles (N, 5), finger_angles (N, 4, 4)): the thumb placement's cheap evaluator, the
    same kinematics at a fraction of torch's per-call cost (tests hold it to hand_joints)."""
    s, jit, width = hand["scale"], hand["bone_jitter"], hand["palm_width"]
    z = np.array([0.0, 0.0, 1.0])
    deg = np.deg2rad(thumb_angles)
    cmc = np.array([THUMB_CMC[0] * PALM_WIDTH * width, THUMB_CMC[1] * PALM_LENGTH, 0.0]) * s * jit[0]
    rest = np.array([np.sin(np.deg2rad(THUMB_REST_ANGLE)), np.cos(np.deg2rad(THUMB_REST_ANGLE)), 0.0])
    direction = _rot_about_np(z, deg[:, 0], rest)
    lateral = _unit_np(_cross_np(direction, z))
    direction = _rot_about_np(lateral, deg[:, 1], direction)
    normal = _rot_about_np(direction, -deg[:, 2], _unit_np(_cross_np(lateral, direction)))
    tip, total = cmc, 0.0
    for length, flex in zip(np.array(THUMB_BONES) * jit[1:4] * s, (0.0, deg[:, 3], deg[:, 4])):
        total = total + flex
        tip = tip + length * (np.cos(total)[..., None] * direction + np.sin(total)[..., None] * normal)

    name = ("index", "middle", "ring", "little")[f]
    deg = np.deg2rad(finger_angles[:, f])
    bx, by = MCP_LAYOUT[name]
    mcp = np.array([bx * PALM_WIDTH * width, by * PALM_LENGTH, 0.0]) * s * jit[4 + 4 * f]
    fan = FINGER_FAN * np.arctan2(mcp[0], mcp[1])
    direction = _rot_about_np(z, (-1.0 if bx >= 0 else 1.0) * deg[:, 1], np.array([np.sin(fan), np.cos(fan), 0.0]))
    joints, p, total = [np.broadcast_to(mcp, direction.shape)], mcp, 0.0
    for length, flex in zip(np.array(PHALANGES[name]) * jit[5 + 4 * f : 8 + 4 * f] * s, (deg[:, 0], deg[:, 2], deg[:, 3])):
        total = total + flex
        p = p + length * (np.cos(total)[..., None] * direction + np.sin(total)[..., None] * z)
        joints.append(p)
    return tip, joints


def hand_joints(params: HandParams) -> torch.Tensor:
    """Joint positions in the hand frame, (B, 21, 3) mm, canonical (FreiHAND) order."""
    joints = [torch.zeros(params.scale.shape[0], 3)] + _thumb_joints(params)
    for f in range(4):
        joints += _finger_joints(params, f)
    out = torch.stack(joints, 1)
    assert out.shape[1] == N_JOINTS
    return out
