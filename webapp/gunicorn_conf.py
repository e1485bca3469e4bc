"""gunicorn's configuration file for the web server (``--config``, webapp/launch.py).

gunicorn's master process reads it before it starts any worker, so it imports nothing heavy:
not the ``webapp`` package (the encoder, FAISS, Celery), only core.logs and core.settings.

- Metrics: every worker writes its counts to files in ``PROMETHEUS_MULTIPROC_DIR``
  (prometheus-client's multiprocess mode; webapp/metrics.py), which :func:`on_starting` sets
  before any worker is forked, so that every worker imports the library in that mode. Unless
  the environment names a folder already, it is ``<data folder>/metrics/<host>-<bind>``: one
  per server, so that servers sharing a data folder (containers on one volume) never mix
  their files. It is emptied at start (counts start at zero with the server, as Prometheus
  expects of a restarted target), and :func:`child_exit` drops an exited worker's live gauges.
- Logs: gunicorn's own lines (workers booting, timeouts) are JSON like the app's
  (core/logs.py).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger

from core.logs import formatter
from core.settings import load_settings

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class JsonLogger(Logger):
    """gunicorn's own logger (workers booting, timeouts, and with ``--access-log`` every
    request), writing JSON lines like the rest of the service. gunicorn still decides what it
    logs and where; only the format changes, on every (re)configuration."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter())


logger_class = JsonLogger


def metrics_folder(data_dir: Path, bind: list[str]) -> Path:
    """This server's folder for the workers' metric files (see the module docstring).

    Args:
        data_dir: the data folder (``REPLYGUARD_DATA_DIR``).
        bind: gunicorn's addresses (``["127.0.0.1:8000"]``).
    """
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", "-".join([socket.gethostname(), *bind]))
    return data_dir.resolve() / "metrics" / name


def on_starting(server: Any) -> None:
    """gunicorn's master, before it forks a worker: choose and empty the metrics folder."""
    folder = Path(
        os.environ.get(MULTIPROC_VARIABLE)
        or metrics_folder(load_settings().data_dir, list(server.cfg.bind))
    )
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_VARIABLE] = str(folder)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's master, after a worker exited: its counters stay (they were counted), its
    live gauges (the model it served) go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, os.environ[MULTIPROC_VARIABLE])
