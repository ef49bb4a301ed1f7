"""The training loop of one configuration: batches, the optimiser and its lr schedule, the divergence
guard and the progress bar; seeded and resumable. What a method computes on a batch is its
objective (repro.train.objectives): L = l1 L_Heat + l2 L_Pose + l3 L_Con from the losses it returns.
f_CI comes from the frozen-feature cache, f_CT for every prompt likewise.

A step does not wait for the device: the losses are summed and the divergence guard is kept there.
The guard is read every GUARD_EVERY steps and at the end of the epoch, the losses at the end and when
the progress bar redraws (at most twice a second). Under bf16 autocast the step computes with bf16
working copies of f_H2D's weights, the optimizer keeping the fp32 masters (repro.train.working_weights).
"""

import dataclasses
import math
import random
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from repro.config import RunConfig
from repro.model.hand_pose import HandPoseModel
from repro.train.evaluate import TORCH_MEMORY_FORMATS, BatchInputs, autocast, cuda_numerics, effective_precision
from repro.train.objectives import OBJECTIVES, Batch
from repro.train.working_weights import working_weights


class TrainingDiverged(RuntimeError):
    """A loss became NaN, infinite or runaway; the run ends as FAILED with this message."""


# No loss of a healthy run comes near this: the MSEs start below 10 and eq. 4's terms are L1
# distances of 128-d embeddings. Eq. 4 is unbounded below, so a run can drift to -1e20 while finite.
RUNAWAY_LOSS = 1e6
GUARD_EVERY = 50  # steps between reads of the divergence guard: a diverged run stops at most this late
LOSSES = ("loss", "heat", "pose", "con")


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


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of epoch `epoch`'s batch order: a function of (seed, epoch) alone, so every row of a
    table with one seed sees the same batches, whatever its objective draws from the global generator."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))


def new_state(cfg: RunConfig, clip_dim: int, device) -> TrainState:
    """A fresh model, seeded by cfg.seed, in cfg.memory_format, and the paper's Adam for it (cfg.adam_impl).
    On a GPU it also sets cuDNN's numerics (repro.train.evaluate.cuda_numerics)."""
    seed_everything(cfg.seed)
    cuda_numerics(device)
    model = HandPoseModel(dataclasses.replace(cfg.model, clip_dim=clip_dim)).to(
        device, memory_format=TORCH_MEMORY_FORMATS[cfg.memory_format]
    )
    fused = cfg.adam_impl == "fused" or None  # None: PyTorch picks
    return TrainState(model, torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused))


def scheduled_lr(cfg: RunConfig, step: int, total_steps: int) -> float:
    """Learning rate at optimiser step `step` (0-based) of `total_steps`; a pure function of the step,
    so a resumed run continues the schedule exactly. Over the first w = cfg.lr_warmup * total_steps
    steps it is scaled by (step + 1) / w: without a warm-up the He-initialised net, which has no
    normalisation layers, blew up early in a run at full lr and never recovered (RESULTS.md)."""
    w = cfg.lr_warmup * total_steps
    warm = min(1.0, (step + 1) / w) if w > 0 else 1.0
    if cfg.lr_schedule == "constant":
        return cfg.lr * warm
    return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * step / max(total_steps, 1)))


class _Guard:
    """The first step whose loss is not finite or runaway, recorded on the device without waiting for it."""

    def __init__(self, device):
        self.tripped = torch.zeros((), dtype=torch.bool, device=device)
        self.batch = torch.zeros((), dtype=torch.long, device=device)
        self.losses = torch.zeros(len(LOSSES), device=device)

    def record(self, batch: int, losses: torch.Tensor) -> None:
        bad = ~torch.isfinite(losses[0]) | (losses[0].abs() > RUNAWAY_LOSS)
        first = bad & ~self.tripped
        self.batch = torch.where(first, batch, self.batch)
        self.losses = torch.where(first, losses, self.losses)
        self.tripped |= bad

    def check(self, epoch: int) -> None:
        if self.tripped.item():
            loss, heat, pose, con = self.losses.tolist()
            raise TrainingDiverged(
                f"loss became {loss:.4g} (|loss| > {RUNAWAY_LOSS:g} or not finite) at epoch {epoch}, batch {self.batch.item()} "
                f"(heat {heat:.4g}, pose {pose:.4g}, con {con:.4g})"
            )


