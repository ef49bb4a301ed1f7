"""Run studies: fixed grids of cells, each trained once, by any number of worker processes.

A *plan* (table.TablePlan for a paper table, tune.TunePlan for `repro tune`) names the study and
its cells and knows how to run one cell through a `train(cfg) -> RunResult` function. This module
does the rest, the same way for every plan:

- Storage: Optuna's journal file mlruns/optuna/<journal>.journal by default (several processes on
  one machine), or any Optuna RDB URL (`postgresql://...` for workers on several machines).
- Claims: Optuna's GridSampler is not used: it counts FAILED trials as visited and never retries
  them, and the journal storage has no heartbeat, so a killed worker's trial stays RUNNING for
  ever. Instead, under the study's claim lock (locks.py), a worker fails the RUNNING trials whose
  worker is dead, computes the pending cells (no COMPLETE trial, no RUNNING trial, fewer than
  `attempts` failures in this invocation), enqueues the first in claim_order (by wave, then the longest
  first by what the cell's kind took so far) and pops it with `study.ask()`.
  The cell lives in the trial's user attrs ("cell" plus the plan's attrs); trials have no Optuna
  params, so a study can grow (more seeds) without distribution clashes.
- Pool: studies run together (`repro all`, run_studies) are prepared first, then every worker
  claims the first pending cell of the first study that has one: a worker moves on to the next
  study while the others finish the last cells of the one before, with no barrier between them.
  A study settles (its parent run closes, `on_settled` hears of it) once none of its cells is
  pending or running.
- Devices: the workers are spread over `devices` round-robin; each worker process sees only its
  own GPU (CUDA_VISIBLE_DEVICES), where train_run's device_for_training() finds it as cuda:0,
  or none for cpu; DEVICE_ENV names its device as the parent numbers it, recorded on its trials.
- Liveness: the claiming worker records its host, pid and process start time on the trial and
  refreshes a "heartbeat" attr from a thread (locks.is_alive decides).
- Training: each config is trained under a lock on its config hash, through `train_run` (or the
  injected trainer), whose MLflow dedupe returns a FINISHED run of the same hash instead of
  training again (across tables and studies) and resumes an unfinished one from its checkpoint:
  so a retried cell continues where the killed one stopped.
- Tracking: one parent MLflow run per study (experiment "repro-studies", found again by its tag
  `study`), every training run nested under it with tags `study`, `study_trial`, `study_cell`,
  named by the plan (`run_name`); a run reused from elsewhere keeps its parent and name and gets a
  tag reused_by/<study>/<trial>. A table's runs list every table and row they serve (TABLES_TAG,
  ROWS_TAG: "table4a,table4b", "table4a:Baseline,table4b:Baseline"), so the UI groups a table.
  The trial records the run ids and config hashes (user attr "runs"), the parent run id is a study
  attr, and the parent run holds CELLS_ARTIFACT: per cell its row, seed and run ids.
"""

import hashlib
import json
import math
import os
import statistics
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
ATTEMPTS = 2  # tries per cell and invocation: one retry of a failed cell (not of a diverged one), then it is reported as failed
DEVICE_ENV = "REPRO_DEVICE"  # a worker's device as its parent numbers it ("cuda:1"); inside, that GPU is cuda:0
TABLES_TAG, ROWS_TAG = "repro.tables", "repro.rows"  # on a training run: the tables and "<table>:<row>"s it serves
CELLS_ARTIFACT = "cells.json"  # on a study's parent run: its cells with their training runs


@dataclass(frozen=True)
class Cell:
    key: str  # unique within the study, e.g. "IE+TE r=0.6 | seed 0"
    attrs: dict = field(default_factory=dict)  # recorded on its trials (e.g. row, seed)
    wave: int = 0  # cells of a lower wave are claimed first (a table's seeds: every row once before any twice)
    kind: str | None = None  # cells of one kind cost about the same (a table's row); None: the cell is its own kind

    @property
    def timed_as(self) -> str:
        """The name its durations are kept under (runner.claim_order): its kind, else its key."""
        return self.key if self.kind is None else self.kind


class Plan(Protocol):
    study_name: str
    journal: str  # stem of the default journal file

    def cells(self) -> list[Cell]: ...

    def run_cell(self, cell: Cell, train: Callable) -> tuple[float, dict]:
        """Train the cell's configs through `train(cfg)`; return the trial's value and user attrs."""

    def run_name(self, cell: Cell, cfg: RunConfig) -> str:
        """The name of the cell's training of `cfg` in the MLflow UI."""

    def describe(self) -> dict:
        """Parameters of the study for its parent MLflow run ("table": the table's name, for a table's plan)."""

    def to_json(self) -> dict:
        """Arguments of `from_json` that re-create the plan in a worker process."""


class CellFailed(RuntimeError):
    """A training of the cell ended FAILED."""


