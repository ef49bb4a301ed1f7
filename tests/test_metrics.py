"""EPE / PCK / AUC on tiny hand-computed cases (SPEC section 4, hand3d protocol)."""

import pytest
import torch

from repro.data.joints import palm_centre
from repro.geometry3d import normalize_pose
from repro.metrics import auc, epe_mm, epe_summary, pck_curve, pck_thresholds, predictions_to_mm

D = torch.tensor([[0.0], [10.0], [30.0], [60.0]])  # four errors of one joint, mm


def test_epe_mm_distances():
    pred = torch.zeros(1, 21, 3)
    gt = torch.zeros(1, 21, 3)
    gt[0, 3] = torch.tensor([3.0, 4.0, 0.0])
    gt[0, 7] = torch.tensor([0.0, 0.0, -2.0])
    d = epe_mm(pred, gt)
    assert d.shape == (1, 21)
    assert d[0, 3].item() == pytest.approx(5.0) and d[0, 7].item() == pytest.approx(2.0)
    assert d.sum().item() == pytest.approx(7.0)


def test_epe_summary_mean_median():
    s = epe_summary(D)
    assert s["mean"] == pytest.approx(25.0)
    assert s["median"] == pytest.approx(20.0)  # even count: mean of the middle two, as np.median
    # per joint first (hand3d): joint 0 errors [0, 10], joint 1 errors [30, 60]
    two = torch.tensor([[0.0, 30.0], [10.0, 60.0]])
    s = epe_summary(two)
    assert s["mean"] == pytest.approx(25.0)
    assert s["median"] == pytest.approx((5.0 + 45.0) / 2)
    assert s["median_pooled"] == pytest.approx(20.0)
    # visibility: the 60 mm error is not counted
    vis = torch.tensor([[True, True], [True, False]])
    assert epe_summary(two, vis)["mean"] == pytest.approx((5.0 + 30.0) / 2)


def test_pck_curve_thresholds_and_values():
    thr = pck_thresholds()
    assert thr.shape == (51,) and thr[0] == 0 and thr[-1] == 50 and thr[1] == 1
    curve = pck_curve(D)
    assert curve.shape == (51,)
    assert curve[0].item() == 0.25  # the 0 mm error counts at t = 0 (<=)
    assert curve[9].item() == 0.25 and curve[10].item() == 0.5
    assert curve[29].item() == 0.5 and curve[30].item() == 0.75 and curve[50].item() == 0.75
    assert pck_curve(D, torch.tensor([5.0, 100.0])).tolist() == [0.25, 1.0]


def test_auc_20_50_and_0_50_by_hand():
    curve = pck_curve(D)
    thr = pck_thresholds()
    # 20..29: 0.5 (9 unit steps), 29->30: (0.5 + 0.75) / 2, 30..50: 0.75 (20 steps) -> / 30
    assert auc(curve, thr) == pytest.approx((9 * 0.5 + 0.625 + 20 * 0.75) / 30)
    # 0..9: 0.25, 9->10: 0.375, 10..29: 0.5, 29->30: 0.625, 30..50: 0.75 -> / 50
    assert auc(curve, thr, lo=0, hi=50) == pytest.approx((2.25 + 0.375 + 9.5 + 0.625 + 15) / 50)
    assert auc(torch.ones(51), thr) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        auc(curve, thr, lo=20.5, hi=50)


def _hand(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 21, 3, generator=g) * 40.0 + torch.tensor([0.0, 0.0, 500.0])


def test_predictions_to_mm_hand3d_protocol():
    gt = _hand(0)
    rel, scale, _, _ = normalize_pose(gt)
    pred_mm, gt_rel = predictions_to_mm(rel, gt)
    assert torch.allclose(gt_rel, gt - palm_centre(gt)[:, None], atol=1e-4)
    assert torch.allclose(pred_mm, gt_rel, atol=1e-3)  # a perfect prediction has zero EPE
    assert epe_mm(pred_mm, gt_rel).max().item() < 1e-3
    # scaling uses the ground-truth bone 9 -> 10
    unit = torch.zeros(2, 21, 3)
    unit[:, 4, 0] = 1.0
    pred_mm, _ = predictions_to_mm(unit, gt)
    assert torch.allclose(pred_mm[:, 4, 0], (gt[:, 10] - gt[:, 9]).norm(dim=-1))
