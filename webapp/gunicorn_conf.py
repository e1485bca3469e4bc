"""gunicorn's configuration file for the web server (``--config``, webapp/launch.py).

- Metrics: every worker writes its counts to files in ``PROMETHEUS_MULTIPROC_DIR``
  (prometheus-client's multiprocess mode; webapp/metrics.py). The library chooses its mode
  when it is first imported, and gunicorn's master imports it with the worker class
  (``webapp.buffering`` imports the ``webapp`` package) before any server hook runs; so the
  folder is chosen and prepared when gunicorn reads this file, the one earlier moment. Unless
  the environment names a folder already, it is ``<data folder>/metrics/<host>-<master pid>``:
  one per running server, so that servers sharing a data folder (two on one machine,
  containers on one volume) never mix their files, and counts start at zero with the
  server, as Prometheus expects of a restarted target. The folders of servers that are no
  longer running on this host are deleted then. :func:`child_exit` drops an exited worker's
  live gauges; its counters stay counted.
- Logs: gunicorn's own lines (workers booting, timeouts) are JSON like the app's
  (core/logs.py).
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger

from core.logs import formatter
from core.metrics_files import MULTIPROC_VARIABLE
from core.metrics_files import prepare_metrics_folder
from core.settings import load_settings


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


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's master, after a worker exited: its counters stay (they were counted), its
    live gauges (the model it served) go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, os.environ[MULTIPROC_VARIABLE])


# Before gunicorn imports the worker class (see the module docstring).
prepare_metrics_folder(load_settings().data_dir)
