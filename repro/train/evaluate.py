"""Evaluation per SPEC sections 4 and 7 on one split: EPE (mean, median), 3D PCK over 0-50 mm, AUC 20-50 mm,
over the visible joints (hand3d's protocol, the primary names) and over all joints (names with "all")."""

import torch
import torch.nn.functional as F

from repro.metrics import auc, epe_mm, epe_summary, pck_curve, pck_thresholds, predictions_to_mm


def model_inputs(images: torch.Tensor, input_size: int, device) -> torch.Tensor:
    """uint8 crops -> float model input in [-1, 1] at the model's input size."""
    x = images.to(device, non_blocking=True).float().div_(255)
    if x.shape[-1] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", antialias=True, align_corners=False)
    return x.sub_(0.5).div_(0.5)


@torch.no_grad()
def predict(model, images: torch.Tensor, input_size: int, device, batch_size: int = 128) -> torch.Tensor:
    """Normalised root-relative coordinates (N, 21, 3) from Branch1 + f_PP only."""
    model.eval()
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = model_inputs(images[start : start + batch_size], input_size, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(model(x).coords.float().cpu())
    return torch.cat(out)


def pose_metrics(coords: torch.Tensor, xyz: torch.Tensor, visible: torch.Tensor) -> dict:
    """Metrics of normalised predictions (N,21,3) against ground-truth camera-frame joints (N,21,3) mm.

    Two protocols from the same errors (SPEC section 7): hand3d's, counting joint k only in the
    samples where it is visible (`visible` (N,21) bool, the split's flags), under the primary names
    "epe_mm", "epe_median_mm", "auc_20_50", "pck_curve"; and every joint of every sample, under
    "epe_all_mm", "epe_median_all_mm", "auc_20_50_all", "pck_curve_all". The two agree when every
    joint is visible (FreiHAND). visible is required so that no caller silently scores all joints.
    "errors_mm" (N,21) holds every joint's error, from which any of them can be recomputed.
    """
    pred_mm, gt_rel = predictions_to_mm(coords, xyz)
    dists = epe_mm(pred_mm, gt_rel)
    out = {"pck_thresholds_mm": pck_thresholds(), "errors_mm": dists}
    for suffix, mask in (("", visible), ("_all", None)):
        summary = epe_summary(dists, mask)
        curve = pck_curve(dists, visible=mask)
        out |= {
            f"epe{suffix}_mm": summary["mean"],
            f"epe_median{suffix}_mm": summary["median"],
            f"auc_20_50{suffix}": auc(curve),
            f"pck_curve{suffix}": curve,
        }
    return out


def evaluate_split(model, split, input_size: int, device) -> dict:
    """pose_metrics of the model's Branch1 + f_PP predictions on a split (SplitTensors), scored with
    the split's own visibility flags."""
    return pose_metrics(predict(model, split.images, input_size, device), split.xyz, split.visible)
