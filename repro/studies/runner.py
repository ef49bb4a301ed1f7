"""Run a study: a fixed grid of cells, each trained once, by any number of worker processes.

A *plan* (table.TablePlan for a paper table, tune.TunePlan for `repro tune`) names the study and
its cells and knows how to run one cell through a `train(cfg) -> RunResult` function. This module
does the rest, the same way for every plan:

- Storage: Optuna's journal file mlruns/optuna/<journal>.journal by default (several processes on
  one machine), or any Optuna RDB URL (`postgresql://...` for workers on several machines).
- Claims: Optuna's GridSampler is not used: it counts FAILED trials as visited and never retries
  them, and the journal storage has no heartbeat, so a killed worker's trial stays RUNNING for
  ever. Instead, under the study's claim lock (locks.py), a worker fails the RUNNING trials whose
  worker is dead, computes the pending cells (no COMPLETE trial, no RUNNING trial, fewer than
  `attempts` failures in this invocation), enqueues the first and pops it with `study.ask()`.
  The cell lives in the trial's user attrs ("cell" plus the plan's attrs); trials have no Optuna
  params, so a study can grow (more seeds) without distribution clashes.
- Liveness: the claiming worker records its host, pid and process start time on the trial and
  refreshes a "heartbeat" attr from a thread (locks.is_alive decides).
- Training: each config is trained under a lock on its config hash, through `train_run` (or the
  injected trainer), whose MLflow dedupe returns a FINISHED run of the same hash instead of
  training again (across tables and studies) and resumes an unfinished one from its checkpoint:
  so a retried cell continues where the killed one stopped.
- Tracking: one parent MLflow run per study (experiment "repro-studies", found again by its tag
  `study`), every training run nested under it with tags `study`, `study_trial`, `study_cell`; a
  run reused from elsewhere keeps its parent and gets a tag reused_by/<study>/<trial>. The trial
  records the run ids and config hashes (user attr "runs") and the parent run id is a study attr.
"""

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Callable, Iterable, Protocol

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from repro.clip.errors import ClipError
from repro.config import ConfigError, RunConfig
from repro.data.errors import DataError
from repro.studies.locks import HEARTBEAT_S, is_alive, locks_for, sqlalchemy_url, worker_identity
from repro.tracking import STUDIES_EXPERIMENT, TRAIN_EXPERIMENT, client, experiment, mlruns_dir

POLL_S = 2.0  # how often a worker with nothing left to claim looks at the others' cells
ATTEMPTS = 2  # tries per cell and invocation: one retry of a failed cell, then it is reported as failed


@dataclass(frozen=True)
class Cell:
    key: str  # unique within the study, e.g. "IE+TE r=0.6 | seed 0"
    attrs: dict = field(default_factory=dict)  # recorded on its trials (e.g. row, seed)


class Plan(Protocol):
    study_name: str
    journal: str  # stem of the default journal file

    def cells(self) -> list[Cell]: ...

    def run_cell(self, cell: Cell, train: Callable) -> tuple[float, dict]:
        """Train the cell's configs through `train(cfg)`; return the trial's value and user attrs."""

    def describe(self) -> dict:
        """Parameters of the study for its parent MLflow run."""

    def to_json(self) -> dict:
        """Arguments of `from_json` that re-create the plan in a worker process."""


class CellFailed(RuntimeError):
    """A training of the cell ended FAILED (e.g. diverged)."""


@dataclass
class Session:
    plan: Plan
    storage_url: str | None
    storage: optuna.storages.BaseStorage
    study: optuna.Study
    locks: object
    parent_run_id: str
    invocation: str


def study_name(prefix: str, configs: Iterable[RunConfig]) -> str:
    """prefix-<8 hex>, a hash of the run hashes (repro.train.identity) of the configs the study trains for
    its first seed: a changed preset, trainer version, --set or row, and equally new data or CLIP weights,
    make another study, so a study never reports cells trained on another identity as its own; the old
    study and its runs stay as they were."""
    from repro.train.identity import run_hash

    hashes = sorted({run_hash(cfg) for cfg in configs})
    return f"{prefix}-{hashlib.sha256(','.join(hashes).encode()).hexdigest()[:8]}"


