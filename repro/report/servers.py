"""`repro ui` and `repro dashboard`: the MLflow UI on the suite's tracking store and optuna-dashboard
on a study's storage. Both bind to 127.0.0.1: the stores hold this machine's paths and neither
server authenticates, so they are for whoever sits at this machine (or tunnels to it).
"""

import os
import sys
from pathlib import Path

from repro.config import ConfigError
from repro.studies.runner import journal_dir, journal_path, open_storage
from repro.tracking import TRAIN_EXPERIMENT, experiment, mlruns_dir, tracking_uri

HOST = "127.0.0.1"


def mlflow_server_command(port: int) -> list[str]:
    """`mlflow server` on the suite's store: one worker (a UI for one person on a small machine);
    artifacts of experiments created from the UI go beside the suite's, under mlruns/artifacts/."""
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        raise ConfigError(f"the tracking store is already a server ({uri}): open its UI there")
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--artifacts-destination",
        (mlruns_dir() / "artifacts").as_uri(),
    ]


def ui_url(port: int) -> str:
    """The UI's page of the training runs (the store and experiment created if new). MLflow 3's UI
    shows an experiment as a GenAI app (traces) unless told it is model training: by the experiment's
    tag mlflow.experimentKind (repro.tracking sets it), which the UI of MLflow 3.17 ignores: it
    follows its "GenAI / Model training" switch instead, kept per browser (GenAI until changed) and
    set by the URL's workflowType."""
    return f"http://{HOST}:{port}/#/experiments/{experiment(TRAIN_EXPERIMENT)}?workflowType=machine_learning"


def run_mlflow_ui(port: int) -> None:
    """Replace this process with the MLflow server, so Ctrl-C and kill reach it directly.

    MLflow's background job runner (GenAI evaluation jobs, which the suite never submits) stays off
    unless $MLFLOW_SERVER_ENABLE_JOB_EXECUTION says otherwise: it is more processes competing for a
    small machine's cores while the UI starts."""
    command = mlflow_server_command(port)
    print(f"MLflow UI on {ui_url(port)} (store {tracking_uri()})", flush=True)
    os.execve(command[0], command, {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ})


def journals() -> list[str]:
    """Stems of the study journal files under mlruns/optuna/ (one per table, plus "tune")."""
    return sorted(p.stem for p in journal_dir().glob("*.journal"))


def study_storage(storage_url: str | None, table: str | None):
    """The Optuna storage of --storage URL, or of table NAME's journal file (the only journal if neither is given)."""
    if storage_url:
        return open_storage(storage_url, table or "")
    found = journals()
    if table is None:
        if len(found) != 1:
            raise ConfigError(f"give --table NAME or --storage URL; journals under {journal_dir()}: {', '.join(found) or 'none'}")
        table = found[0]
    if table not in found:
        raise ConfigError(
            f"no study journal {journal_path(table)} (found: {', '.join(found) or 'none'}); run `repro {table}` first or pass --storage URL"
        )
    return open_storage(None, table)


def run_dashboard(storage_url: str | None, table: str | None, port: int) -> None:
    """optuna-dashboard on the study storage; blocks until interrupted."""
    import optuna_dashboard

    storage = study_storage(storage_url, table)
    print(f"optuna-dashboard on http://{HOST}:{port}", flush=True)
    optuna_dashboard.run_server(storage, host=HOST, port=port)
