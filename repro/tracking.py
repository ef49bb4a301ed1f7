"""The suite's MLflow store: SQLite with an absolute URI under mlruns/ (MLflow's file store is
deprecated), artifacts beside it. $REPRO_TRACKING_URI overrides it (e.g. a shared tracking server);
not $MLFLOW_TRACKING_URI, which mlflow.set_tracking_uri itself writes into the environment."""

import functools
import os
import subprocess
from pathlib import Path

# mlflow is imported inside the functions that use it: the CLI imports this module for its names,
# and loading mlflow (or torch, as repro.train does) would slow every command's start-up.
# The suite's experiments, named here only.
TRAIN_EXPERIMENT = "repro-train"  # the training runs (repro.train.run), read by the studies and reports too
STUDIES_EXPERIMENT = "repro-studies"  # one parent run per study (repro.studies.runner)
CLIP_EXPERIMENT = "clip-pretrain"  # synthclip pre-training (repro.clip.pretrain)
REPORTS_EXPERIMENT = "repro-reports"  # `repro report`'s files (repro.report.tables)
FIGURES_EXPERIMENT = "repro-figures"  # Figs. 3-4 and the PCK curves (repro.report.figures)
# MLflow 3's UI shows an experiment with this tag as model training (its runs table), not as a GenAI
# app (traces); the UI of MLflow 3.17 follows its own switch instead (repro.report.servers.ui_url).
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
# what a training run logs per split, as "<split>/<name>": hand3d's visible-joint protocol, then all joints
SPLIT_METRICS = ("epe_mm", "epe_median_mm", "auc_20_50", "epe_all_mm", "epe_median_all_mm", "auc_20_50_all")


def mlruns_dir() -> Path:
    return Path(os.environ.get("REPRO_MLRUNS", "mlruns")).absolute()


def tracking_uri() -> str:
    return os.environ.get("REPRO_TRACKING_URI") or f"sqlite:///{mlruns_dir() / 'mlflow.db'}"


def client():
    """An MlflowClient of the suite's store. A local SQLite store is created on first use, under a file
    lock: two processes creating its tables at once (e.g. two `repro train` on a fresh store) made one
    fail with "duplicate column name"."""
    from filelock import FileLock
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    if uri.startswith("sqlite:///") and uri not in _OPENED:
        mlruns_dir().mkdir(parents=True, exist_ok=True)
        with FileLock(mlruns_dir() / "mlflow.db.lock"):
            MlflowClient(uri).search_experiments(max_results=1)  # creates or migrates the tables if needed
        _OPENED.add(uri)
    return MlflowClient(uri)


_OPENED: set[str] = set()  # the SQLite stores this process has opened (under the lock)


def use_store() -> None:
    """Point MLflow's fluent API (mlflow.start_run, mlflow.log_*, mlflow.artifacts) at the suite's store:
    called by the modules that use it, right before they do."""
    import mlflow

    client()  # creates the store's folder
    mlflow.set_tracking_uri(tracking_uri())


def experiment(name: str) -> str:
    """The id of experiment `name` in the suite's store, created (artifacts beside a local store) if
    needed, and marked as a model-training experiment (EXPERIMENT_KIND)."""
    store = client()
    found = store.get_experiment_by_name(name)
    if found is not None:
        if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # one created before the suite set it
            store.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return found.experiment_id
    uri = tracking_uri()
    location = None if not uri.startswith("sqlite:///") else (mlruns_dir() / "artifacts" / name).as_uri()
    from mlflow.exceptions import MlflowException

    try:
        return store.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except MlflowException:  # another process created it since we looked
        found = store.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


@functools.cache
def git_state() -> dict[str, str]:
    """Commit and dirty flag of the working tree the code runs from ("unknown" outside git), read once
    per process: a worker runs the code it imported, so an edit of the tree while it trains must not
    relabel its later runs."""
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
    use_store()
    with mlflow.start_run(experiment_id=exp, run_name=name) as run:
        mlflow.set_tags({**git_state(), **tags})
        mlflow.log_params({k: "" if v is None else v for k, v in (params or {}).items()})
        mlflow.log_metrics(metrics or {})
        for path in files:
            mlflow.log_artifact(str(path))
    return run.info.run_id
