"""How sure a table's differences are: a paired two-level bootstrap of EPE differences between two
cells, the verdict on a claim, and the power of a table's seeds. Pure functions on arrays;
repro.report.claims reads the runs' per-sample errors into them.

A cell is one config trained with several seeds, every run scored on the same test images. One
bootstrap replicate draws seeds with replacement and, shared by every seed and both cells, one draw
of the test images with replacement: they were all scored on the same images, so the comparison is
paired by image index. How the seeds are drawn depends on whether the cells' runs are paired by seed:
- by seed (the two cells are the same seeds of a trainer that gives a seed's configs the same
  initial weights of their shared parts and the same batch order, repro.train): one draw of seeds
  for both cells, that is, the per-seed differences are resampled; what the seeds share cancels;
- otherwise each cell's seeds are drawn on their own (seed s of one config is then not the same
  experiment as seed s of another, and the cells may have different numbers of seeds).
The EPE of a run in a replicate is hand3d's (repro.metrics: per joint the mean over the drawn images
in which it is visible, then the mean over joints) on the drawn images, so on the images as they are
the difference is exactly that of the runs' logged `<target>/epe_mm`. An image with no visible joint
has no error under that protocol: it is left out of the draws of both cells alike. With few seeds
the seed level is widened to what n seeds can say (seed_inflation).

Power: two configs compared by their seed means, the test images fixed: a two-sided two-sample
t-test at level alpha with `seeds` seeds per config, in the usual t approximation of its power
(central t quantiles with 2 (seeds - 1) degrees of freedom instead of the noncentral t); for configs
paired by seed, the paired t-test on the per-seed differences (seeds - 1 degrees of freedom).
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

DRAWS = 2000  # bootstrap replicates: the 2.5% and 97.5% percentiles rest on 50 replicates each
LEVEL = 0.95
ALPHA = 0.05
POWER = 0.8
MIN_SEEDS = 2  # below this a cell's interval covers the test images only, not the spread between trainings
MOST_SEEDS = 10_000  # seeds_needed looks no further

HOLDS, REVERSED, INCONCLUSIVE = "holds", "reversed", "inconclusive"


@dataclass(frozen=True)
class Difference:
    """A row's EPE minus its reference's (mm; negative: the row is better)."""

    delta: float  # on the images and seeds as they are: the difference of the cells' mean EPE
    low: float  # the percentile interval at LEVEL over the bootstrap replicates
    high: float
    p_better: float  # share of replicates in which the row's EPE is lower
    n_row: int  # seeds (runs) of each cell
    n_ref: int
    by_seed: bool = False  # the seeds were resampled as pairs (the module's docstring)
    spread: float = math.nan  # by seed: the standard deviation (ddof = 1) of the per-seed differences

    @property
    def excludes_zero(self) -> bool:
        """The interval excludes 0 and both cells have MIN_SEEDS seeds: the difference is resolved."""
        return min(self.n_row, self.n_ref) >= MIN_SEEDS and (self.high < 0 or self.low > 0)


def run_epe(errors: np.ndarray, visible: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """hand3d's EPE of every run under every weighting of the images.

    errors (runs, images, joints) mm, visible (images, joints) bool, weights (replicates, images)
    counts -> (replicates, runs). A joint that no weighted image shows is left out, as hand3d does."""
    runs, images, joints = errors.shape
    shown = visible.astype(float)
    counted = np.moveaxis(errors * shown, 0, 1).reshape(images, runs * joints)
    total = (weights @ counted).reshape(len(weights), runs, joints)
    seen = (weights @ shown)[:, None, :]
    per_joint = np.divide(total, seen, out=np.full_like(total, np.nan), where=seen > 0)
    return np.nanmean(per_joint, axis=2)


def seed_inflation(seeds: int, level: float = LEVEL) -> float:
    """How far each run's EPE is moved from its cell's mean before the cell's seeds are resampled.

    Resampling n seeds spreads their mean by (n - 1) / n of s^2 / n, and a percentile of it stands
    for a normal quantile where n seeds give a t quantile with n - 1 degrees of freedom: with 2 or 3
    seeds the plain interval covers the spread between trainings about 70% or 82% of the time, not
    95%. Scaling the deviations by sqrt(n / (n - 1)) t / z restores both (for normal seed effects)."""
    if seeds < 2:
        return 1.0
    q = (1 + level) / 2
    return math.sqrt(seeds / (seeds - 1)) * stats.t.ppf(q, seeds - 1) / stats.norm.ppf(q)


def _seed_means(epe: np.ndarray, rng: np.random.Generator, level: float) -> np.ndarray:
    """(replicates, seeds) -> (replicates,): per replicate the mean over seeds drawn with replacement,
    each seed's value first moved from the replicate's mean by seed_inflation."""
    draws, seeds = epe.shape
    centre = epe.mean(axis=1, keepdims=True)
    widened = centre + (epe - centre) * seed_inflation(seeds, level)
    picks = rng.integers(0, seeds, size=(draws, seeds))
    return np.take_along_axis(widened, picks, axis=1).mean(axis=1)


def paired_bootstrap(
    row: np.ndarray,
    reference: np.ndarray,
    visible: np.ndarray,
    draws: int = DRAWS,
    level: float = LEVEL,
    seed: int = 0,
    by_seed: bool = False,
) -> Difference:
    """The row's EPE minus the reference's over the cells' seeds, with its bootstrap interval.

    row, reference: (seeds, images, joints) errors in mm of each cell's runs on the same images;
    visible: (images, joints) bool, the images' visibility (the same for every run); by_seed: run i of
    the row and run i of the reference are one seed's pair (see the module)."""
    row, reference, visible = np.asarray(row, float), np.asarray(reference, float), np.asarray(visible, bool)
    if row.ndim != 3 or row.shape[1:] != visible.shape or reference.shape[1:] != visible.shape:
        raise ValueError(f"errors {row.shape} and {reference.shape} must be (seeds, *{visible.shape}) to be paired by image")
    if by_seed and len(row) != len(reference):
        raise ValueError(f"{len(row)} and {len(reference)} seeds cannot be paired by seed")
    keep = visible.any(axis=1)
    if not keep.any():
        raise ValueError("no image has a visible joint")
    row, reference, visible = row[:, keep], reference[:, keep], visible[keep]
    rng = np.random.default_rng(seed)
    images = len(visible)
    weights = rng.multinomial(images, np.full(images, 1 / images), size=draws).astype(float)
    epe_row, epe_ref = run_epe(row, visible, weights), run_epe(reference, visible, weights)
    if by_seed:
        replicates = _seed_means(epe_row - epe_ref, rng, level)
    else:
        replicates = _seed_means(epe_row, rng, level) - _seed_means(epe_ref, rng, level)
    whole = np.ones((1, images))
    as_is = run_epe(row, visible, whole)[0], run_epe(reference, visible, whole)[0]
    delta = float(as_is[0].mean() - as_is[1].mean())
    spread = float(np.std(as_is[0] - as_is[1], ddof=1)) if by_seed and len(row) > 1 else math.nan
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return Difference(delta, float(low), float(high), float(np.mean(replicates < 0)), len(row), len(reference), by_seed, spread)


