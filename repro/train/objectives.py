"""One objective per method: a batch in, its losses by name out ("heat", "pose", "con").

The paper's L = l1 L_Heat + l2 L_Pose + l3 L_Con; the loop (repro.train.loop) weighs and sums what an
objective returns. Objectives differ in the images the supervised losses see (`view`), where L_Con's
positive comes from (`positive`; None: no L_Con) and, should a method need another, L_Heat
(`heat_loss`). Registered by name in OBJECTIVES; RunConfig.objective names a run's. Adding a method
is a subclass, a registry entry and its name in repro.config.AUGMENTATIONS (or MODES).

- baseline: Branch1 + f_PP on the plain images (paper Table 4's Baseline).
- clip: + L_Con with e2' = Branch2's fusion of f_CLIP(x, t) = r f_CI(x) + (1 - r) f_CT(t), t drawn
  per sample per step from the 3,920 prompts (IE, TE, IE+TE; paper Sec. 3.3).
- normal-supervised / normal-contrastive: Table 6's normal augmentation, as the supervised losses'
  input, or as the positive (e1' of an augmented view).
- restyle-supervised / restyle-contrastive (beyond the paper, after HanCo, seed paper 002): the same
  pose re-rendered in another style (synth-frei-restyle) as the supervised input (each sample with
  probability 1/2) or as the positive.
"""

from dataclasses import dataclass

import torch

from repro.clip.features import mix_features
from repro.config import RunConfig
from repro.geometry3d import normalize_pose
from repro.losses import contrastive_loss, gaussian_heatmaps, hardest_negative, heatmap_loss, pose_loss
from repro.train.augment import normal_augment

RESTYLED_SHARE = 0.5  # restyle-supervised: the share of samples shown in their restyled render


@dataclass
class Batch:
    images: torch.Tensor  # model input (B, 3, S, S) in [-1, 1], on the device
    uv: torch.Tensor  # (B, 21, 2) crop pixels, on the device like the other labels
    visible: torch.Tensor  # (B, 21)
    xyz: torch.Tensor  # (B, 21, 3) mm
    clip_image: torch.Tensor | None = None  # (B, D) f_CI of the batch's images (CLIP objectives)
    clip_text: torch.Tensor | None = None  # (N_prompts, D) f_CT of every prompt
    restyled: torch.Tensor | None = None  # model input of the same poses in another style


def augmented(x: torch.Tensor) -> torch.Tensor:
    """Normal augmentation of a model-input batch: the transforms expect [0, 1], the model [-1, 1]."""
    return normal_augment(x.mul(0.5).add(0.5)).sub(0.5).div(0.5)


class Baseline:
    """L_Heat and L_Pose; no Branch2, no L_Con."""

    embeds = False  # whether the forward pass needs e1' without a fused input

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg

    def view(self, batch: Batch) -> torch.Tensor:
        return batch.images

    def fusion_input(self, batch: Batch) -> torch.Tensor | None:
        """What Branch2 fuses into e2 (f_CLIP), or None."""
        return None

    def positive(self, model, batch: Batch, x: torch.Tensor, out) -> torch.Tensor | None:
        return None

    def heat_loss(self, heatmaps: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """L_Heat over the CPM stages (repro.losses.heatmap_loss)."""
        return heatmap_loss(heatmaps, target)

    def targets(self, batch: Batch, heatmap_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's heatmap and pose targets, computed where its labels are (the device)."""
        cfg = self.cfg
        uv_in = (batch.uv + 0.5) * (cfg.model.input_size / cfg.image_size) - 0.5
        heat = gaussian_heatmaps(uv_in, batch.visible, cfg.model.input_size, heatmap_size, cfg.heatmap_sigma)
        return heat, normalize_pose(batch.xyz)[0]

    def __call__(self, model, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.view(batch)
        out = model(x, self.fusion_input(batch), embed=self.embeds)
        heat_t, pose_t = self.targets(batch, out.heatmaps[-1].shape[-1])
        losses = {
            "heat": self.heat_loss([h.float() for h in out.heatmaps], heat_t),
            "pose": pose_loss(out.coords.float(), pose_t),
            "con": torch.zeros((), device=x.device),
        }
        positive = self.positive(model, batch, x, out)
        if positive is not None:
            negatives = hardest_negative(out.heatmaps[-1].float(), heat_t)
            losses["con"] = contrastive_loss(out.e1p.float(), positive.float(), negatives, self.cfg.contrastive)
        return losses


class Clip(Baseline):
    """+ L_Con with the positive e2' from Branch2's fusion of f_CLIP."""

    def fusion_input(self, batch: Batch) -> torch.Tensor:
        prompts = torch.randint(len(batch.clip_text), (batch.images.shape[0],))
        # drawn and mixed on the CPU, where the features are; non-blocking, as a blocking copy would wait for the device
        mixed = mix_features(batch.clip_image, batch.clip_text[prompts], self.cfg.effective_ratio)
        return mixed.to(batch.images.device, non_blocking=True)

    def positive(self, model, batch, x, out):
        return out.e2p


class NormalSupervised(Baseline):
    def view(self, batch: Batch) -> torch.Tensor:
        return augmented(batch.images)


class NormalContrastive(Baseline):
    embeds = True

    def positive(self, model, batch, x, out):
        return model(augmented(x), embed=True).e1p


class RestyleSupervised(Baseline):
    def view(self, batch: Batch) -> torch.Tensor:
        swap = (torch.rand(batch.images.shape[0]) < RESTYLED_SHARE).to(batch.images.device, batch.images.dtype, non_blocking=True)
        return torch.lerp(batch.images, batch.restyled, swap[:, None, None, None])  # by 0/1 weights: exact, cheaper than torch.where


class RestyleContrastive(Baseline):
    embeds = True

    def positive(self, model, batch, x, out):
        return model(batch.restyled, embed=True).e1p


OBJECTIVES: dict[str, type[Baseline]] = {
    "baseline": Baseline,
    "clip": Clip,
    "normal-supervised": NormalSupervised,
    "normal-contrastive": NormalContrastive,
    "restyle-supervised": RestyleSupervised,
    "restyle-contrastive": RestyleContrastive,
}
