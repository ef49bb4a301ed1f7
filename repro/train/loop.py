"""The training loop of one configuration: the paper's losses, seeded, resumable, guarded.

L = l1 L_Heat + l2 L_Pose + l3 L_Con. For the CLIP modes, f_CLIP(x, t) = r f_CI(x) + (1 - r) f_CT(t)
with both features L2-normalised before mixing (CLIP practice; SPEC section 2), f_CI read from the
frozen-feature cache and t drawn per sample per step from the 3,920 prompts. For Table 6's
"normal-contrastive" reading, the positive is Branch2's embedding of a normally augmented view.
"""

import dataclasses
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from repro.clip.features import mix_features
from repro.config import RunConfig
from repro.files import save_tensor
from repro.geometry3d import normalize_pose
from repro.losses import contrastive_loss, gaussian_heatmaps, hardest_negative, heatmap_loss, pose_loss
from repro.model.hand_pose import HandPoseModel
from repro.train.augment import normal_augment
from repro.train.evaluate import model_inputs


class TrainingDiverged(RuntimeError):
    """A loss became NaN, infinite or runaway; the run ends as FAILED with this message."""


# No loss of a healthy run comes near this: the MSEs start below 10 and eq. 4's terms are L1
# distances of 128-d embeddings. Eq. 4 is unbounded below, so a run can drift to -1e20 while finite.
RUNAWAY_LOSS = 1e6


@dataclass
class ClipFeatures:
    image: torch.Tensor  # (N_train, D) f_CI of every training image, unit length
    text: torch.Tensor  # (N_prompts, D) f_CT of every prompt, unit length


@dataclass
class TrainState:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int = 0  # epochs completed
    history: list[dict] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def new_state(cfg: RunConfig, clip_dim: int, device) -> TrainState:
    """A fresh model, seeded by cfg.seed, and the paper's Adam for it; channels-last on a GPU."""
    seed_everything(cfg.seed)
    model = HandPoseModel(dataclasses.replace(cfg.model, clip_dim=clip_dim)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return TrainState(model, torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)))


def scheduled_lr(cfg: RunConfig, step: int, total_steps: int) -> float:
    """Learning rate at optimiser step `step` (0-based) of `total_steps`; a pure function of the step,
    so a resumed run continues the schedule exactly."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * step / max(total_steps, 1)))


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(path: Path, state: TrainState) -> None:
    """Atomic (repro.files), so a kill mid-write keeps the previous checkpoint."""
    save_tensor({"model": state.model.state_dict(), "model_config": dataclasses.asdict(state.model.cfg), "optimizer": state.optimizer.state_dict(),
                 "epoch": state.epoch, "history": state.history, "rng": rng_state()}, path)  # fmt: skip


def load_checkpoint(path: Path, state: TrainState) -> None:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.epoch, state.history = ckpt["epoch"], ckpt["history"]
    set_rng_state(ckpt["rng"])


def _augmented(x: torch.Tensor) -> torch.Tensor:
    """Normal augmentation of a model-input batch: the transforms expect [0, 1], the model [-1, 1]."""
    return normal_augment(x.mul(0.5).add(0.5)).sub(0.5).div(0.5)


def _targets(cfg: RunConfig, uv, visible, xyz, heatmap_size: int):
    scale = cfg.model.input_size / cfg.image_size
    uv_in = (uv + 0.5) * scale - 0.5
    heat = gaussian_heatmaps(uv_in, visible, cfg.model.input_size, heatmap_size, cfg.heatmap_sigma)
    return heat, normalize_pose(xyz)[0]


def train_epoch(cfg: RunConfig, state: TrainState, train, clip: ClipFeatures | None, device, on_step=None) -> dict:
    """One pass over the training split; returns the epoch's mean losses."""
    model, optimizer = state.model, state.optimizer
    model.train()
    order = torch.randperm(len(train))
    n_batches = len(train) // cfg.batch_size  # drop the last partial batch: L_Con needs a negative
    sums = {"loss": 0.0, "heat": 0.0, "pose": 0.0, "con": 0.0}
    r = cfg.effective_ratio
    bar = tqdm(range(n_batches), desc=f"epoch {state.epoch + 1}/{cfg.epochs}", unit="batch", leave=False)
    for b in bar:
        idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        x = model_inputs(train.images[idx], cfg.model.input_size, device)
        if cfg.augment == "normal-supervised":
            x = _augmented(x)
        clip_feature = None
        if clip is not None:
            prompts = torch.randint(len(clip.text), (len(idx),))
            clip_feature = mix_features(clip.image[idx], clip.text[prompts], r).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            contrast_views = cfg.augment == "normal-contrastive"
            out = model(x, clip_feature, embed=contrast_views)
            heat_t, pose_t = _targets(cfg, train.uv[idx], train.visible[idx], train.xyz[idx], out.heatmaps[-1].shape[-1])
            heat_t, pose_t = heat_t.to(device), pose_t.to(device)
            l_heat = heatmap_loss([h.float() for h in out.heatmaps], heat_t)
            l_pose = pose_loss(out.coords.float(), pose_t)
            l_con = torch.zeros((), device=device)
            positive = out.e2p
            if contrast_views:
                positive = model(_augmented(x), embed=True).e1p
            if positive is not None:
                negatives = hardest_negative(out.heatmaps[-1].float(), heat_t)
                l_con = contrastive_loss(out.e1p.float(), positive.float(), negatives, cfg.contrastive)
            loss = cfg.lambda_heat * l_heat + cfg.lambda_pose * l_pose + cfg.lambda_con * l_con
        if not torch.isfinite(loss) or loss.abs() > RUNAWAY_LOSS:
            raise TrainingDiverged(f"loss became {loss.item():.4g} (|loss| > {RUNAWAY_LOSS:g} or not finite) at epoch {state.epoch + 1}, batch {b + 1} "
                                   f"(heat {l_heat.item():.4g}, pose {l_pose.item():.4g}, con {l_con.item():.4g})")  # fmt: skip
        for group in optimizer.param_groups:
            group["lr"] = scheduled_lr(cfg, state.epoch * n_batches + b, cfg.epochs * n_batches)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for key, value in (("loss", loss), ("heat", l_heat), ("pose", l_pose), ("con", l_con)):
            sums[key] += value.item()
        bar.set_postfix(loss=f"{loss.item():.4f}", heat=f"{l_heat.item():.4f}", pose=f"{l_pose.item():.4f}", con=f"{l_con.item():.3f}")
        if on_step is not None:
            on_step(b)
    return {k: v / max(n_batches, 1) for k, v in sums.items()}
