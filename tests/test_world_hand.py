"""The articulated hand: bone lengths, joint limits, natural poses and named gestures, its shape."""

import numpy as np
import pytest
import torch

from repro.data.joints import BONES, bone_lengths
from repro.data.world.hand import (
    BONE_RADII,
    FINGER_FAN,
    FINGER_LIMITS,
    PALM_LENGTH,
    PALM_THICKNESS,
    PHALANGES,
    POSE_MODES,
    THUMB_LIMITS,
    THUMB_TARGETS,
    _candidate_joints,
    hand_joints,
    sample_hand,
    stack_params,
)
from repro.data.world.raycast import ray_capsule
from repro.data.world.render import ray_round_cone, round_cone_normal


def _hands(n, seed=0):
    return [sample_hand(np.random.default_rng([seed, i])) for i in range(n)]


def _angle(u, v):
    cos = (u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1))
    return torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))


def test_bone_lengths_do_not_change_with_articulation():
    shape = _hands(1)[0]
    poses = _hands(20, seed=1)
    hands = [{**shape, "finger_angles": p["finger_angles"], "thumb_angles": p["thumb_angles"]} for p in poses]
    lengths = bone_lengths(hand_joints(stack_params(hands)))
    assert torch.allclose(lengths, lengths[:1].expand_as(lengths), atol=1e-4)
    # ... while different shapes do change them
    assert (bone_lengths(hand_joints(stack_params(_hands(2, seed=2)))).diff(dim=0).abs() > 0.1).any()


def test_rest_pose_has_the_mean_proportions():
    rest = {"scale": 1.0, "bone_jitter": np.ones(20), "palm_width": 1.0, "finger_angles": np.zeros((4, 4)), "thumb_angles": np.zeros(5)}
    lengths = bone_lengths(hand_joints(stack_params([rest])))[0]
    middle = [k for k, (p, c) in enumerate(BONES) if c in (10, 11, 12)]
    assert torch.allclose(lengths[middle], torch.tensor([44.0, 27.0, 21.0]))
    xyz = hand_joints(stack_params([rest]))[0]
    assert torch.allclose(xyz[9], torch.tensor([0.0, 68.0, 0.0]))  # middle MCP on +y at the palm length


def test_joint_angles_stay_within_anatomical_limits():
    xyz = hand_joints(stack_params(_hands(400)))
    normal = torch.tensor([0.0, 0.0, 1.0])
    for f in range(4):
        mcp, pip, dip, tip = (1 + 4 * (f + 1) + k for k in range(4))
        meta, prox, mid, dist = xyz[:, mcp] - xyz[:, 0], xyz[:, pip] - xyz[:, mcp], xyz[:, dip] - xyz[:, pip], xyz[:, tip] - xyz[:, dip]
        flexion = torch.rad2deg(torch.arcsin((prox @ normal) / prox.norm(dim=-1)))  # out of the palm plane
        in_plane = prox.clone()
        in_plane[:, 2] = 0
        # zero abduction points a finger FINGER_FAN times its metacarpal's angle off +y
        fan = FINGER_FAN * torch.atan2(meta[:, 0], meta[:, 1])
        rest = torch.stack([torch.sin(fan), torch.cos(fan), torch.zeros_like(fan)], -1)
        abduction = _angle(in_plane, rest)
        for value, (lo, hi) in ((flexion, FINGER_LIMITS["mcp_flex"]), (abduction, (0.0, FINGER_LIMITS["mcp_abd"][1]))):
            assert value.min() >= lo - 1e-3 and value.max() <= hi + 1e-3
        assert _angle(prox, mid).max() <= FINGER_LIMITS["pip_flex"][1] + 1e-3
        assert _angle(mid, dist).max() <= FINGER_LIMITS["dip_flex"][1] + 1e-3
        # the limits are used, not just respected: curled fingers occur
        assert _angle(prox, mid).max() > 0.8 * FINGER_LIMITS["pip_flex"][1]
    thumb = [xyz[:, k + 1] - xyz[:, k] for k in (1, 2, 3)]
    assert _angle(thumb[0], thumb[1]).max() <= THUMB_LIMITS["mcp_flex"][1] + 1e-3
    assert _angle(thumb[1], thumb[2]).max() <= max(-THUMB_LIMITS["ip_flex"][0], THUMB_LIMITS["ip_flex"][1]) + 1e-3


