"""3D pose metrics (SPEC section 4): the Zimmermann & Brox (hand3d) protocol.

- Predictions are root-relative and normalised (units of the reference bone, palm-centre root);
  `predictions_to_mm` scales them by the GROUND-TRUTH bone length (middle MCP -> PIP) and
  expresses the ground truth relative to its palm centre (hand3d eval3d.py: `coord3d_pred *=
  keypoint_scale`; gt centred on the palm keypoint).
- EPE: Euclidean distance per joint in mm. As in hand3d's `EvalUtil` (SPEC section 7), summaries are
  per joint first and then averaged over the joints: joint k's errors are those of the samples in
  which joint k is visible (`visible` (N,21) bool; `feed` appends only visible joints); mean EPE =
  mean over joints of the per-joint mean (the pooled mean only when every joint counts in every
  sample), median EPE = mean over joints of the per-joint median; PCK(t) = mean over joints of the
  fraction of that joint's visible errors <= t. visible=None counts every joint (the all-joints
  variant, logged beside the visible protocol under its own names).
- A joint that is visible in no sample of the split has no errors and is left out of the averages
  (hand3d's `get_measures` skips a joint whose `_get_epe` returns None), so the averages run over
  the joints that have data, not over all 21.
- PCK thresholds: 0..50 mm in 1 mm steps (51 points). AUC: trapezoid area under the PCK curve
  between lo and hi divided by (hi - lo) (hand3d: `np.trapz(pck, thr) / np.trapz(ones, thr)`),
  over 20-50 mm by default (the STB convention).
"""

import torch

from repro.data.joints import MIDDLE_MCP, MIDDLE_PIP, palm_centre

# Which joints a sample's scores count (repro.decisions): hand3d's EvalUtil counts visible joints only;
# repro.train.evaluate logs the all-joints variant beside it under names ending in _all.
PROTOCOL = "hand3d: per joint over the samples where it is visible, then the mean over joints"


def pck_thresholds(lo: float = 0.0, hi: float = 50.0, n: int = 51) -> torch.Tensor:
    """Default PCK thresholds in mm: 0, 1, ..., 50."""
    return torch.linspace(lo, hi, n, dtype=torch.float64)


def predictions_to_mm(coords_rel_norm_pred: torch.Tensor, gt_xyz_mm: torch.Tensor):
    """(pred (B,21,3) normalised, gt (B,21,3) camera mm) -> (pred_mm, gt_rel_mm), both (B,21,3),
    root-relative to the palm centre: pred * |gt[9] - gt[10]| and gt - palm_centre(gt)."""
    scale = (gt_xyz_mm[:, MIDDLE_PIP] - gt_xyz_mm[:, MIDDLE_MCP]).norm(dim=-1)
    pred_mm = coords_rel_norm_pred * scale[:, None, None].to(coords_rel_norm_pred.dtype)
    gt_rel = gt_xyz_mm - palm_centre(gt_xyz_mm)[:, None, :]
    return pred_mm, gt_rel


def epe_mm(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-joint end-point errors (B,21) between root-relative poses in mm."""
    return (pred - gt).norm(dim=-1)


def _per_joint(dists: torch.Tensor, visible: torch.Tensor | None):
    """The 1-D tensors of counted (visible) errors of each joint that has at least one.

    dists (N,J) or (N,) for one joint; visible None (all count) or a bool mask of the same shape.
    Joints with no counted error are dropped, as hand3d drops them; none at all is an error.
    """
    d = torch.as_tensor(dists, dtype=torch.float64)
    mask = None if visible is None else torch.as_tensor(visible, dtype=torch.bool)
    if mask is not None and mask.shape != d.shape:  # no reshape: a transposed mask must not slip through
        raise ValueError(f"visible {tuple(mask.shape)} does not match the errors {tuple(d.shape)}")
    if d.ndim == 1:
        d = d[:, None]
        mask = None if mask is None else mask[:, None]
    if mask is None:
        mask = torch.ones_like(d, dtype=torch.bool)
    cols = [d[mask[:, j], j] for j in range(d.shape[1])]
    cols = [c for c in cols if c.numel() > 0]
    if not cols:
        raise ValueError("no joint has a counted error (no sample has a visible joint)")
    return cols


def epe_summary(dists: torch.Tensor, visible: torch.Tensor | None = None) -> dict:
    """{"mean", "median", "median_pooled"} in mm from errors (N,21) (or (N,) for one joint).

    mean / median: hand3d's, averaged over joints of per-joint statistics; median_pooled: the
    median of all counted errors together. visible (N,21) bool selects the counted errors (None:
    all); a joint visible in no sample is left out of the averages.
    """
    cols = _per_joint(dists, visible)
    return {
        "mean": float(torch.stack([c.mean() for c in cols]).mean()),
        "median": float(torch.stack([c.quantile(0.5) for c in cols]).mean()),
        "median_pooled": float(torch.cat(cols).quantile(0.5)),
    }


def pck_curve(dists: torch.Tensor, thresholds: torch.Tensor | None = None, visible: torch.Tensor | None = None) -> torch.Tensor:
    """3D PCK (T,) float64: for each threshold t (mm), the mean over joints of the fraction of that
    joint's visible errors <= t (visible as in epe_summary; None: all count). thresholds default to
    0..50 mm, 51 points. Averaging curves over joints first keeps the AUC hand3d's mean of per-joint
    AUCs (the trapezoid is linear)."""
    thr = pck_thresholds() if thresholds is None else torch.as_tensor(thresholds, dtype=torch.float64)
    cols = _per_joint(dists, visible)
    return torch.stack([(c[:, None] <= thr[None, :]).double().mean(0) for c in cols]).mean(0)


def auc(curve: torch.Tensor, thresholds: torch.Tensor | None = None, lo: float = 20.0, hi: float = 50.0) -> float:
    """Normalised area under the PCK curve between lo and hi mm: trapezoid / (hi - lo), in [0, 1].

    lo and hi must be among the thresholds (no interpolation of a step function)."""
    thr = pck_thresholds() if thresholds is None else torch.as_tensor(thresholds, dtype=torch.float64)
    curve = torch.as_tensor(curve, dtype=torch.float64)
    if curve.shape != thr.shape:
        raise ValueError(f"curve {tuple(curve.shape)} and thresholds {tuple(thr.shape)} differ")
    if not hi > lo:
        raise ValueError(f"need hi > lo, got lo={lo}, hi={hi}")
    for v in (lo, hi):
        if not torch.isclose(thr, torch.tensor(float(v), dtype=torch.float64)).any():
            raise ValueError(f"{v} mm is not one of the thresholds")
    keep = (thr >= lo - 1e-9) & (thr <= hi + 1e-9)
    return float(torch.trapezoid(curve[keep], thr[keep]) / (hi - lo))