def plan_to_json(plan: Plan) -> dict:
    return {"class": f"{type(plan).__module__}:{type(plan).__name__}", "args": plan.to_json()}


def plan_from_json(data: dict) -> Plan:
    module, _, name = data["class"].partition(":")
    return getattr(import_module(module), name).from_json(data["args"])


def default_trainer() -> Callable:
    """train_run, or the function named by $REPRO_TRAINER ("module:function"): tests use it to run
    worker processes with a fast fake trainer."""
    spec = os.environ.get("REPRO_TRAINER")
    if spec:
        module, _, name = spec.partition(":")
        return getattr(import_module(module), name)
    from repro.train.run import train_run

    return train_run


def journal_dir() -> Path:
    return mlruns_dir() / "optuna"


def journal_path(journal: str) -> Path:
    """A study's default storage: an Optuna journal file under mlruns/optuna/."""
    return journal_dir() / f"{journal}.journal"


def open_storage(url: str | None, journal: str) -> optuna.storages.BaseStorage:
    if url is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = journal_path(journal)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    engine = {} if url.startswith("sqlite") else {"pool_pre_ping": True}  # long trainings leave connections idle
    return optuna.storages.RDBStorage(sqlalchemy_url(url), engine_kwargs=engine)


def storage_label(url: str | None, journal: str) -> str:
    if url is None:
        return str(journal_path(journal))
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def find_study(plan: Plan, url: str | None = None) -> optuna.Study | None:
    """The plan's study if it was ever run, else None: for reading results, so it creates neither a journal file nor a study."""
    if url is None and not journal_path(plan.journal).is_file():
        return None
    try:
        return optuna.load_study(study_name=plan.study_name, storage=open_storage(url, plan.journal))
    except KeyError:  # optuna's "no such study"
        return None


def _parent_run(plan: Plan, url: str | None) -> str:
    """The study's parent MLflow run, created on first use (callers hold the setup lock)."""
    store = client()
    exp = experiment(STUDIES_EXPERIMENT)
    found = store.search_runs([exp], filter_string=f"tags.study = '{plan.study_name}'", max_results=1)
    if found:
        return found[0].info.run_id
    run = store.create_run(
        exp, run_name=plan.study_name, tags={"study": plan.study_name, "optuna_storage": storage_label(url, plan.journal)}
    )
    from mlflow.entities import Param

    store.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in plan.describe().items()])
    return run.info.run_id