class CellDiverged(CellFailed):
    """A training of the cell diverged: a result, not retried within the invocation. On the CPU its retry
    would draw the same numbers and diverge again; on a GPU (cuDNN's timed choice of algorithms, kernels
    whose backward is not deterministic) it might not, and retrying until one passes would report the
    survivors only."""


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


def visible_devices() -> list[str]:
    """The devices this machine can give a worker: every GPU torch sees (in its numbering), then cpu."""
    import torch

    gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return [*gpus, "cpu"]


def check_devices(devices: list[str] | None) -> list[str]:
    """`devices` (--devices) checked against visible_devices(); None: every visible GPU, else cpu."""
    visible = visible_devices()
    if devices is None:
        return visible[:-1] or ["cpu"]
    if not devices:
        raise ConfigError(f"--devices: no device given; expected some of {', '.join(visible)}, comma-separated")
    for device in devices:
        if device not in visible:
            raise ConfigError(f"--devices: {device!r} is not a visible device (visible: {', '.join(visible)})")
    if len(set(devices)) != len(devices):
        raise ConfigError(f"--devices: {','.join(devices)} names a device twice; --workers N runs several workers per device")
    return list(devices)


def assign_devices(devices: list[str], workers: int) -> list[str]:
    """Worker i's device: round-robin over `devices`, so more workers than devices share them."""
    return [devices[i % len(devices)] for i in range(workers)]


def worker_env(device: str, threads: str, env: dict) -> dict:
    """A worker process's environment: `threads` OMP threads, and only its own GPU visible (none for cpu)."""
    if device == "cpu":
        visible = ""
    else:
        index = int(device.removeprefix("cuda:"))
        # torch's cuda:N is the N-th entry of the parent's own CUDA_VISIBLE_DEVICES, when it has one.
        parent = env.get("CUDA_VISIBLE_DEVICES")
        visible = parent.split(",")[index].strip() if parent else str(index)
    return {**env, "OMP_NUM_THREADS": threads, "CUDA_VISIBLE_DEVICES": visible, DEVICE_ENV: device}


def worker_device() -> str:
    """This worker's device: the one its parent assigned, else what device_for_training() picks here."""
    return os.environ.get(DEVICE_ENV) or visible_devices()[0]


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
    """Mark a trial FAIL; kind "error" (its training failed), "diverged" (its training diverged: no
    retry in this invocation), "lost" (its worker died) or "superseded" (a left-over claim of a cell
    already done or taken: not an attempt)."""
    try:
        session.storage.set_trial_user_attr(trial_id, "failure_kind", kind)
        session.storage.set_trial_user_attr(trial_id, "failure", reason[-2000:])
        session.storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        pass  # its worker finished it meanwhile


def _pending(session: Session, trials: list, attempts: int) -> list[Cell]:
    taken = {t.user_attrs.get("cell") for t in trials if t.state in (TrialState.COMPLETE, TrialState.RUNNING)}
    ours = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get("invocation") == session.invocation]
    failed = Counter(t.user_attrs.get("cell") for t in ours if t.user_attrs.get("failure_kind") != "superseded")
    diverged = {t.user_attrs.get("cell") for t in ours if t.user_attrs.get("failure_kind") == "diverged"}
    return [c for c in session.plan.cells() if c.key not in taken | diverged and failed[c.key] < attempts]


def claim_order(pending: list[Cell], durations: dict[str, list[float]]) -> list[Cell]:
    """The pending cells in the order they are claimed: by wave, and within one the longest first, so that the
    workers finish a study together (the last cells claimed are the short ones). A cell's cost is the mean of
    `durations[kind]` (seconds); kinds not yet timed come first, as they may be the longest; ties keep the plan's order."""

    def cost(cell: Cell) -> float:
        seconds = durations.get(cell.timed_as)
        return statistics.fmean(seconds) if seconds else math.inf

    return sorted(pending, key=lambda c: (c.wave, -cost(c)))


def _durations(cells: dict[str, Cell], invocation: str, trials: list) -> dict[str, list[float]]:
    """Per kind, the wall seconds of its cells finished in this invocation (a run reused from an earlier one
    takes no time, which says nothing of what training the kind costs)."""
    durations = {}
    for t in trials:
        cell = cells.get(t.user_attrs.get("cell"))
        if cell is not None and t.state == TrialState.COMPLETE and t.user_attrs.get("invocation") == invocation:
            durations.setdefault(cell.timed_as, []).append((t.datetime_complete - t.datetime_start).total_seconds())
    return durations


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
            pending = claim_order(_pending(session, trials, attempts), _durations(cells, session.invocation, trials))
            if not pending:
                return None
            # Under the lock no other worker is between enqueue and ask, so a WAITING trial is one a
            # worker enqueued before dying: pop it rather than leave it behind.
            if not any(t.state == TrialState.WAITING for t in trials):
                study.enqueue_trial({}, user_attrs={"cell": pending[0].key, **pending[0].attrs})
            trial = study.ask()
            key = trial.user_attrs.get("cell")
            if key in {c.key for c in pending}:
                record = {"worker": worker_identity(), "heartbeat": now, "invocation": session.invocation, "device": worker_device()}
                for name, value in record.items():
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