def clip_gradients(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True), the same values bit for bit, for a
    model whose gradients share one device and dtype, without its grouping of them by device and dtype on
    every call (Python work that was about 1% of a `small` step on the CPU; RESULTS.md). Like it, it
    returns the gradients' total norm before clipping and reads nothing back: the scale (1 under
    max_norm) stays on the device."""
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    return total


# A study worker trains one split many times: resizing it anew cost each `small` training about 7 s
# of its 3 minutes on one thread (RESULTS.md). Two: a training split and its restyled twin.
PREPARED_KEPT = 2
_prepared: OrderedDict[tuple, BatchInputs] = OrderedDict()


def batch_inputs(cfg: RunConfig, split, device) -> BatchInputs:
    """The model inputs of a training split (or its restyled twin), prepared once per process: kept for
    the next training of the same split (by its digest, which names its images) at the same input size
    on the same device, the PREPARED_KEPT most recently used. They are only ever read."""
    key = (split.digest, cfg.model.input_size, str(device), cfg.memory_format)
    if key in _prepared:
        _prepared.move_to_end(key)
        return _prepared[key]
    while len(_prepared) >= PREPARED_KEPT:  # dropped before the new one is made: at most PREPARED_KEPT at once
        _prepared.popitem(last=False)
    _prepared[key] = BatchInputs(split.images, cfg.model.input_size, device, cfg.memory_format)
    return _prepared[key]


def train_epoch(
    cfg: RunConfig, state: TrainState, train, clip: ClipFeatures | None, device, on_step=None, inputs=None, restyled=None
) -> dict:
    """One pass over the training split with the run's objective; returns the epoch's mean losses.
    `inputs`: batch_inputs of `train` (made here, for this epoch alone, when None); `restyled`: batch_inputs
    of the split's restyled twin (same order), for the restyle objectives."""
    model, optimizer = state.model, state.optimizer
    model.train()
    objective = OBJECTIVES[cfg.objective](cfg)
    order = torch.randperm(len(train), generator=epoch_generator(cfg.seed, state.epoch))
    n_batches = len(train) // cfg.batch_size  # drop the last partial batch: L_Con needs a negative
    sums = torch.zeros(len(LOSSES), device=device)
    guard = _Guard(device)
    inputs = inputs if inputs is not None else BatchInputs(train.images, cfg.model.input_size, device, cfg.memory_format)
    params = [p for p in model.parameters() if p.requires_grad]  # the fp32 masters, which the optimizer holds
    bf16 = effective_precision(cfg.precision, device) == "bf16"

    with (
        tqdm(total=n_batches, desc=f"epoch {state.epoch + 1}/{cfg.epochs}", unit="batch", leave=False, mininterval=0.5) as bar,
        working_weights(model, bf16) as weights,
    ):
        for b in range(n_batches):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            batch = Batch(
                inputs[idx],
                train.uv[idx].to(device, non_blocking=True),
                train.visible[idx].to(device, non_blocking=True),
                train.xyz[idx].to(device, non_blocking=True),
                clip_image=clip.image[idx] if clip is not None else None,
                clip_text=clip.text if clip is not None else None,
                restyled=restyled[idx] if restyled is not None else None,
            )
            with autocast(cfg.precision, device):
                losses = objective(model, batch)
                loss = cfg.lambda_heat * losses["heat"] + cfg.lambda_pose * losses["pose"] + cfg.lambda_con * losses["con"]
            values = torch.stack([loss, losses["heat"], losses["pose"], losses["con"]]).detach()
            guard.record(b + 1, values)
            for group in optimizer.param_groups:
                group["lr"] = scheduled_lr(cfg, state.epoch * n_batches + b, cfg.epochs * n_batches)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            weights.gradients_to_masters()
            if cfg.grad_clip > 0:
                clip_gradients(params, cfg.grad_clip)
            optimizer.step()
            weights.refresh()
            sums += values
            if bar.update():  # it redrew (at most every mininterval): show these losses from its next redraw
                bar.set_postfix(dict(zip(LOSSES, (f"{v:.4f}" for v in values.tolist()))), refresh=False)
            if (b + 1) % GUARD_EVERY == 0:
                guard.check(state.epoch + 1)
            if on_step is not None:
                on_step(b)
    guard.check(state.epoch + 1)
    return dict(zip(LOSSES, (sums / max(n_batches, 1)).tolist()))
