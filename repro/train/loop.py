"""The training loop of one configuration: batches, the optimiser and its lr schedule, the divergence
guard and the progress bar; seeded and resumable. What a method computes on a batch is its
objective (repro.train.objectives): L = l1 L_Heat + l2 L_Pose + l3 L_Con from the losses it returns.
f_CI comes from the frozen-feature cache, f_CT for every prompt likewise.
"""

import dataclasses
import math
import random
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from repro.config import RunConfig
from repro.model.hand_pose import HandPoseModel
from repro.train.evaluate import model_inputs
from repro.train.objectives import OBJECTIVES, Batch


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


def train_epoch(cfg: RunConfig, state: TrainState, train, clip: ClipFeatures | None, device, on_step=None, restyled=None) -> dict:
    """One pass over the training split with the run's objective; returns the epoch's mean losses.
    `restyled`: the split's restyled twin (same order), for the restyle objectives."""
    model, optimizer = state.model, state.optimizer
    model.train()
    objective = OBJECTIVES[cfg.objective](cfg)
    order = torch.randperm(len(train))
    n_batches = len(train) // cfg.batch_size  # drop the last partial batch: L_Con needs a negative
    sums = {"loss": 0.0, "heat": 0.0, "pose": 0.0, "con": 0.0}
    bar = tqdm(range(n_batches), desc=f"epoch {state.epoch + 1}/{cfg.epochs}", unit="batch", leave=False)
    for b in bar:
        idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        batch = Batch(
            model_inputs(train.images[idx], cfg.model.input_size, device),
            train.uv[idx],
            train.visible[idx],
            train.xyz[idx],
            clip_image=clip.image[idx] if clip is not None else None,
            clip_text=clip.text if clip is not None else None,
            restyled=model_inputs(restyled.images[idx], cfg.model.input_size, device) if restyled is not None else None,
        )
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            losses = objective(model, batch)
            loss = cfg.lambda_heat * losses["heat"] + cfg.lambda_pose * losses["pose"] + cfg.lambda_con * losses["con"]
        l_heat, l_pose, l_con = losses["heat"], losses["pose"], losses["con"]
        if not torch.isfinite(loss) or loss.abs() > RUNAWAY_LOSS:
            raise TrainingDiverged(
                f"loss became {loss.item():.4g} (|loss| > {RUNAWAY_LOSS:g} or not finite) at epoch {state.epoch + 1}, batch {b + 1} "
                f"(heat {l_heat.item():.4g}, pose {l_pose.item():.4g}, con {l_con.item():.4g})"
            )
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