def _add_served(run_id: str, table: str, row: str) -> None:
    """Add the table and its row to the run's TABLES_TAG and ROWS_TAG (callers hold its config lock)."""
    store = client()
    tags = store.get_run(run_id).data.tags
    for key, value in ((TABLES_TAG, table), (ROWS_TAG, f"{table}:{row}")):
        listed = [x for x in tags.get(key, "").split(",") if x]
        if value not in listed:
            store.set_tag(run_id, key, ",".join(listed + [value]))


def _train_for(session: Session, trainer: Callable, trial: optuna.Trial, cell: Cell) -> Callable:
    """The `train(cfg)` a plan calls: one config at a time under its hash lock, named, tagged, recorded."""
    name = session.study.study_name
    table, row = session.plan.describe().get("table"), cell.attrs.get("row")  # None for a tune point: it serves no table

    def train(cfg):
        tags = {"study": name, "study_trial": str(trial.number), "study_cell": cell.key, "mlflow.runName": session.plan.run_name(cell, cfg)}
        if table and row:
            tags.update({TABLES_TAG: table, ROWS_TAG: f"{table}:{row}"})
        with session.locks.hold(f"config:{cfg.hash}"):
            result = trainer(cfg, parent_run_id=session.parent_run_id, extra_tags=tags)
            if table and row and result.status == "FINISHED":  # a reused run keeps the tables it already served
                _add_served(result.run_id, table, row)
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
            why = f"training of config {result.config_hash} ended {result.status} (MLflow run {result.run_id})"
            raise CellDiverged(f"{why}: {result.diverged}") if result.diverged else CellFailed(why)
        return result

    return train


def run_claimed(session: Session, trial: optuna.Trial, cell: Cell, trainer: Callable) -> None:
    """Run a claimed cell: COMPLETE with the plan's value and attrs, or FAIL with the reason."""
    name = session.study.study_name
    print(f"[{name}] trial {trial.number} on {worker_device()}: {cell.key}", file=sys.stderr)
    try:
        with _Heartbeat(session.storage, trial._trial_id):
            value, attrs = session.plan.run_cell(cell, _train_for(session, trainer, trial, cell))
    except Exception as err:
        if not isinstance(err, (ConfigError, DataError, ClipError, CellFailed)):  # their message says what to fix or what happened
            traceback.print_exc()
        diverged = isinstance(err, CellDiverged)
        _fail(session, trial._trial_id, "diverged" if diverged else "error", f"{type(err).__name__}: {err}")
        again = " (diverged: not retried in this invocation)" if diverged else ""
        print(f"[{name}] trial {trial.number} FAILED: {cell.key}: {err}{again}", file=sys.stderr)
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


def _settled(session: Session, attempts: int) -> bool:
    """No cell of the study is left to claim in this invocation, and none runs: its outcome is final."""
    trials = session.study.get_trials(deepcopy=False)
    return not _pending(session, trials, attempts) and not any(t.state == TrialState.RUNNING for t in trials)


def work(sessions: list[Session], trainer: Callable | None = None, attempts: int = ATTEMPTS, on_settled: Callable | None = None) -> None:
    """Claim and run cells, from the first study that has one pending, until no study has a cell
    pending or running elsewhere: waiting for the others means every worker ends with every study
    whole, and takes over a cell whose worker dies. `on_settled(session)` is called as each settles."""
    trainer = trainer or default_trainer()
    waiting = list(sessions)
    while waiting:
        claimed = next(((s, c) for s in waiting if (c := claim(s, attempts)) is not None), None)
        if claimed is not None:
            session, (trial, cell) = claimed
            run_claimed(session, trial, cell, trainer)
        for session in [s for s in waiting if _settled(s, attempts)]:
            waiting.remove(session)
            if on_settled is not None:
                on_settled(session)
        if claimed is None and waiting:
            time.sleep(POLL_S)


