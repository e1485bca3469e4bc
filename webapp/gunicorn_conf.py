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
- Process-wide state of a web worker (thread pools, the collector) is set here, in
  :func:`post_worker_init`, once the worker has loaded the app; the app factory
  (webapp.create_app) leaves the process as it found it, so tests and scripts that build an
  app keep their own settings.
- Every process of the server (the master, each worker) puts itself on record as using the
  data folder (core/processes.py): restore refuses while any lives.
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
from core.processes import register
from core.settings import CoreSettings


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


def post_worker_init(worker: Any) -> None:
    """A web worker, after it loaded the app and before it takes requests: one thread for
    FAISS and for BLAS, everything loaded so far moved out of the collector's sight, and the
    production model checked on a timer."""
    import gc

    import faiss
    from threadpoolctl import threadpool_limits

    # FAISS's OpenMP threads cost more than they save on one small query at a time: with them
    # a suggestion spent 5-10 ms in thread start-up around a microsecond search (measured on
    # the demo model, 2 cores). Workers (Celery) keep the default for deduplication's big
    # searches.
    faiss.omp_set_num_threads(1)
    # The same for OpenBLAS (numpy, and FAISS above 20 queries): its threads spin while the
    # encoder's own threads run, and scoring a batch of 4 took 2.9 ms a message with them
    # against 0.6 ms without (bench/serving.py, demo model).
    threadpool_limits(1, user_api="blas")
    # The model, the encoder and SQLAlchemy's mappers live as long as the process: frozen,
    # they are no longer traversed by every full collection. Those pauses held the GIL for
    # about 200 ms and made the 99th percentile at 32 clients 267 ms instead of 99 ms
    # (bench/serving.py).
    gc.collect()
    gc.freeze()
    # Production is checked on a timer too, so an idle worker swaps models before its next
    # request (webapp/serving.py ModelHolder.watch); started here, after the fork.
    from webapp.state import EXTENSION

    worker.wsgi.extensions[EXTENSION].holder.watch()
    # Test-only fault injection (tests/test_run.py); nothing unless its variable is set.
    from worker.faults import arm_web_hang

    arm_web_hang(CoreSettings.load().data_dir)


def post_fork(server: Any, worker: Any) -> None:
    """A web worker, just forked: on record as using the data folder (core/processes.py), so
    that `replyguard restore` refuses while it lives, however its master ended."""
    from core.processes import register

    register(CoreSettings.load().data_dir, "gunicorn web worker")


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's master, after a worker exited: its counters stay (they were counted), its
    live gauges (the model it served) go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, os.environ[MULTIPROC_VARIABLE])


# Before gunicorn imports the worker class (see the module docstring).
prepare_metrics_folder(CoreSettings.load().data_dir)
# The master, on record as using the data folder for as long as it runs (core/processes.py).
register(CoreSettings.load().data_dir, "gunicorn master")
# The web encoder runs one thread per process (Encoder.from_config(serving=True)); the
# tokenizer's own thread pool would compete with the request threads. Read by the tokenizers
# library when it first tokenizes, so the workers forked from here inherit it.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