def prepare(plan: Plan, storage_url: str | None = None, invocation: str | None = None) -> Session:
    """Stores, study and parent run, created once under the setup lock (idempotent: every worker,
    local or remote, calls it). MLflow's database and experiments are created here, before any
    worker trains: concurrent first use of a fresh SQLite store crashes MLflow."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the runner prints its own progress
    locks = locks_for(storage_url, mlruns_dir())
    with locks.hold("setup"):
        experiment(TRAIN_EXPERIMENT)
        parent = _parent_run(plan, storage_url)
        storage = open_storage(storage_url, plan.journal)
        study = optuna.create_study(
            storage=storage,
            study_name=plan.study_name,
            direction="minimize",
            sampler=optuna.samplers.RandomSampler(seed=0),
            load_if_exists=True,
        )
        # On the study's side: its parent run, and the grid as this plan sees it (more seeds grow it).
        for key, value in {"mlflow_parent_run_id": parent, "cells": [c.key for c in plan.cells()]}.items():
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)
    return Session(plan, storage_url, storage, study, locks, parent, invocation or uuid.uuid4().hex)


def _fail(session: Session, trial_id: int, kind: str, reason: str) -> None:
    """Mark a trial FAIL; kind "error" (its training failed), "lost" (its worker died) or
    "superseded" (a left-over claim of a cell already done or taken: not an attempt)."""
    try:
        session.storage.set_trial_user_attr(trial_id, "failure_kind", kind)
        session.storage.set_trial_user_attr(trial_id, "failure", reason[-2000:])
        session.storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        pass  # its worker finished it meanwhile


def _pending(session: Session, trials: list, attempts: int) -> list[Cell]:
    taken = {t.user_attrs.get("cell") for t in trials if t.state in (TrialState.COMPLETE, TrialState.RUNNING)}
    failed = Counter(
        t.user_attrs.get("cell")
        for t in trials
        if t.state == TrialState.FAIL
        and t.user_attrs.get("invocation") == session.invocation
        and t.user_attrs.get("failure_kind") != "superseded"
    )
    return [c for c in session.plan.cells() if c.key not in taken and failed[c.key] < attempts]


def claim(session: Session, attempts: int = ATTEMPTS) -> tuple[optuna.Trial, Cell] | None:
    """Claim the next pending cell as a RUNNING trial of this worker, or None when none is left."""
    study, cells = session.study, {c.key: c for c in session.plan.cells()}
    with session.locks.hold(f"study:{study.study_name}"):
        while True:
            trials = study.get_trials(deepcopy=False)
            now = time.time()
            for t in trials:
                if t.state == TrialState.RUNNING and not is_alive(t.user_attrs.get("worker"), t.user_attrs.get("heartbeat"), now):
                    print(
                        f"[{study.study_name}] trial {t.number} ({t.user_attrs.get('cell')}): its worker is gone; retrying the cell",
                        file=sys.stderr,
                    )
                    _fail(session, t._trial_id, "lost", f"worker {t.user_attrs.get('worker')} stopped without finishing")
            trials = study.get_trials(deepcopy=False)
            pending = _pending(session, trials, attempts)
            if not pending:
                return None
            # Under the lock no other worker is between enqueue and ask, so a WAITING trial is one a
            # worker enqueued before dying: pop it rather than leave it behind.
            if not any(t.state == TrialState.WAITING for t in trials):
                study.enqueue_trial({}, user_attrs={"cell": pending[0].key, **pending[0].attrs})
            trial = study.ask()
            key = trial.user_attrs.get("cell")
            if key in {c.key for c in pending}:
                for name, value in {"worker": worker_identity(), "heartbeat": now, "invocation": session.invocation}.items():
                    trial.set_user_attr(name, value)
                return trial, cells[key]
            _fail(session, trial._trial_id, "superseded", f"cell {key!r} was done or taken when this trial was popped")


class _Heartbeat:
    """Refreshes the trial's "heartbeat" attr, so workers on other hosts can tell it is alive."""

    def __init__(self, storage, trial_id: int):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(storage, trial_id), daemon=True)

    def _beat(self, storage, trial_id: int) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                storage.set_trial_user_attr(trial_id, "heartbeat", time.time())
            except Exception:  # finished or taken over: nothing left to signal
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _train_for(session: Session, trainer: Callable, trial: optuna.Trial, cell: Cell) -> Callable:
    """The `train(cfg)` a plan calls: one config at a time under its hash lock, tagged, recorded."""
    name = session.study.study_name

    def train(cfg):
        tags = {"study": name, "study_trial": str(trial.number), "study_cell": cell.key}
        with session.locks.hold(f"config:{cfg.hash}"):
            result = trainer(cfg, parent_run_id=session.parent_run_id, extra_tags=tags)
        if result.reused:
            client().set_tag(result.run_id, f"reused_by/{name}/{trial.number}", cell.key)
        runs = trial.user_attrs.get("runs", [])
        trial.set_user_attr(
            "runs",
            runs
            + [
                {
                    "config_hash": result.config_hash,
                    "run_hash": result.run_hash,
                    "run_id": result.run_id,
                    "status": result.status,
                    "reused": result.reused,
                }
            ],
        )
        if result.status != "FINISHED":
            raise CellFailed(f"training of config {result.config_hash} ended {result.status} (MLflow run {result.run_id})")
        return result

    return train


