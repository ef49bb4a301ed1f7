"""EPE / PCK / AUC on tiny hand-computed cases (SPEC section 4, hand3d protocol)."""

import pytest
import torch

from repro.data.joints import palm_centre
from repro.geometry3d import normalize_pose
from repro.metrics import auc, epe_mm, epe_summary, pck_curve, pck_thresholds, predictions_to_mm
from repro.train.evaluate import pose_metrics

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


# Visibility (SPEC section 7, hand3d EvalUtil): joint k counts only in the samples where it is visible.


def test_invisible_joint_error_ignored_by_visible_protocol():
    # three joints, two samples; joint 2 is invisible in sample 0 and there carries a 1000 mm error
    d = torch.tensor([[10.0, 20.0, 1000.0], [30.0, 40.0, 50.0]])
    vis = torch.tensor([[True, True, False], [True, True, True]])
    # visible: joint 0 mean (10 + 30) / 2 = 20, joint 1 (20 + 40) / 2 = 30, joint 2 only 50 -> (20 + 30 + 50) / 3
    assert epe_summary(d, vis)["mean"] == pytest.approx(100.0 / 3)
    # all joints: joint 2 mean (1000 + 50) / 2 = 525 -> (20 + 30 + 525) / 3
    assert epe_summary(d)["mean"] == pytest.approx(575.0 / 3)
    # medians of two values are their means, so here the medians equal the means joint by joint
    assert epe_summary(d, vis)["median"] == pytest.approx(100.0 / 3)
    assert epe_summary(d)["median"] == pytest.approx(575.0 / 3)


def test_joint_never_visible_is_left_out_of_the_averages():
    # joint 1 is visible in no sample: hand3d skips it, so the mean runs over joint 0 alone
    d = torch.tensor([[10.0, 1000.0], [30.0, 1000.0]])
    vis = torch.tensor([[True, False], [True, False]])
    s = epe_summary(d, vis)
    assert s["mean"] == pytest.approx(20.0)  # not (20 + 0) / 2 = 10
    assert s["median"] == pytest.approx(20.0)
    assert pck_curve(d, torch.tensor([15.0, 50.0]), vis).tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match="no joint"):
        epe_summary(d, torch.zeros(2, 2, dtype=torch.bool))


# joint 0 is visible in all three samples, joint 1 only in the first
PARTIAL = torch.tensor([[10.0, 40.0], [20.0, 100.0], [30.0, 100.0]])
PARTIAL_VIS = torch.tensor([[True, True], [True, False], [True, False]])


def test_partly_visible_joint_per_joint_mean_first():
    s = epe_summary(PARTIAL, PARTIAL_VIS)
    # per joint: joint 0 (10 + 20 + 30) / 3 = 20, joint 1 40 -> (20 + 40) / 2 = 30
    assert s["mean"] == 30.0
    # the pooled mean of the counted errors would be (10 + 20 + 30 + 40) / 4 = 25
    assert s["mean"] != pytest.approx(25.0)
    # medians: joint 0 20, joint 1 40 -> 30; pooled median of [10, 20, 30, 40] = 25
    assert s["median"] == 30.0 and s["median_pooled"] == pytest.approx(25.0)


def test_pck_and_auc_with_mask():
    thr = pck_thresholds()
    curve = pck_curve(PARTIAL, visible=PARTIAL_VIS)
    # joint 0 (errors 10, 20, 30): 0 below 10, 1/3 from 10, 2/3 from 20, 1 from 30; joint 1 (40): 0, then 1 from 40
    # mean: 0 (t < 10), 1/6 (10..19), 1/3 (20..29), 1/2 (30..39), 1 (40..50)
    assert curve[9].item() == 0.0 and curve[10].item() == pytest.approx(1 / 6)
    assert curve[20].item() == pytest.approx(1 / 3) and curve[30].item() == pytest.approx(0.5)
    assert curve[39].item() == pytest.approx(0.5) and curve[40].item() == 1.0 and curve[50].item() == 1.0
    # AUC 20-50: 20..29 at 1/3 (9 steps) = 3, 29->30 (1/3 + 1/2) / 2 = 5/12, 30..39 at 1/2 = 4.5,
    # 39->40 (1/2 + 1) / 2 = 3/4, 40..50 at 1 = 10 -> 56/3 over 30 mm = 28/45
    assert auc(curve, thr) == pytest.approx(28 / 45)
    # hand3d averages per-joint AUCs: joint 0 (6 + 5/6 + 20) / 30, joint 1 (1/2 + 10) / 30 -> the same by linearity
    assert auc(curve, thr) == pytest.approx(((6 + 5 / 6 + 20) / 30 + 10.5 / 30) / 2)
    # all joints: joint 1's 100 mm errors stay above 50 mm, so PCK(50) = (1 + 1/3) / 2
    assert pck_curve(PARTIAL)[50].item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="does not match"):
        pck_curve(PARTIAL, visible=PARTIAL_VIS.T)  # a transposed mask is refused, not reshaped


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


def test_pose_metrics_visible_and_all_joints():
    gt = _hand(1).double()
    pred = normalize_pose(gt)[0].clone()  # a perfect prediction
    scale = (gt[:, 10] - gt[:, 9]).norm(dim=-1)
    pred[0, 8, 0] += 1000.0 / scale[0]  # sample 0's index tip 1000 mm off ...
    vis = torch.ones(2, 21, dtype=torch.bool)
    vis[0, 8] = False  # ... where that joint is not visible
    m = pose_metrics(pred, gt, vis)
    names = {"epe_mm", "epe_median_mm", "auc_20_50", "pck_curve", "epe_all_mm", "epe_median_all_mm", "auc_20_50_all", "pck_curve_all"}
    assert names <= set(m) and m["pck_curve_all"].shape == m["pck_thresholds_mm"].shape == (51,)
    # visible: joint 8 counts only sample 1 (error 0); every joint's error is 0
    assert m["epe_mm"] == pytest.approx(0.0, abs=1e-6) and m["epe_median_mm"] == pytest.approx(0.0, abs=1e-6)
    assert m["auc_20_50"] == pytest.approx(1.0)
    # all joints: joint 8 mean (1000 + 0) / 2 = 500 and median 500, the other 20 joints 0 -> 500 / 21;
    # its PCK is 1/2 at every threshold of 20-50 mm, the others' 1 -> AUC (20 + 1/2) / 21
    assert m["epe_all_mm"] == pytest.approx(500.0 / 21, rel=1e-6)
    assert m["epe_median_all_mm"] == pytest.approx(500.0 / 21, rel=1e-6)
    assert m["auc_20_50_all"] == pytest.approx(20.5 / 21)
    # every joint visible: the two protocols agree
    full = pose_metrics(pred, gt, torch.ones(2, 21, dtype=torch.bool))
    assert full["epe_mm"] == pytest.approx(m["epe_all_mm"]) and full["auc_20_50"] == pytest.approx(m["auc_20_50_all"])