def verdict(found: Difference, paper_delta: float) -> str:
    """holds: the interval excludes 0 on the side of the paper's difference; reversed: on the other
    side; inconclusive: it holds 0, or a cell has fewer than MIN_SEEDS seeds."""
    if not found.excludes_zero:
        return INCONCLUSIVE
    return HOLDS if (found.high < 0) == (paper_delta < 0) else REVERSED


def pooled_sd(spreads: list[tuple[float, int]]) -> float:
    """The spread between seeds of one config, pooled over configs: from (standard deviation over
    the config's seeds with ddof=1, its number of seeds) per config, the root of the mean variance
    weighted by n - 1; configs with fewer than two seeds carry none. NaN when no config has two."""
    kept = [(n - 1, sd * sd) for sd, n in spreads if n >= 2]
    dof = sum(d for d, _ in kept)
    return math.sqrt(sum(d * v for d, v in kept) / dof) if dof else math.nan


def detectable_difference(sd: float, seeds, alpha: float = ALPHA, power: float = POWER, paired: bool = False):
    """The smallest difference between two configs' mean EPE that `seeds` seeds per config find
    with probability `power` (the t approximation, see the module); inf below two seeds. sd: the
    spread of one config's seeds, or with `paired` that of the per-seed differences. `seeds` may be
    an array."""
    n = np.asarray(seeds, float)
    dof = np.maximum(n - 1 if paired else 2 * (n - 1), 1)  # masked below: n < 2 has no spread to test against
    scale = np.sqrt((1 if paired else 2) / np.maximum(n, 1))
    found = (stats.t.ppf(1 - alpha / 2, dof) + stats.t.ppf(power, dof)) * sd * scale
    return np.where(n >= 2, found, np.inf)


def seeds_needed(difference: float, sd: float, alpha: float = ALPHA, power: float = POWER, paired: bool = False) -> int | None:
    """The fewest seeds per config whose detectable difference is at most |difference|; None when
    more than MOST_SEEDS (or the spread is unknown)."""
    if not math.isfinite(sd) or difference == 0:
        return None
    n = np.arange(2, MOST_SEEDS + 1)
    enough = np.flatnonzero(detectable_difference(sd, n, alpha, power, paired) <= abs(difference))
    return int(n[enough[0]]) if len(enough) else None
