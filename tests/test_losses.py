"""Losses on tiny hand-computed inputs (paper Sec. 3.4, eq. 2-4)."""

import math

import pytest
import torch

from repro.losses import contrastive_loss, gaussian_heatmaps, hardest_negative, heatmap_loss, pose_loss

# B = 3 anchors / positives in 2-d, negatives [1, 0, 0]:
# d_pos = |e1 - e2|_1 = [0.5, 1.0, 0.0]; d_neg = |e1 - e1[neg]|_1 = [0.3, 0.3, 3.0]
E1 = torch.tensor([[0.0, 0.0], [0.2, 0.1], [3.0, 0.0]])
E2 = torch.tensor([[0.5, 0.0], [0.2, 1.1], [3.0, 0.0]])
NEG = torch.tensor([1, 0, 0])


def test_contrastive_paper_eq4_by_hand():
    # eq. 4: d_pos - max(0.5, d_neg) = [0.5 - 0.5, 1.0 - 0.5, 0.0 - 3.0] -> mean -2.5 / 3
    loss = contrastive_loss(E1, E2, NEG)
    assert loss.item() == pytest.approx(-2.5 / 3, abs=1e-6)
    assert contrastive_loss(E1, E2, NEG, variant="paper").item() == pytest.approx(-2.5 / 3, abs=1e-6)


def test_contrastive_paper_is_unbounded_below():
    far = E1 * 100.0
    assert contrastive_loss(far, far, NEG).item() < -100.0


def test_contrastive_triplet_clamps_at_zero():
    # max(0, d_pos - d_neg + 0.5) = [0.7, 1.2, 0 (clamped: 0 - 3 + 0.5 < 0)] -> 1.9 / 3
    loss = contrastive_loss(E1, E2, NEG, variant="triplet")
    assert loss.item() == pytest.approx(1.9 / 3, abs=1e-6)
    far = E1 * 100.0
    assert contrastive_loss(far, far, NEG, variant="triplet").item() == 0.0
    assert contrastive_loss(E1, E2, NEG, variant="triplet", margin=0.0).item() == pytest.approx((0.2 + 0.7 + 0.0) / 3, abs=1e-6)


def test_contrastive_gradients_reach_anchor_positive_negative():
    e1 = E1.clone().requires_grad_()
    e2 = E2.clone().requires_grad_()
    contrastive_loss(e1, e2, NEG).backward()
    assert e1.grad.abs().sum() > 0 and e2.grad.abs().sum() > 0


def test_contrastive_errors():
    with pytest.raises(ValueError):
        contrastive_loss(E1[:1], E2[:1], torch.tensor([0]))
    with pytest.raises(ValueError):
        contrastive_loss(E1, E2, NEG, variant="infonce")
    with pytest.raises(ValueError):
        contrastive_loss(E1, E2, torch.tensor([0, 0, 1]))  # sample 0 its own negative


def test_hardest_negative_uses_gt_of_others_against_own_prediction():
    ones = torch.ones(1, 21, 2, 2)
    gt = torch.cat([0.0 * ones, 1.0 * ones, 2.0 * ones])
    pred = torch.cat([0.0 * ones, 1.2 * ones, 0.0 * ones])
    # i=0: |0-1| vs |0-2| -> 2 (with predicted candidates it would wrongly pick 1: pred[2] = pred[0])
    # i=1: |1.2-0| = 1.2 vs |1.2-2| = 0.8 -> 0
    # i=2: pred 0: gt0 at distance 0, gt1 at 1 -> 1 (farthest among j != 2)
    idx = hardest_negative(pred, gt)
    assert idx.dtype == torch.long and idx.tolist() == [2, 0, 1]
    # a list of stages: the last one is used
    assert hardest_negative([torch.zeros_like(pred), pred], gt).tolist() == [2, 0, 1]
    with pytest.raises(ValueError):
        hardest_negative(pred[:1], gt[:1])


def test_hardest_negative_ties_go_to_lowest_index():
    x = torch.zeros(3, 21, 2, 2)
    assert hardest_negative(x, x).tolist() == [1, 0, 0]


def test_gaussian_heatmap_peak_sigma_and_invisible():
    # S = 64, h = 8: u_h = (u + 0.5) / 8 - 0.5, so u = 11.5 -> 1, v = 19.5 -> 2 exactly
    uv = torch.zeros(1, 21, 2)
    uv[0, 0] = torch.tensor([11.5, 19.5])
    uv[0, 1] = torch.tensor([40.0, 40.0])
    visible = torch.ones(1, 21, dtype=torch.bool)
    visible[0, 1] = False
    maps = gaussian_heatmaps(uv, visible, input_size=64, heatmap_size=8)
    assert maps.shape == (1, 21, 8, 8)
    m0 = maps[0, 0]
    assert m0[2, 1].item() == pytest.approx(1.0)
    assert divmod(int(m0.argmax()), 8) == (2, 1)
    sigma = 8 / 32  # default: 1 heatmap pixel at 32x32, scaled to 8x8
    assert m0[2, 2].item() == pytest.approx(math.exp(-1 / (2 * sigma**2)), rel=1e-5)
    assert maps[0, 1].abs().sum() == 0  # invisible joint: zero map
    # explicit sigma; the paper's 32x32 grid at 256 px
    uv = torch.full((1, 21, 2), 8 * 10 + 3.5)  # -> cell 10
    maps = gaussian_heatmaps(uv, torch.ones(1, 21, dtype=torch.bool), 256, 32, sigma=2.0)
    assert maps[0, 5, 10, 10].item() == pytest.approx(1.0)
    assert maps[0, 5, 10, 12].item() == pytest.approx(math.exp(-4 / 8), rel=1e-5)
    # a joint between cells: the peak lies in the nearest cell
    uv = torch.zeros(1, 21, 2)
    uv[0, 0] = torch.tensor([12.0, 20.0])  # u_h = 1.0625, v_h = 2.0625
    maps = gaussian_heatmaps(uv, torch.ones(1, 21, dtype=torch.bool), 64, 8)
    assert divmod(int(maps[0, 0].argmax()), 8) == (2, 1)


def test_heatmap_loss_averages_stages():
    target = torch.zeros(2, 21, 4, 4)
    stages = [target + 1.0, target + 2.0, target + 3.0]
    assert heatmap_loss(stages, target).item() == pytest.approx((1 + 4 + 9) / 3)
    assert heatmap_loss(target + 2.0, target).item() == pytest.approx(4.0)


def test_pose_loss_is_mse():
    pred = torch.zeros(2, 21, 3)
    target = torch.zeros(2, 21, 3)
    target[0, 0, 0] = 3.0  # one squared error of 9 over 126 elements
    assert pose_loss(pred, target).item() == pytest.approx(9 / 126)
