"""Re-create a finished run's model from MLflow (its config.json and checkpoint) and evaluate it."""

import json
from pathlib import Path

import mlflow
import torch

from repro.config import ConfigError, from_dict
from repro.model.config import ModelConfig
from repro.model.hand_pose import HandPoseModel
from repro.tracking import SPLIT_METRICS, TRAIN_EXPERIMENT, client, tracking_uri, use_store
from repro.train.data import evaluated_splits, load_split
from repro.train.evaluate import evaluate_split
from repro.train.run import device_for_training

CHECKPOINT = "checkpoint/last.pt"


def finished_run(run_id: str):
    """The MLflow run `run_id` if it is a FINISHED training run with its config.json and checkpoint;
    ConfigError naming the id and what was expected otherwise."""
    from mlflow.exceptions import MlflowException

    uri = tracking_uri()
    expected = f"expected the id of a finished run of experiment {TRAIN_EXPERIMENT!r}, as `repro train` prints it"
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ConfigError(f"no run {run_id!r}: the tracking store {uri} does not exist (nothing was tracked there); {expected}")
    store = client()
    try:
        run = store.get_run(run_id)
    except MlflowException as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"no run {run_id!r} in the tracking store {uri} ({first}); {expected}") from None
    if run.info.status != "FINISHED":
        raise ConfigError(
            f"run {run_id!r} is {run.info.status}, expected a FINISHED training run "
            f"(`repro train` with the run's config resumes an unfinished one)"
        )
    try:
        files = {a.path for folder in ("", "checkpoint") for a in store.list_artifacts(run_id, folder)}
    except (MlflowException, OSError) as err:
        raise ConfigError(f"run {run_id!r}: cannot list its artifacts ({err})") from None
    missing = [f for f in ("config.json", CHECKPOINT) if f not in files]
    if missing:
        name = store.get_experiment(run.info.experiment_id).name
        raise ConfigError(
            f"run {run_id!r} (experiment {name!r}) has no {' or '.join(missing)} artifact: "
            f"expected a training run of experiment {TRAIN_EXPERIMENT!r}"
        )
    return run


def load_run_model(run_id: str):
    """(config, model on the training device) of a tracked run."""
    finished_run(run_id)
    use_store()  # the artifact reads below go through MLflow's fluent API
    cfg = from_dict(json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/config.json")))
    ckpt_dir = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/checkpoint"))
    ckpt = torch.load(ckpt_dir / "last.pt", map_location="cpu", weights_only=False)
    model = HandPoseModel(ModelConfig.from_record(ckpt["model_config"]))  # as trained: Branch2 and CLIP width included
    model.load_state_dict(ckpt["model"])
    return cfg, model.to(device_for_training())


def evaluate_run(run_id: str, targets: list[str] | None = None) -> dict:
    cfg, model = load_run_model(run_id)
    device = next(model.parameters()).device
    out = {}
    for name in targets or evaluated_splits(cfg.targets):  # by default what training evaluated: targets and diagnostics
        split = load_split(name, "test", cfg.n_test, cfg.image_size, cfg.data_root)
        metrics = evaluate_split(model, split, cfg.model.input_size, device, cfg.precision, cfg.memory_format)
        out[name] = {k: metrics[k] for k in SPLIT_METRICS}
    return out