def missing_cells(session: Session) -> list[str]:
    done = {t.user_attrs.get("cell") for t in session.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    return [c.key for c in session.plan.cells() if c.key not in done]


def _latest_attempts(session: Session) -> dict:
    """Per cell its latest trial, a COMPLETE one over any other; a left-over "superseded" claim is no attempt."""
    latest = {}
    for t in session.study.get_trials(deepcopy=False):  # in trial order: later trials win
        key = t.user_attrs.get("cell")
        if t.user_attrs.get("failure_kind") != "superseded" and (
            t.state == TrialState.COMPLETE or latest.get(key, t).state != TrialState.COMPLETE
        ):
            latest[key] = t
    return latest


def unfinished_cells(session: Session) -> dict[str, str]:
    """Each cell without a finished trial, with why: its latest attempt's failure kind ("diverged",
    "error", "lost"), "running" (another worker has it) or "not run"."""
    latest = _latest_attempts(session)
    why = {}
    for key in missing_cells(session):
        t = latest.get(key)
        why[key] = "not run" if t is None else "running" if t.state == TrialState.RUNNING else t.user_attrs.get("failure_kind", "error")
    return why


def _log_cells(session: Session) -> None:
    """CELLS_ARTIFACT on the parent run: per cell of the plan its attrs (row, seed), state and the
    training runs of its latest trial (a COMPLETE one if any), so that the study's runs are found
    from the parent as the runs find the parent by their tag mlflow.parentRunId."""
    latest = _latest_attempts(session)
    cells = []
    for cell in session.plan.cells():
        t = latest.get(cell.key)
        state = t.state.name if t is not None else "PENDING"
        cells.append({"cell": cell.key, **cell.attrs, "state": state, "runs": t.user_attrs.get("runs", []) if t is not None else []})
    client().log_dict(session.parent_run_id, {"study": session.study.study_name, "cells": cells}, CELLS_ARTIFACT)


def _close_parent(session: Session) -> None:
    """FINISHED when every cell is complete; FAILED when cells are missing and nobody runs one."""
    _log_cells(session)
    running = session.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not missing_cells(session):
        client().set_terminated(session.parent_run_id, "FINISHED")
    elif not running:
        client().set_terminated(session.parent_run_id, "FAILED")


def run_studies(
    plans: list[Plan],
    workers: int | None = None,
    storage: str | None = None,
    trainer: Callable | None = None,
    attempts: int = ATTEMPTS,
    devices: list[str] | None = None,
    on_settled: Callable | None = None,
) -> list[Session]:
    """Prepare every plan's study, then run `workers` workers over all their cells as one pool (see
    work()), spread over `devices` (check_devices; default workers: one per device on GPUs, else 1):
    in this process when one worker runs on the device it would pick anyway, else subprocesses on the
    same storage. As each study settles its parent MLflow run closes and `on_settled(session)` is
    called. Returns the sessions in the plans' order."""
    devices = check_devices(devices)
    workers = (len(devices) if any(d != "cpu" for d in devices) else 1) if workers is None else workers
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    invocation = uuid.uuid4().hex  # one for the pool: it counts each cell's failed attempts in this run
    sessions = [prepare(plan, storage, invocation) for plan in plans]
    for session in sessions:
        client().update_run(session.parent_run_id, status="RUNNING")
    waiting = list(sessions)

    def settle(session: Session) -> None:
        waiting.remove(session)
        _close_parent(session)
        if on_settled is not None:
            on_settled(session)

    assigned = assign_devices(devices, workers)
    if assigned == visible_devices()[:1]:
        work(sessions, trainer, attempts, settle)
    else:
        if trainer is not None:
            raise ValueError("a trainer function cannot be passed to worker processes: set $REPRO_TRAINER")
        payload = json.dumps(
            {"plans": [plan_to_json(p) for p in plans], "storage": storage, "invocation": invocation, "attempts": attempts}
        )
        # The machine's cores shared out, unless the user chose: workers at torch's default would each
        # start one thread per core and slow one another down.
        threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, len(os.sched_getaffinity(0)) // workers))
        procs = [
            subprocess.Popen([sys.executable, "-m", "repro.studies.runner", payload], env=worker_env(device, threads, dict(os.environ)))
            for device in assigned
        ]
        while any(p.poll() is None for p in procs):
            for session in [s for s in waiting if _settled(s, attempts)]:
                settle(session)
            time.sleep(POLL_S)
        codes = [p.returncode for p in procs]
        if any(codes):
            print(f"[{', '.join(p.study_name for p in plans)}] worker exit codes {codes}", file=sys.stderr)
    for session in list(waiting):  # the workers are gone: what is not settled now is final too
        settle(session)
    return sessions


def run_study(
    plan: Plan,
    workers: int | None = None,
    storage: str | None = None,
    trainer: Callable | None = None,
    attempts: int = ATTEMPTS,
    devices: list[str] | None = None,
) -> Session:
    """run_studies of one plan."""
    [session] = run_studies([plan], workers, storage, trainer, attempts, devices)
    return session


def _worker_main(payload: str) -> int:
    args = json.loads(payload)
    sessions = [prepare(plan_from_json(plan), args["storage"], args["invocation"]) for plan in args["plans"]]
    work(sessions, attempts=args["attempts"])
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1]))
