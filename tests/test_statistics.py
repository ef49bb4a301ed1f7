"""repro.report.statistics on constructed data whose answers can be checked by hand: the paired
two-level bootstrap, the verdict rule, and the power of a table's seeds."""

import math

import numpy as np
import pytest
import torch

from repro.metrics import epe_summary
from repro.report.statistics import (
    HOLDS,
    INCONCLUSIVE,
    REVERSED,
    Difference,
    detectable_difference,
    paired_bootstrap,
    pooled_sd,
    run_epe,
    seed_inflation,
    seeds_needed,
    verdict,
)


def _errors(seed: int, runs: int = 3, images: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(errors (runs, images, 21) around 40 mm, visibility (images, 21) with some joints hidden)."""
    rng = np.random.default_rng(seed)
    visible = rng.random((images, 21)) < 0.8
    return 40 + rng.normal(0, 8, (runs, images, 21)), visible


def test_run_epe_is_hand3d_per_joint_then_over_joints():
    errors = np.array([[[1.0, 2.0], [3.0, 4.0]]])  # one run, two images, two joints
    visible = np.array([[True, False], [True, True]])
    # all images: joint 0 (1 + 3) / 2 = 2, joint 1 only image 1: 4 -> 3; image 0 twice: joint 1 unseen, left out -> 1;
    # image 1 alone: (3 + 4) / 2 = 3.5
    weights = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 1.0]])
    assert run_epe(errors, visible, weights)[:, 0].tolist() == [3.0, 1.0, 3.5]
    big, shown = _errors(1)
    logged = [epe_summary(torch.tensor(e), torch.tensor(shown))["mean"] for e in big]
    assert run_epe(big, shown, np.ones((1, shown.shape[0])))[0] == pytest.approx(logged, rel=1e-12)


def test_a_row_5mm_better_on_every_image_is_resolved():
    base, visible = _errors(2, runs=1)
    ref = base + np.array([0.0, 0.1, 0.2])[:, None, None]  # three seeds, 0.1 mm apart on every image
    row = ref - 5.0
    found = paired_bootstrap(row, ref, visible)
    # A run's EPE on any image draw is the base's plus its offset, so every replicate is -5 plus the
    # mean of the row's drawn offsets minus the reference's, each widened by seed_inflation(3) = 2.69
    # around its cell's mean: within +-0.1 * 2.69 * 2 mm.
    assert found.delta == pytest.approx(-5.0) and -5.54 <= found.low < found.high <= -4.46
    assert found.high - found.low > 0.2  # wider than the un-widened offsets could make it
    assert found.p_better == 1.0 and found.excludes_zero and (found.n_row, found.n_ref) == (3, 3)
    assert verdict(found, paper_delta=-1.14) == HOLDS and verdict(found, paper_delta=+1.0) == REVERSED
    assert paired_bootstrap(row, ref, visible) == found  # seeded: the same draws every time


def test_seeds_paired_by_seed_cancel_what_a_seed_shares():
    base, visible = _errors(8, runs=1)
    ref = base + np.array([0.0, 3.0, 6.0])[:, None, None]  # three seeds 3 mm apart on every image
    row = ref - 1.0
    # Each cell on its own: the seeds' 3 mm spread, widened 2.69x, hides the 1 mm.
    apart = paired_bootstrap(row, ref, visible)
    assert apart.low < 0 < apart.high and not apart.excludes_zero and not apart.by_seed
    # Paired by seed: every seed's difference is -1 on every image draw, so every replicate is -1.
    paired = paired_bootstrap(row, ref, visible, by_seed=True)
    assert (paired.delta, paired.low, paired.high, paired.p_better) == pytest.approx((-1.0, -1.0, -1.0, 1.0))
    assert paired.excludes_zero and paired.by_seed and verdict(paired, paper_delta=-1.0) == HOLDS
    # Pairs that disagree: differences -1, -2, -3 mm per seed on every image draw, moved from their
    # mean -2 by 2.69x: -4.69, -2, +0.69. Three picks of one of them (probability 1/27 = 3.7% > 2.5%)
    # make the percentile interval's ends.
    spread = row - np.array([0.0, 1.0, 2.0])[:, None, None]
    found = paired_bootstrap(spread, ref, visible, by_seed=True)
    wide = seed_inflation(3)
    assert (found.delta, found.low, found.high) == pytest.approx((-2.0, -2.0 - wide, -2.0 + wide))
    assert not found.excludes_zero and found.spread == pytest.approx(1.0)  # the sd of -1, -2, -3
    assert paired.spread == pytest.approx(0.0) and math.isnan(apart.spread)
    with pytest.raises(ValueError, match="3 and 2 seeds cannot be paired by seed"):
        paired_bootstrap(row, ref[:2], visible, by_seed=True)


def test_few_seeds_widen_the_seed_level_to_a_t_interval():
    # sqrt(n / (n - 1)) t_{0.975, n-1} / z_{0.975}: t_{0.975,1} = 12.706, t_{0.975,2} = 4.303, z = 1.960
    assert seed_inflation(1) == 1.0
    assert seed_inflation(2) == pytest.approx(math.sqrt(2) * 12.706 / 1.960, rel=1e-3)
    assert seed_inflation(3) == pytest.approx(math.sqrt(1.5) * 4.303 / 1.960, rel=1e-3)
    assert seed_inflation(1000) == pytest.approx(1.0, abs=0.01)


def test_two_equal_rows_hold_zero():
    row, visible = _errors(3)
    ref = 40 + np.random.default_rng(4).normal(0, 8, row.shape)  # the same distribution, other noise
    found = paired_bootstrap(row, ref, visible)
    assert found.low < 0 < found.high and abs(found.delta) < 0.5 and 0.2 < found.p_better < 0.8
    assert not found.excludes_zero and verdict(found, paper_delta=-1.0) == INCONCLUSIVE
    swapped = paired_bootstrap(ref, row, visible)
    assert swapped.delta == pytest.approx(-found.delta) and swapped.p_better == pytest.approx(1 - found.p_better, abs=0.03)


def test_images_without_a_visible_joint_are_left_out_of_both_rows():
    row, visible = _errors(5, images=50)
    ref = row + 1.0
    hidden = np.zeros((10, 21), bool)
    padded = [np.concatenate([e, np.full((3, 10, 21), 1000.0)], axis=1) for e in (row, ref)]
    assert paired_bootstrap(*padded, np.concatenate([visible, hidden])) == paired_bootstrap(row, ref, visible)


def test_one_seed_is_never_a_verdict():
    ref, visible = _errors(6, runs=1)
    found = paired_bootstrap(ref - 5.0, ref, visible)
    assert found.high < 0 and not found.excludes_zero and verdict(found, -1.0) == INCONCLUSIVE


def test_unpaired_shapes_are_an_error():
    row, visible = _errors(7, images=20)
    with pytest.raises(ValueError, match="paired by image"):
        paired_bootstrap(row, row[:, :10], visible)


def test_power_against_hand_computed_values():
    # t(0.975, 4) = 2.776, t(0.8, 4) = 0.941: (2.776 + 0.941) * 2 * sqrt(2 / 3) = 6.070
    assert float(detectable_difference(2.0, 3)) == pytest.approx(6.070, abs=1e-3)
    # t(0.975, 2) = 4.303, t(0.8, 2) = 1.061: (4.303 + 1.061) * 1 * sqrt(2 / 2) = 5.364
    assert float(detectable_difference(1.0, 2)) == pytest.approx(5.364, abs=1e-3)
    assert float(detectable_difference(1.0, 1)) == math.inf
    # The paper's 1.14 mm (r = 0.6 against the Baseline on STB) at 1 mm between seeds: 13 seeds give
    # (2.064 + 0.857) sqrt(2 / 13) = 1.146 > 1.14, 14 give (2.056 + 0.856) sqrt(2 / 14) = 1.101 (a normal approximation: 13).
    assert seeds_needed(-1.14, 1.0) == 14
    assert seeds_needed(1.14, math.nan) is None and seeds_needed(0.001, 1.0) is None
    # Paired by seed, sd of the per-seed differences: (t(0.975, 2) + t(0.8, 2)) sd / sqrt(3) = 5.364 * 2 / 1.732 = 6.194;
    # 1.14 mm at 1 mm: 9 seeds give (2.306 + 0.889) / 3 = 1.065, 8 give (2.365 + 0.896) / sqrt(8) = 1.153.
    assert float(detectable_difference(2.0, 3, paired=True)) == pytest.approx(6.194, abs=1e-3)
    assert seeds_needed(-1.14, 1.0, paired=True) == 9 and float(detectable_difference(1.0, 1, paired=True)) == math.inf
    # Pooled: (2 * 1^2 + 2 * 2^2) / (2 + 2) = 2.5; a config with one seed adds nothing.
    assert pooled_sd([(1.0, 3), (2.0, 3), (math.nan, 1)]) == pytest.approx(math.sqrt(2.5))
    assert math.isnan(pooled_sd([(math.nan, 1)]))


def test_difference_marks_only_a_resolved_interval():
    assert Difference(-1.0, -2.0, -0.1, 0.99, 2, 3).excludes_zero
    assert not Difference(-1.0, -2.0, 0.1, 0.9, 3, 3).excludes_zero
    assert not Difference(-1.0, -2.0, -0.1, 0.99, 3, 1).excludes_zero
