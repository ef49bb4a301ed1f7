"""The articulated hand: bone lengths, joint limits."""

import numpy as np
import torch

from repro.data.joints import BONES, bone_lengths
from repro.data.world.hand import FINGER_LIMITS, THUMB_LIMITS, hand_joints, sample_hand, stack_params


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
        abduction = _angle(in_plane, meta)
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
