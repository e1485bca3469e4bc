"""The processes of the service that are using a data folder, each one on record.

Every long-running process of ReplyGuard (each gunicorn master and web worker, each Celery
worker, beat and Flower, and `replyguard run`) calls :func:`register` when it starts: it
creates ``<data folder>/processes/<host>-<pid>.lock``, takes an exclusive ``flock`` on it
for as long as it lives, and writes what it is into it. The kernel lets go of the lock
however the process ends (SIGKILL included), so "its file is locked" means "it is alive",
on this machine or any other sharing the folder (as the stage lock, worker/pipeline.py).
:func:`live_processes` lists them; restore refuses while any is alive (core/backup.py).

A forked child (a gunicorn worker) shares its parent's locked file, and registers itself too.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LiveProcess", "describe", "live_processes", "register"]

FOLDER = "processes"
# A file that cannot be locked but holds no description yet was just created by a process
# that is about to lock it; one older than this with nothing locking it is left over.
STALE_AFTER_SECONDS = 60.0

# This process's open, locked record per data folder: closing it would let go of the lock.
_held: dict[str, int] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class LiveProcess:
    """A process that holds its record: what it is (``kind``: "gunicorn web worker",
    "celery worker", "replyguard run"...), its ``pid`` on ``host``, and when it started."""

    kind: str
    pid: int
    host: str
    started_at: str

    def __str__(self) -> str:
        return f"{self.kind} (pid {self.pid} on {self.host}, since {self.started_at})"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", socket.gethostname())


def _kind() -> str:
    """What this process is, from its command line: "celery worker", "celery beat",
    "replyguard run"... (the processes of the service are started by a few commands only,
    webapp/launch.py; gunicorn's processes name themselves, webapp/gunicorn_conf.py)."""
    program = Path(sys.argv[0]).name if sys.argv else "python"
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    if program == "celery":
        for sub in ("worker", "beat", "flower"):
            if sub in args:
                return f"celery {sub}"
    if program == "replyguard" and args:
        return f"replyguard {args[0]}"
    return program


def register(data_dir: Path, kind: str | None = None) -> Path:
    """Put this process on record as using ``data_dir`` for as long as it lives; return its
    record's path. Idempotent per process and data folder.

    Args:
        data_dir: the data folder (``REPLYGUARD_DATA_DIR``).
        kind: what the process is; by default from its command line.

    Raises:
        OSError: the data folder is not writable.
    """
    key = f"{data_dir.resolve()}:{os.getpid()}"
    with _lock:
        if key in _held:
            return _path(data_dir, os.getpid())
        what = kind or _kind()
        folder = data_dir.resolve() / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        path = _path(data_dir, os.getpid())
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        # Our own pid's file: nobody else locks it but a process that died with this pid.
        fcntl.flock(fd, fcntl.LOCK_EX)
        record = {
            "kind": what,
            "pid": os.getpid(),
            "host": _host(),
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "argv": sys.argv[:8],
        }
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(record).encode())
        _held[key] = fd
    return path


def _path(data_dir: Path, pid: int) -> Path:
    return data_dir.resolve() / FOLDER / f"{_host()}-{pid}.lock"


def live_processes(data_dir: Path) -> list[LiveProcess]:
    """The processes other than this one that hold their record in ``data_dir``, oldest
    first. Records left by processes that ended are removed on the way."""
    folder = data_dir.resolve() / FOLDER
    if not folder.is_dir():
        return []
    mine = {_path(data_dir, os.getpid())}
    found: list[LiveProcess] = []
    for path in sorted(folder.glob("*.lock")):
        if path in mine:
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                found.append(_read(path))
                continue
            # Nobody holds it: its process ended. (A file just created, not yet locked by its
            # process, is young: left alone.)
            if time.time() - path.stat().st_mtime > STALE_AFTER_SECONDS:
                path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return sorted(found, key=lambda p: p.started_at)


def _read(path: Path) -> LiveProcess:
    try:
        record = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        record = {}
    host, _, pid = path.stem.rpartition("-")
    return LiveProcess(
        kind=str(record.get("kind", "a process")),
        pid=int(record.get("pid", pid if pid.isdigit() else 0)),
        host=str(record.get("host", host)),
        started_at=str(record.get("started_at", "?")),
    )


def describe(processes: list[LiveProcess]) -> str:
    """The processes, for a message: "gunicorn master (pid 12 on h, since ...); ..."."""
    return "; ".join(str(p) for p in processes)
