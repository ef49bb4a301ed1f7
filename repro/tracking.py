"""The suite's MLflow store: SQLite with an absolute URI under mlruns/ (MLflow's file store is
deprecated), artifacts beside it. $REPRO_TRACKING_URI overrides it (e.g. a shared tracking server);
not $MLFLOW_TRACKING_URI, which mlflow.set_tracking_uri itself writes into the environment."""

import os
import subprocess
from pathlib import Path

# mlflow is imported inside the functions that use it: the CLI imports this module for its names,
# and loading mlflow (or torch, as repro.train does) would slow every command's start-up.
TRAIN_EXPERIMENT = "repro-train"  # the training runs (repro.train.run), read by the studies and reports too
# what a training run logs per split, as "<split>/<name>": hand3d's visible-joint protocol, then all joints
SPLIT_METRICS = ("epe_mm", "epe_median_mm", "auc_20_50", "epe_all_mm", "epe_median_all_mm", "auc_20_50_all")


def mlruns_dir() -> Path:
    return Path(os.environ.get("REPRO_MLRUNS", "mlruns")).absolute()


def tracking_uri() -> str:
    return os.environ.get("REPRO_TRACKING_URI") or f"sqlite:///{mlruns_dir() / 'mlflow.db'}"


def experiment(name: str) -> str:
    """Point MLflow at the suite's store and return the id of experiment `name`, creating it if needed."""
    import mlflow

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        mlruns_dir().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None if not uri.startswith("sqlite:///") else (mlruns_dir() / "artifacts" / name).as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def git_state() -> dict[str, str]:
    """Commit and dirty flag of the working tree the code runs from ("unknown" outside git)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(bool(dirty)).lower()}


def log_files_run(
    experiment_name: str, name: str, files: list[Path], tags: dict, params: dict | None = None, metrics: dict[str, float] | None = None
) -> str:
    """One run of `experiment_name` holding what a command wrote (its files as artifacts) and the
    code's git state as tags; returns its run id. Report commands log this way."""
    import mlflow

    exp = experiment(experiment_name)
    with mlflow.start_run(experiment_id=exp, run_name=name) as run:
        mlflow.set_tags({**git_state(), **tags})
        mlflow.log_params({k: "" if v is None else v for k, v in (params or {}).items()})
        mlflow.log_metrics(metrics or {})
        for path in files:
            mlflow.log_artifact(str(path))
    return run.info.run_id
