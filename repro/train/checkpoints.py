"""Re-create a finished run's model from MLflow (its config.json and checkpoint) and evaluate it."""

import json
from pathlib import Path

import mlflow
import torch

from repro.config import from_dict
from repro.model.config import ModelConfig
from repro.model.hand_pose import HandPoseModel
from repro.tracking import SPLIT_METRICS, experiment
from repro.train.data import load_split
from repro.train.evaluate import evaluate_split
from repro.train.run import EXPERIMENT, device_for_training


def load_run_model(run_id: str):
    """(config, model on the training device) of a tracked run."""
    experiment(EXPERIMENT)
    cfg = from_dict(json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/config.json")))
    ckpt_dir = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/checkpoint"))
    ckpt = torch.load(ckpt_dir / "last.pt", map_location="cpu", weights_only=False)
    model = HandPoseModel(ModelConfig(**ckpt["model_config"]))  # as trained: Branch2 and CLIP width included
    model.load_state_dict(ckpt["model"])
    return cfg, model.to(device_for_training())


def evaluate_run(run_id: str, targets: list[str] | None = None) -> dict:
    cfg, model = load_run_model(run_id)
    device = next(model.parameters()).device
    out = {}
    for name in targets or list(cfg.targets):
        split = load_split(name, "test", cfg.n_test, cfg.image_size, cfg.data_root)
        metrics = evaluate_split(model, split, cfg.model.input_size, device)
        out[name] = {k: metrics[k] for k in SPLIT_METRICS}
    return out