def test_hand_is_right_handed():
    """Thumb on +x when fingers point +y and the palm faces +z: a right hand."""
    rest = {"scale": 1.0, "bone_jitter": np.ones(20), "palm_width": 1.0, "finger_angles": np.zeros((4, 4)), "thumb_angles": np.zeros(5)}
    xyz = hand_joints(stack_params([rest]))[0]
    assert xyz[4, 0] > 0 and xyz[20, 0] < 0
    curled = {**rest, "finger_angles": np.tile([80.0, 0.0, 90.0, 60.0], (4, 1))}
    assert hand_joints(stack_params([curled]))[0, 8, 2] > 20  # fingers curl towards the palm side (+z)


# --- Natural poses ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def draws():
    """2000 hands from the full mixture: finger angles (N, 4, 4), thumb angles (N, 5), pose names."""
    hands = _hands(2000, seed=3)
    return np.stack([h["finger_angles"] for h in hands]), np.stack([h["thumb_angles"] for h in hands]), [h["pose"] for h in hands]


def test_every_sampled_angle_is_within_its_limit(draws):
    fingers, thumb, _ = draws
    for k, (lo, hi) in enumerate(FINGER_LIMITS.values()):
        assert fingers[:, :, k].min() >= lo and fingers[:, :, k].max() <= hi
    for k, (lo, hi) in enumerate(THUMB_LIMITS.values()):
        assert thumb[:, k].min() >= lo and thumb[:, k].max() <= hi


def test_sampling_is_a_pure_function_of_the_generator():
    for i in range(40):  # every pose mode occurs among these
        a, b = sample_hand(np.random.default_rng([9, i])), sample_hand(np.random.default_rng([9, i]))
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    c = sample_hand(np.random.default_rng([9, 40]))
    assert not np.array_equal(a["finger_angles"], c["finger_angles"])


def test_dip_follows_pip(draws):
    """DIP ~ (2/3) PIP with a small residual (Rijpkema & Girard 1991; Lin, Wu & Huang 2000)."""
    fingers, _, _ = draws
    for f in range(4):
        pip, dip = fingers[:, f, 2], fingers[:, f, 3]
        assert np.corrcoef(pip, dip)[0, 1] > 0.8
        assert 0.55 < np.polyfit(pip, dip, 1)[0] < 0.75  # the slope, near 2/3


def test_neighbouring_fingers_flex_together(draws):
    """Enslaving: neighbours' flexions correlate, ring and little the most, index and little the least."""
    fingers, _, _ = draws
    flexion = fingers[:, :, 0] + fingers[:, :, 2]  # MCP + PIP
    corr = np.corrcoef(flexion.T)
    for f in range(3):
        assert corr[f, f + 1] > 0.3
    assert corr[2, 3] > corr[0, 3] + 0.2
    assert corr[2, 3] >= max(corr[0, 1], corr[1, 2]) - 0.05


def test_fingers_spread_mostly_when_extended(draws):
    """The abduction range shrinks as the MCP flexes (Lin, Wu & Huang 2000)."""
    fingers, _, _ = draws
    mcp, abduction = fingers[:, :, 0], np.abs(fingers[:, :, 1])
    extended, flexed = abduction[mcp < 20].mean(), abduction[mcp > 60].mean()
    assert flexed < 0.6 * extended
    assert abduction[mcp < 20].max() > 12  # and extended fingers do spread


