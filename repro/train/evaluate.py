"""Evaluation per SPEC sections 4 and 7 on one split: EPE (mean, median), 3D PCK over 0-50 mm, AUC 20-50 mm,
over the visible joints (hand3d's protocol, the primary names) and over all joints (names with "all").
Also what training shares with evaluation: the device, the model's inputs and their numerics
(RunConfig.precision and memory_format)."""

import torch
import torch.nn.functional as F

from repro.bf16 import effective as effective_precision  # RunConfig.precision: bf16 where it pays
from repro.config import RunConfig
from repro.metrics import auc, epe_mm, epe_summary, pck_curve, pck_thresholds, predictions_to_mm

TORCH_MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}  # RunConfig.memory_format


def device_for_training() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# What "fp32" means in cuDNN's convolutions on a GPU: IEEE float32, not TF32 (PyTorch's default for
# them), so that a run's precision_effective says what it computed in, f_PP stays in true fp32 under
# bf16 autocast, and an fp32 run on a GPU computes what it does on the CPU up to summation order. Part
# of a GPU run's identity (repro.train.identity).
CUDA_CONV_FP32 = "ieee"


def cuda_numerics(device: torch.device) -> None:
    """Set the process's cuDNN numerics for training or evaluating on `device` (nothing on the CPU):
    CUDA_CONV_FP32 and, since a run's input shapes are fixed, algorithms chosen by timing them once."""
    if torch.device(device).type == "cuda":
        # The switch for conv and RNN at once: setting the conv one alone makes every later read of this one
        # (torch.backends.cudnn.flags, for one) raise that the two APIs were mixed.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True


def autocast(precision: str, device: torch.device):
    """The autocast context of RunConfig.precision `precision` on `device`."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=effective_precision(precision, device) == "bf16")


def model_inputs(images: torch.Tensor, input_size: int, device, memory_format: str) -> torch.Tensor:
    """uint8 crops -> float model input in [-1, 1] at the model's input size, in RunConfig.memory_format `memory_format`."""
    x = images.to(device, non_blocking=True).float().div_(255)
    if x.shape[-1] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", antialias=True, align_corners=False)
    return x.sub_(0.5).div_(0.5).contiguous(memory_format=TORCH_MEMORY_FORMATS[memory_format])


PREPARE_LIMIT = 2**30  # bytes of float32 model inputs a training keeps whole (the `small` split's are 805 MB)
PREPARE_CHUNK = 512  # images resized at once while preparing


class BatchInputs:
    """A training split's images as model inputs, batch by batch (model_inputs). Where they need resizing and,
    as float32, fit in PREPARE_LIMIT, all are resized once when the training starts instead of in every
    epoch: the anti-aliased resize was 7% of a `small` step on the CPU (RESULTS.md). Each sample is resized
    on its own either way, so the inputs are the same, bit for bit (tests/test_train.py)."""

    def __init__(self, images, input_size: int, device, memory_format: str, prepare: bool = True):
        self.images, self.input_size, self.device, self.memory_format = images, input_size, device, memory_format
        n, channels = images.shape[:2]
        self.prepared = None
        if prepare and images.shape[-1] != input_size and n * channels * input_size**2 * 4 <= PREPARE_LIMIT:
            self.prepared = torch.empty(n, channels, input_size, input_size, device=device)
            for start in range(0, n, PREPARE_CHUNK):
                chunk = images[start : start + PREPARE_CHUNK]
                self.prepared[start : start + len(chunk)] = model_inputs(chunk, input_size, device, "contiguous")

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        if self.prepared is None:
            return model_inputs(self.images[idx], self.input_size, self.device, self.memory_format)
        # non_blocking: a blocking copy of the index to a GPU would wait there for every step queued before it
        return self.prepared[idx.to(self.device, non_blocking=True)].contiguous(memory_format=TORCH_MEMORY_FORMATS[self.memory_format])


@torch.no_grad()
def predict(
    model,
    images: torch.Tensor,
    input_size: int,
    device,
    precision: str = RunConfig.precision,
    memory_format: str = RunConfig.memory_format,
    batch_size: int = 128,
) -> torch.Tensor:
    """Normalised root-relative coordinates (N, 21, 3) from Branch1 + f_PP only, in the numerics the run trained in."""
    cuda_numerics(device)
    model.eval().to(memory_format=TORCH_MEMORY_FORMATS[memory_format])  # the weights' layout picks the kernels too
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = model_inputs(images[start : start + batch_size], input_size, device, memory_format)
        with autocast(precision, device):
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


def evaluate_split(
    model, split, input_size: int, device, precision: str = RunConfig.precision, memory_format: str = RunConfig.memory_format
) -> dict:
    """pose_metrics of the model's Branch1 + f_PP predictions on a split (SplitTensors), scored with
    the split's own visibility flags; precision and memory_format: the run's config's."""
    coords = predict(model, split.images, input_size, device, precision, memory_format)
    return pose_metrics(coords, split.xyz, split.visible)
