"""`repro ui` and `repro dashboard`, each started as a subprocess on a free loopback port and queried
over HTTP: the MLflow REST API lists the store's runs, optuna-dashboard's API the journal's study."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import mlflow
import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage

from repro.cli import main
from repro.report.servers import mlflow_server_command
from repro.tracking import experiment, use_store

STARTUP_S = 120  # an idle machine starts either in seconds; a loaded 2-core one can take far longer for MLflow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_MLRUNS", str(tmp_path / "mlruns"))
    monkeypatch.delenv("REPRO_TRACKING_URI", raising=False)
    return tmp_path / "mlruns"


@pytest.fixture
def serve(tmp_path):
    """Start `repro ARGS` in its own process group; at teardown end that group (the server and any workers it spawned)."""
    started = []

    def start(*args: str) -> subprocess.Popen:
        log = open(tmp_path / f"server-{len(started)}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "repro", *args],
            cwd=tmp_path,
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append((proc, log))
        return proc

    yield start
    for proc, log in started:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        log.close()


def _get(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wait_until_up(proc: subprocess.Popen, url: str, tmp_path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("server-*.log"))
            pytest.fail(f"server exited with {proc.returncode}:\n{logs[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)
    pytest.fail(f"{url} did not answer within {STARTUP_S} s")


def test_mlflow_ui_lists_the_stores_runs_over_the_rest_api(store, serve, tmp_path):
    exp = experiment("repro-train")
    use_store()  # the test logs through MLflow's fluent API
    run_ids = set()
    for value in (1.0, 2.0):
        with mlflow.start_run(experiment_id=exp) as run:
            mlflow.log_metric("val/epe_mm", value)
        run_ids.add(run.info.run_id)

    port = _free_port()
    proc = serve("ui", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    _wait_until_up(proc, f"{base}/health", tmp_path)
    found = _get(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [exp]})
    assert {r["info"]["run_id"] for r in found["runs"]} == run_ids
    assert _get(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=repro-train")["experiment"]["experiment_id"] == exp


def test_mlflow_ui_binds_to_loopback_and_refuses_a_remote_store(store, monkeypatch, capsys):
    command = mlflow_server_command(5000)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--backend-store-uri") + 1] == f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.setenv("REPRO_TRACKING_URI", "http://tracking.example:5000")
    assert main(["ui"]) == 2 and "already a server" in capsys.readouterr().err


def test_dashboard_serves_the_journal_study(store, serve, tmp_path):
    journal = store / "optuna" / "tiny.journal"
    journal.parent.mkdir(parents=True)
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(journal))), study_name="tiny-study")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1) ** 2, n_trials=3)

    port = _free_port()
    proc = serve("dashboard", "--table", "tiny", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    _wait_until_up(proc, f"{base}/api/meta", tmp_path)
    [summary] = _get(f"{base}/api/studies")["study_summaries"]
    assert summary["study_name"] == "tiny-study"
    assert len(_get(f"{base}/api/studies/{summary['study_id']}")["trials"]) == 3


def test_dashboard_names_the_journals_it_can_serve(store, capsys):
    assert main(["dashboard", "--table", "table4a"]) == 2
    assert "no study journal" in capsys.readouterr().err
    (store / "optuna").mkdir(parents=True)
    (store / "optuna" / "tune.journal").touch()
    (store / "optuna" / "table3.journal").touch()
    assert main(["dashboard"]) == 2 and "table3, tune" in capsys.readouterr().err
