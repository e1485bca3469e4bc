"""Where gunicorn's workers keep their metric files (prometheus-client's multiprocess mode).

Used by webapp/gunicorn_conf.py when gunicorn's master reads it, before any worker starts;
kept here, outside the ``webapp`` package, because importing that package imports
prometheus-client, which must not happen before ``PROMETHEUS_MULTIPROC_DIR`` is set.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

import psutil

__all__ = ["MULTIPROC_VARIABLE", "metrics_folder", "prepare_metrics_folder"]

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# The master process that prepared the folder (prepare_metrics_folder).
_PREPARED_BY = "REPLYGUARD_METRICS_PREPARED_BY"


def metrics_folder(data_dir: Path, pid: int) -> Path:
    """The metric files' folder of the server whose gunicorn master is process ``pid`` on this
    host: ``<data_dir>/metrics/<host>-<pid>``, one per running server, so that servers sharing
    a data folder (two on one machine, containers on one volume) never mix their files."""
    host = re.sub(r"[^A-Za-z0-9.-]+", "_", socket.gethostname())
    return data_dir.resolve() / "metrics" / f"{host}-{pid}"


def prepare_metrics_folder(data_dir: Path) -> Path:
    """Choose this server's folder for the workers' metric files, empty it, delete the folders
    of this host's servers that no longer run, and set ``PROMETHEUS_MULTIPROC_DIR``.

    ``PROMETHEUS_MULTIPROC_DIR``, when the environment sets it, is used as it is. Runs once
    per master process: gunicorn reads its configuration file again on a reload (SIGHUP),
    while the workers write to the folder.

    Args:
        data_dir: the data folder (``REPLYGUARD_DATA_DIR``).

    Returns:
        The folder, which exists (and held no metric file when this master prepared it).
    """
    if os.environ.get(_PREPARED_BY) == str(os.getpid()):
        return Path(os.environ[MULTIPROC_VARIABLE])
    chosen = os.environ.get(MULTIPROC_VARIABLE)
    folder = Path(chosen) if chosen else metrics_folder(data_dir, os.getpid())
    if not chosen:
        for other in folder.parent.glob(f"{folder.name.rpartition('-')[0]}-*"):
            pid = other.name.rpartition("-")[2]
            if other != folder and pid.isdigit() and not psutil.pid_exists(int(pid)):
                shutil.rmtree(other, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_VARIABLE] = str(folder)
    os.environ[_PREPARED_BY] = str(os.getpid())
    return folder
