"""Zimmermann & Brox normalisation and Rodrigues (repro.geometry3d)."""

import math

import pytest
import torch

from repro.data.joints import palm_centre
from repro.geometry3d import bounded_angle, denormalize, normalize_pose, rodrigues


def _hands(n: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xyz = torch.randn(n, 21, 3, generator=g, dtype=torch.float64) * 40.0
    return xyz + torch.tensor([10.0, -20.0, 600.0], dtype=torch.float64)


def test_normalize_pose_properties():
    xyz = _hands()
    rel, scale, r, can = normalize_pose(xyz)
    assert rel.shape == (4, 21, 3) and scale.shape == (4,) and r.shape == (4, 3, 3)
    assert palm_centre(rel).abs().max() < 1e-12  # palm centre at the origin
    assert torch.allclose((rel[:, 10] - rel[:, 9]).norm(dim=-1), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(scale, (xyz[:, 10] - xyz[:, 9]).norm(dim=-1))
    eye = torch.eye(3, dtype=torch.float64).expand(4, 3, 3)
    assert torch.allclose(r @ r.transpose(1, 2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(r), torch.ones(4, dtype=torch.float64))
    # canonical frame: middle MCP on -y, little MCP in z = 0 with x > 0
    assert can[:, 9, 0].abs().max() < 1e-12 and can[:, 9, 2].abs().max() < 1e-12
    assert (can[:, 9, 1] < 0).all()
    assert can[:, 17, 2].abs().max() < 1e-12 and (can[:, 17, 0] > 0).all()
    # coords_rel_norm = canonical @ R, lengths preserved
    assert torch.allclose(can @ r, rel, atol=1e-12)
    assert torch.allclose(can.norm(dim=-1), rel.norm(dim=-1))


def test_normalize_pose_invariant_to_rotation_translation_scale():
    xyz = _hands(2, seed=1)
    rot = rodrigues(torch.tensor([[0.3, -1.2, 0.7], [2.0, 0.1, -0.4]], dtype=torch.float64))
    moved = 2.5 * xyz @ rot.transpose(1, 2) + torch.tensor([5.0, 6.0, 7.0], dtype=torch.float64)
    _, _, _, can_a = normalize_pose(xyz)
    _, scale_b, _, can_b = normalize_pose(moved)
    assert torch.allclose(can_a, can_b, atol=1e-10)
    assert torch.allclose(scale_b, 2.5 * (xyz[:, 10] - xyz[:, 9]).norm(dim=-1))


def test_denormalize_inverts():
    xyz = _hands()
    rel, scale, _, _ = normalize_pose(xyz)
    assert torch.allclose(denormalize(rel, scale, palm_centre(xyz)), xyz, atol=1e-10)


def test_rodrigues_zero_is_identity_with_finite_gradient():
    aa = torch.zeros(2, 3, requires_grad=True)
    r = rodrigues(aa)
    assert torch.equal(r.detach(), torch.eye(3).expand(2, 3, 3))
    (r * torch.arange(9.0).reshape(3, 3)).sum().backward()
    assert torch.isfinite(aa.grad).all()
    # first order at 0: R = I + [aa]_x, so d sum(W * R) / d aa = (W32 - W23, W13 - W31, W21 - W12)
    assert aa.grad[0].tolist() == pytest.approx([7.0 - 5.0, 2.0 - 6.0, 3.0 - 1.0])


def test_rodrigues_ninety_degrees_and_continuity():
    r = rodrigues(torch.tensor([[0.0, 0.0, math.pi / 2]], dtype=torch.float64))[0]
    expected = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(r, expected, atol=1e-12)
    assert torch.allclose(
        r @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-12
    )
    # either side of the Taylor switch agree
    small = torch.tensor([[0.0, 0.0, 0.99e-4], [0.0, 0.0, 1.01e-4]], dtype=torch.float64)
    r = rodrigues(small)
    for k, t in enumerate(small[:, 2].tolist()):
        assert r[k, 0, 0].item() == pytest.approx(math.cos(t), abs=1e-15)
        assert r[k, 1, 0].item() == pytest.approx(math.sin(t), abs=1e-15)
    aa = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    rr = rodrigues(aa)
    assert torch.allclose(rr @ rr.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(5, 3, 3))
    assert torch.allclose(torch.linalg.det(rr), torch.ones(5, dtype=torch.float64))


def test_bounded_angle_keeps_the_axis_and_squashes_the_angle_below_pi():
    aa = torch.tensor([[math.pi, 0.0, 0.0], [0.0, 0.0, -0.5], [0.0, 3000.0, 0.0], [0.6, 0.0, 0.8]], dtype=torch.float64)
    out = bounded_angle(aa)
    expected = [
        [math.pi * math.tanh(1.0), 0.0, 0.0],  # 2.3926: pi tanh 1
        [0.0, 0.0, -math.pi * math.tanh(0.5 / math.pi)],  # -0.4958: small angles barely move
        [0.0, math.pi, 0.0],  # a runaway head stops at pi
        [0.6 * math.pi * math.tanh(1.0 / math.pi), 0.0, 0.8 * math.pi * math.tanh(1.0 / math.pi)],  # same axis
    ]
    assert torch.allclose(out, torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    assert out[0, 0].item() == pytest.approx(2.39262, abs=1e-5)


def test_bounded_angle_at_zero_is_the_identity_map_with_its_gradient():
    aa = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    out = bounded_angle(aa)
    assert torch.equal(out.detach(), torch.zeros(1, 3, dtype=torch.float64))
    (out * torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64)).sum().backward()
    assert aa.grad.tolist() == [[1.0, -2.0, 3.0]]
    # either side of the Taylor switch (t^2 = 1e-8) agree
    sides = bounded_angle(torch.tensor([[0.99e-4, 0.0, 0.0], [1.01e-4, 0.0, 0.0]], dtype=torch.float64))
    for k, t in enumerate((0.99e-4, 1.01e-4)):
        assert sides[k, 0].item() == pytest.approx(math.pi * math.tanh(t / math.pi), rel=1e-15)
