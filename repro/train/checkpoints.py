"""A training run's epoch checkpoints: model, optimiser, epoch, loss history and every RNG's state,
written atomically (repro.files) so that a kill mid-write keeps the previous one, and read back to
resume the run exactly where it stopped."""

import dataclasses
import random
from pathlib import Path

import numpy as np
import torch

from repro.files import save_tensor
from repro.train.loop import TrainState


def rng_state() -> dict:
    """Every generator a training draws from: on a GPU that includes the device's (the augmentation's noise)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():  # the training device's generator: a worker sees one GPU, its current device
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():  # a checkpoint written on a GPU, resumed on one
        torch.cuda.set_rng_state(state["cuda"])


def save_checkpoint(path: Path, state: TrainState) -> None:
    save_tensor(
        {
            "model": state.model.state_dict(),
            "model_config": dataclasses.asdict(state.model.cfg),
            "optimizer": state.optimizer.state_dict(),
            "epoch": state.epoch,
            "history": state.history,
            "rng": rng_state(),
        },
        path,
    )


def load_checkpoint(path: Path, state: TrainState) -> None:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.epoch, state.history = ckpt["epoch"], ckpt["history"]
    set_rng_state(ckpt["rng"])
