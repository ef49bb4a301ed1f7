"""Training losses (paper Sec. 3.4) and heatmap targets, as pure functions.

L = l1 * L_Heat + l2 * L_Pose + l3 * L_Con (the weights live in the run config).
"""

import torch
import torch.nn.functional as F

CONTRASTIVE_VARIANTS = ("paper", "triplet")
# Decisions where the paper is silent (repro.decisions lists them in every report).
HEAT_STAGES = "all three CPM stages, equal weights: L_Heat = mean of the per-stage MSEs"
NEGATIVE_RULE = (
    "per anchor, the other batch sample whose ground-truth heatmap is farthest (L2) from the anchor's predicted last-stage heatmap"
)


def _stages(pred) -> list[torch.Tensor]:
    if isinstance(pred, torch.Tensor):
        return [pred]
    pred = list(pred)
    if not pred:
        raise ValueError("no heatmap stages given")
    return pred


def gaussian_heatmaps(
    uv: torch.Tensor,
    visible: torch.Tensor,
    input_size: int,
    heatmap_size: int,
    sigma: float | None = None,
) -> torch.Tensor:
    """Heatmap targets (B,21,h,h): an unnormalised Gaussian (peak 1) per visible joint, zeros else.

    uv (B,21,2): joint positions in input-image pixels (x right, y down, pixel centres at
    integers); visible (B,21) bool. A joint maps to the heatmap grid (pixel centres at integers
    too) by u_h = (u + 0.5) * h / S - 0.5. sigma is in heatmap pixels; the default is
    1.0 * heatmap_size / 32, i.e. sigma = 1 heatmap pixel on the paper's 32x32 grid
    (= 8 input pixels at 256 px). Joints outside the crop leave a clipped tail (or nothing).
    """
    if sigma is None:
        sigma = 1.0 * heatmap_size / 32.0
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    uv_h = (uv.float() + 0.5) * (heatmap_size / float(input_size)) - 0.5  # (B,21,2)
    grid = torch.arange(heatmap_size, dtype=uv_h.dtype, device=uv.device)
    # separable: the product of a row and a column Gaussian, one exp per row and column, not per pixel
    gx = torch.exp(-((grid - uv_h[..., 0:1]) ** 2) / (2.0 * sigma * sigma))  # (B,21,w)
    gy = torch.exp(-((grid - uv_h[..., 1:2]) ** 2) / (2.0 * sigma * sigma)) * visible.to(uv_h.dtype)[..., None]  # (B,21,h)
    return gy[..., :, None] * gx[..., None, :]


def heatmap_loss(pred, target: torch.Tensor) -> torch.Tensor:
    """L_Heat: MSE (mean over elements) per CPM stage, averaged over the stages given.

    pred: a list of stage heatmaps (each (B,21,h,w); intermediate supervision) or one tensor.
    """
    stages = _stages(pred)
    return torch.stack([F.mse_loss(p, target) for p in stages]).mean()


def pose_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_Pose: MSE (mean over elements) of f_PP's output vs the normalised root-relative target."""
    return F.mse_loss(pred, target)


@torch.no_grad()
def hardest_negative(pred_heatmaps, gt_heatmaps: torch.Tensor) -> torch.Tensor:
    """Index (B,) long of each anchor's negative: the j != i whose GROUND-TRUTH heatmap is
    farthest (L2 over all 21 maps) from anchor i's PREDICTED heatmap (last stage when a list of
    stages is given). Ties go to the lowest index. Needs B >= 2.
    """
    pred = _stages(pred_heatmaps)[-1]
    b = pred.shape[0]
    if b < 2:
        raise ValueError("hardest_negative needs a batch of at least 2 (no negative otherwise)")
    p = pred.reshape(b, -1).float()
    g = gt_heatmaps.reshape(b, -1).float()
    dist = torch.cdist(p[None], g[None], compute_mode="donot_use_mm_for_euclid_dist")[0]  # (B,B)
    dist.fill_diagonal_(-float("inf"))
    return dist.argmax(dim=1)


def contrastive_loss(
    e1p: torch.Tensor,
    e2p: torch.Tensor,
    neg_index: torch.Tensor,
    variant: str = "paper",
    margin: float = 0.5,
) -> torch.Tensor:
    """L_Con on projected embeddings e1' (anchor), e2' (positive), e_neg = e1'[neg_index].

    Distances are L1 norms: d_pos = |e1'_i - e2'_i|_1, d_neg = |e1'_i - e1'_neg(i)|_1.
    "paper": eq. 4 exactly as written, mean_i [d_pos - max(margin, d_neg)] (unbounded below).
    "triplet": the bounded form mean_i max(0, d_pos - d_neg + margin).
    Gradients flow through the anchor, the positive and the negative (nothing is detached).
    """
    if variant not in CONTRASTIVE_VARIANTS:
        raise ValueError(f"unknown contrastive variant {variant!r}; known: {CONTRASTIVE_VARIANTS}")
    b = e1p.shape[0]
    if b < 2:
        raise ValueError("contrastive_loss needs a batch of at least 2 (no negative otherwise)")
    neg_index = torch.as_tensor(neg_index, device=e1p.device).long()
    if neg_index.shape != (b,):
        raise ValueError(f"neg_index must have shape ({b},), got {tuple(neg_index.shape)}")
    # Checked on the CPU only: on a GPU the check would make every training step wait for the device
    # (training's negatives come from hardest_negative, which never picks the anchor).
    if neg_index.device.type == "cpu" and bool((neg_index == torch.arange(b)).any()):
        raise ValueError("a negative must be another sample (neg_index[i] != i)")
    d_pos = (e1p - e2p).abs().sum(-1)
    d_neg = (e1p - e1p[neg_index]).abs().sum(-1)
    if variant == "paper":
        return (d_pos - torch.clamp(d_neg, min=margin)).mean()
    return torch.relu(d_pos - d_neg + margin).mean()


__all__ = [
    "CONTRASTIVE_VARIANTS",
    "gaussian_heatmaps",
    "heatmap_loss",
    "pose_loss",
    "hardest_negative",
    "contrastive_loss",
]