def run_claimed(session: Session, trial: optuna.Trial, cell: Cell, trainer: Callable) -> None:
    """Run a claimed cell: COMPLETE with the plan's value and attrs, or FAIL with the reason."""
    name = session.study.study_name
    print(f"[{name}] trial {trial.number}: {cell.key}", file=sys.stderr)
    try:
        with _Heartbeat(session.storage, trial._trial_id):
            value, attrs = session.plan.run_cell(cell, _train_for(session, trainer, trial, cell))
    except Exception as err:
        if not isinstance(err, (ConfigError, DataError, ClipError)):  # those say what to fix in their message
            traceback.print_exc()
        _fail(session, trial._trial_id, "error", f"{type(err).__name__}: {err}")
        print(f"[{name}] trial {trial.number} FAILED: {cell.key}: {err}", file=sys.stderr)
        return
    except BaseException:  # Ctrl-C: leave a clear record; a later start retries the cell
        _fail(session, trial._trial_id, "error", "interrupted")
        raise
    for key, value_ in attrs.items():
        trial.set_user_attr(key, value_)
    try:
        session.study.tell(trial, value)
    except UpdateFinishedTrialError:  # judged dead meanwhile (a long pause): the cell's retry reuses our run
        print(f"[{name}] trial {trial.number} was taken over before it finished", file=sys.stderr)


def work(session: Session, trainer: Callable | None = None, attempts: int = ATTEMPTS) -> None:
    """Claim and run cells until none is pending and no other worker runs one: waiting for the
    others means every worker ends with the whole table, and takes over a cell whose worker dies."""
    trainer = trainer or default_trainer()
    while True:
        claimed = claim(session, attempts)
        if claimed is not None:
            run_claimed(session, *claimed, trainer)
        elif session.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            time.sleep(POLL_S)
        else:
            return


def missing_cells(session: Session) -> list[str]:
    done = {t.user_attrs.get("cell") for t in session.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    return [c.key for c in session.plan.cells() if c.key not in done]


def _close_parent(session: Session) -> None:
    """FINISHED when every cell is complete; FAILED when cells are missing and nobody runs one."""
    running = session.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not missing_cells(session):
        client().set_terminated(session.parent_run_id, "FINISHED")
    elif not running:
        client().set_terminated(session.parent_run_id, "FAILED")


def run_study(
    plan: Plan, workers: int = 1, storage: str | None = None, trainer: Callable | None = None, attempts: int = ATTEMPTS
) -> Session:
    """Prepare the study, run `workers` workers on it (this process when 1, else subprocesses on the
    same storage) until no cell is pending, and close its parent MLflow run."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    session = prepare(plan, storage)
    client().update_run(session.parent_run_id, status="RUNNING")
    if workers == 1:
        work(session, trainer, attempts)
    else:
        if trainer is not None:
            raise ValueError("a trainer function cannot be passed to worker processes: set $REPRO_TRAINER")
        payload = json.dumps({"plan": plan_to_json(plan), "storage": storage, "invocation": session.invocation, "attempts": attempts})
        # The machine's cores shared out, unless the user chose: workers at torch's default would each
        # start one thread per core and slow one another down.
        threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, len(os.sched_getaffinity(0)) // workers))
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        procs = [subprocess.Popen([sys.executable, "-m", "repro.studies.runner", payload], env=env) for _ in range(workers)]
        codes = [p.wait() for p in procs]
        if any(codes):
            print(f"[{plan.study_name}] worker exit codes {codes}", file=sys.stderr)
    _close_parent(session)
    return session


def _worker_main(payload: str) -> int:
    args = json.loads(payload)
    session = prepare(plan_from_json(args["plan"]), args["storage"], args["invocation"])
    work(session, attempts=args["attempts"])
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1]))
