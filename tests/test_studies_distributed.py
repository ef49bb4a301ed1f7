"""Two independently started workers share one study through PostgreSQL and an MLflow server.

The test starts its own PostgreSQL (Debian's server binaries, installed by .ci/run; run as the
`postgres` user when the test runs as root, since initdb and postgres refuse root) and its own
`mlflow server`, both on free loopback ports, then two `repro table4a --storage postgresql://...`
processes with REPRO_TRACKING_URI pointing at the server, each with its own mlruns/ (as if on two
machines: no file lock is shared, so only PostgreSQL's advisory locks keep them apart). Training is
tests/fake_trainer.py. Every cell must run exactly once, and both workers must have run cells.

Without the binaries the test is skipped, unless $REPRO_REQUIRE_POSTGRES is set (.ci/run sets
it): then it fails, so CI cannot pass without running it.
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from repro import tracking
from repro.presets import preset_config
from repro.studies.runner import open_storage
from repro.studies.table import TablePlan
from repro.tracking import STUDIES_EXPERIMENT as EXPERIMENT
from repro.tracking import TRAIN_EXPERIMENT, experiment

TESTS = Path(__file__).parent
REPO = TESTS.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextmanager
def _mlflow_server(folder: Path):
    """`mlflow server` on a free loopback port, started now; yields (uri, wait until it answers)."""
    port = _free_port()
    log = open(folder / "mlflow-server.log", "w")
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'server.db'}",
        "--artifacts-destination",
        str(folder / "server-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"

    def wait() -> None:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (folder / "mlflow-server.log").read_text()[-3000:]
            time.sleep(0.5)

    try:
        yield uri, wait
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the server and the workers it started (its own session); nothing to keep
        server.wait()
        log.close()


@contextmanager
def _postgres(bindir: Path):
    """A throw-away PostgreSQL cluster on a free loopback port; yields its URL."""
    # Not under pytest's tmp_path: its parent is private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="repro-pg-"))
    root.chmod(0o755)
    data, sockets = root / "data", root / "sockets"
    data.mkdir()
    sockets.mkdir()
    as_user = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        for path in (root, data, sockets):
            shutil.chown(path, "postgres")
    port = _free_port()
    try:
        subprocess.run(
            as_user + [str(bindir / "initdb"), "-D", str(data), "-U", "repro", "--auth=trust", "--no-sync"], check=True, capture_output=True
        )
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "start"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://repro@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def services(tmp_path):
    """(PostgreSQL URL, MLflow server URI); the MLflow server boots (slowly) while PostgreSQL is set up."""
    bindir = _pg_bin()
    if bindir is None:
        reason = "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb); .ci/run installs Debian's postgresql"
        if os.environ.get("REPRO_REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)
    with _mlflow_server(tmp_path) as (uri, wait), _postgres(bindir) as url:
        wait()
        yield url, uri


@pytest.mark.slow
def test_two_workers_on_postgresql_run_every_cell_once(services, tmp_path, monkeypatch):
    postgres, mlflow_server = services
    log = tmp_path / "trained.log"
    env = {
        **os.environ,
        "REPRO_TRACKING_URI": mlflow_server,
        "REPRO_CACHE": str(tmp_path / "cache"),
        "REPRO_TRAINER": "fake_trainer:train",
        "REPRO_FAKE_LOG": str(log),
        "REPRO_FAKE_SLEEP": "2",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    # The machines share the cache (as they must, to share a study: its name covers the data and the
    # synthclip weights): built once here, so neither worker spends its start building it for both.
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    plan = TablePlan.from_args("table4a", preset_config("tiny"))
    assert plan.study_name.startswith("table4a-tiny-")
    cmd = [sys.executable, "-m", "repro", "table4a", "--preset", "tiny", "--storage", postgres]
    workers = []
    for i in range(2):
        err = open(tmp_path / f"worker{i}.err", "w")
        workers.append(
            subprocess.Popen(
                cmd,
                env={**env, "REPRO_MLRUNS": str(tmp_path / f"machine{i}" / "mlruns")},
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        )
        err.close()
    codes = [w.wait(timeout=300) for w in workers]
    assert codes == [0, 0], [(tmp_path / f"worker{i}.err").read_text()[-3000:] for i in range(2)]

    events = [line.split() for line in log.read_text().splitlines()]
    ends = Counter(h for e, h, _ in events if e == "end")
    assert len(ends) == 6 and set(ends.values()) == {1}  # every cell trained exactly once
    assert len({pid for _, _, pid in events}) == 2  # both workers took cells

    study = optuna.load_study(study_name=plan.study_name, storage=open_storage(postgres, plan.journal))
    trials = study.get_trials()
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert sorted(t.user_attrs["cell"] for t in trials) == sorted(c.key for c in plan.cells())
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2

    monkeypatch.setenv("REPRO_TRACKING_URI", mlflow_server)
    studies_exp, train_exp = experiment(EXPERIMENT), experiment(TRAIN_EXPERIMENT)  # also points MLflow at the server
    client = tracking.client()
    [parent] = client.search_runs([studies_exp])  # one parent, though both workers set up the study
    assert parent.data.tags["study"] == plan.study_name and parent.info.run_id == study.user_attrs["mlflow_parent_run_id"]
    runs = client.search_runs([train_exp])
    assert len(runs) == 6 and {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    by_trial = {t.number: t.user_attrs["run_ids"]["STB"] for t in trials}
    assert {int(r.data.tags["study_trial"]): r.info.run_id for r in runs} == by_trial