def test_the_thumb_opposes_as_the_hand_closes(draws):
    fingers, thumb, poses = draws
    synergy = np.array(poses) == "synergy"
    closure = (fingers[:, :, 0] + fingers[:, :, 2]).mean(1)
    cmc_flex, cmc_abd, opposition = thumb[synergy, 0], thumb[synergy, 1], thumb[synergy, 2]
    assert np.corrcoef(closure[synergy], opposition)[0, 1] > 0.3
    assert np.corrcoef(opposition, cmc_abd)[0, 1] > 0.3 and np.corrcoef(opposition, cmc_flex)[0, 1] > 0.3
    assert thumb[np.array(poses) == "fist", 2].mean() > thumb[np.array(poses) == "open", 2].mean() + 15


def test_pose_modes_occur_as_often_as_their_weights(draws):
    _, _, poses = draws
    assert abs(sum(POSE_MODES.values()) - 1) < 1e-9
    for mode, weight in POSE_MODES.items():
        share = poses.count(mode) / len(poses)
        assert abs(share - weight) < 4 * (weight * (1 - weight) / len(poses)) ** 0.5 + 1e-3, mode


def _gesture(mode, n=60):
    hands = [sample_hand(np.random.default_rng([21, i]), mode=mode) for i in range(n)]
    assert all(h["pose"] == mode for h in hands)
    return hands, np.stack([h["finger_angles"] for h in hands]), hand_joints(stack_params(hands))


@pytest.mark.parametrize("mode, extended", [("open", 4), ("point", 1), ("count2", 2), ("count3", 3), ("count4", 4), ("fist", 0)])
def test_named_gestures_extend_and_curl_the_fingers_they_claim(mode, extended):
    """Counting gestures as in STB's counting sequences: the first `extended` fingers straight
    (PIP < 20 deg), the others curled (PIP > 60 deg, MCP > 60 deg)."""
    _, fingers, xyz = _gesture(mode)
    pip, mcp = fingers[:, :, 2], fingers[:, :, 0]
    assert (pip[:, :extended] < 20).all() and (mcp[:, :extended] < 20).all()
    assert (pip[:, extended:] > 60).all() and (mcp[:, extended:] > 60).all()
    if extended < 4:  # curled fingers' tips come back towards the palm, below the extended ones' PIPs
        tips = xyz[:, [8, 12, 16, 20]]
        assert (tips[:, extended:, 1] < xyz[:, 5:6, 1] + 25).all()


def test_the_thumb_rests_where_the_gesture_puts_it():
    for mode, ((j1, j2), gap) in THUMB_TARGETS.items():
        hands, _, xyz = _gesture(mode)
        scale = torch.tensor([h["scale"] for h in hands])
        error = ((xyz[:, 4] - 0.5 * (xyz[:, j1] + xyz[:, j2])).norm(dim=-1) - gap * scale).abs()
        # count3's little finger lies at the edge of the thumb's reach: as near as it gets
        assert error.median() < (8 if mode == "count3" else 3) and error.quantile(0.9) < 15, mode
    _, _, open_hand = _gesture("open")
    assert ((open_hand[:, 4] - open_hand[:, 8]).norm(dim=-1) > 50).all()  # an open hand's thumb is away from the index


def test_the_thumb_search_evaluates_the_same_kinematics_as_hand_joints():
    """_place_thumb scores candidates with a NumPy mirror of hand_joints' thumb and finger chains."""
    shape = sample_hand(np.random.default_rng(5))
    poses = _hands(64, seed=6)
    thumbs, fingers = np.stack([h["thumb_angles"] for h in poses]), np.stack([h["finger_angles"] for h in poses])
    xyz = hand_joints(stack_params([{**shape, "thumb_angles": t, "finger_angles": f} for t, f in zip(thumbs, fingers)]))
    for f in range(4):
        tip, finger = _candidate_joints(shape, thumbs, fingers, f)
        assert np.abs(tip - xyz[:, 4].numpy()).max() < 1e-3
        assert np.abs(np.stack(finger, 1) - xyz[:, 5 + 4 * f : 9 + 4 * f].numpy()).max() < 1e-3


def test_a_pinch_brings_thumb_and_index_tips_together():
    hands, _, xyz = _gesture("pinch")
    distance = (xyz[:, 4] - xyz[:, 8]).norm(dim=-1)
    assert distance.median() < 16 and (distance < 25).float().mean() > 0.9


