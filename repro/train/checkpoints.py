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
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


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
