"""Mutual exclusion between study workers, and whether a worker is still alive.

Two named locks are used (see runner.py): "setup" around creating the stores and the study, and
per study around claiming a cell; and one per config hash around training it, so that two cells
of different tables sharing a config never train it at once (the second waits, then reuses it).

- Workers on one machine (journal-file or SQLite storage): fcntl.flock on mlruns/locks/<name>.lock.
  The kernel drops the lock when its holder dies, kill -9 included.
- Workers on several machines (`--storage postgresql://...`): PostgreSQL session advisory locks on
  the study's own database, each on a connection of its own; the server drops them when the
  connection closes, which it does when the holder dies.

Liveness of a RUNNING trial's worker: on the same host, the worker's pid must exist, not be a
zombie, and have the recorded start time (so a reused pid does not count); on another host, its
heartbeat (a trial user attr refreshed every HEARTBEAT_S) must be younger than STALE_AFTER_S,
which assumes the hosts' clocks agree to well within that.
"""

import fcntl
import hashlib
import os
import re
import socket
from contextlib import contextmanager
from pathlib import Path

HEARTBEAT_S = 30.0
STALE_AFTER_S = 180.0


class FileLocks:
    def __init__(self, root: Path):
        self.root = Path(root)

    @contextmanager
    def hold(self, name: str):
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock


class PostgresLocks:
    def __init__(self, url: str):
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        # NullPool: closing a connection really closes it, so no advisory lock outlives its block.
        self.engine = sqlalchemy.create_engine(url, poolclass=NullPool)

    @contextmanager
    def hold(self, name: str):
        from sqlalchemy import text

        key = int.from_bytes(hashlib.sha256(f"repro:{name}".encode()).digest()[:8], "big", signed=True)
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            conn.commit()  # the lock belongs to the session, not to a transaction
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL without a driver gets psycopg2, the suite's dependency (SQLAlchemy 2.1
    would pick psycopg 3); "postgres://" (Heroku-style) is accepted too. Others pass unchanged."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


def is_postgres(url: str | None) -> bool:
    return bool(url) and url.startswith(("postgresql", "postgres:"))


def locks_for(storage_url: str | None, mlruns: Path):
    """Advisory locks for a PostgreSQL study storage, file locks under mlruns/locks/ otherwise."""
    if is_postgres(storage_url):
        return PostgresLocks(sqlalchemy_url(storage_url))
    return FileLocks(mlruns / "locks")


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a live process, from /proc (Linux)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and ")"
    return fields[0], fields[19]


def worker_identity() -> dict:
    stat = _proc_stat(os.getpid())
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": stat[1] if stat else None}


def is_alive(worker: dict | None, heartbeat: float | None, now: float) -> bool:
    """Whether the worker that claimed a trial may still be running it (see the module docstring)."""
    if not worker:
        return False  # claimed by something that never said who it is: its claim cannot be checked
    if worker.get("host") != socket.gethostname():
        return heartbeat is not None and now - float(heartbeat) < STALE_AFTER_S
    if not Path("/proc/self/stat").exists():  # not Linux: whether the pid exists is all we can tell
        return _pid_exists(int(worker["pid"]))
    stat = _proc_stat(int(worker["pid"]))
    if stat is None:
        return False
    state, start = stat
    return state not in ("Z", "X") and worker.get("start") in (None, start)  # a zombie has died


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