# --- Shape ------------------------------------------------------------------------------------------


def test_fingers_taper_and_the_palm_has_thickness():
    radii = np.array(BONE_RADII).reshape(5, 4)  # at each digit's joints, base to tip
    assert (np.diff(radii, axis=1) < 0).all()  # every digit tapers towards its tip
    assert (0.6 < radii[1:, 3] / radii[1:, 0]).all() and (radii[1:, 3] / radii[1:, 0] < 0.75).all()
    assert 25 <= PALM_THICKNESS <= 30
    hand_length = PALM_LENGTH + sum(PHALANGES["middle"])
    assert 0.38 < PALM_LENGTH / hand_length < 0.47  # wrist-MCP ~0.4 of the hand's length


def _vectors(x):
    return tuple(x[:, i] for i in range(3))


def _round_cone_distance(p, a, b, ra, rb):
    """Signed distance to the convex hull of spheres (a, ra) and (b, rb): the union of the spheres
    interpolated between them, sampled densely."""
    lam = torch.linspace(0, 1, 401, dtype=torch.float64)
    centres = a[:, None] + lam[None, :, None] * (b - a)[:, None]
    return ((p[:, None] - centres).norm(dim=-1) - (ra[:, None] + lam * (rb - ra)[:, None])).min(1).values


def test_tapered_capsules_are_hit_on_their_surface_and_nowhere_before():
    """The renderer's tapered finger segments: each hit lies on the surface, with the surface's normal,
    and no earlier point of its ray is inside; missing rays stay outside; equal radii give a capsule."""
    g = torch.Generator().manual_seed(0)
    n = 800
    a = torch.randn(n, 3, generator=g, dtype=torch.float64) * 20 + torch.tensor([0.0, 0.0, 300.0], dtype=torch.float64)
    b = a + torch.randn(n, 3, generator=g, dtype=torch.float64) * 25
    ra, rb = 4 + 8 * torch.rand(n, generator=g, dtype=torch.float64), 4 + 8 * torch.rand(n, generator=g, dtype=torch.float64)
    aim = a + torch.rand(n, 1, generator=g, dtype=torch.float64) * (b - a) + 12 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    rd = torch.nn.functional.normalize(aim, dim=-1)
    t = ray_round_cone(_vectors(rd), _vectors(a), _vectors(b), ra, rb)
    hit = torch.isfinite(t)
    assert 0.2 < hit.double().mean() < 0.8
    p = rd[hit] * t[hit, None]
    args = (a[hit], b[hit], ra[hit], rb[hit])
    assert _round_cone_distance(p, *args).abs().max() < 0.02
    assert _round_cone_distance(0.995 * p, *args).min() > 0  # nothing inside before the hit
    eps = torch.eye(3, dtype=torch.float64) * 1e-3
    grad = torch.stack([_round_cone_distance(p + eps[i], *args) - _round_cone_distance(p - eps[i], *args) for i in range(3)], -1)
    normal = torch.stack(round_cone_normal(_vectors(p), *(_vectors(x) for x in args[:2]), *args[2:]), -1)
    assert (normal * torch.nn.functional.normalize(grad, dim=-1)).sum(-1).min() > 0.999
    depths = torch.linspace(150, 450, 241, dtype=torch.float64)
    miss = ~hit
    along = torch.stack([_round_cone_distance(rd[miss] * d, a[miss], b[miss], ra[miss], rb[miss]) for d in depths], 1)
    assert along.min() > -1e-6
    capsule = ray_capsule(_vectors(rd), _vectors(a), _vectors(b), ra)
    cone = ray_round_cone(_vectors(rd), _vectors(a), _vectors(b), ra, ra)
    assert torch.equal(torch.isfinite(capsule), torch.isfinite(cone))
    assert torch.allclose(capsule[torch.isfinite(capsule)], cone[torch.isfinite(cone)], atol=1e-6)
