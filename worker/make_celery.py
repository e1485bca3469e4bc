"""The entry module of Celery's own commands (worker, beat, Flower):

    celery -A worker.make_celery worker --pool=solo

It builds the worker's Flask app (``worker.celery_app.create_worker_app``: no web encoder,
model or routes), so every task runs inside its app context.
"""

from __future__ import annotations

from core.processes import register
from worker.broker import ensure_broker
from worker.celery_app import EXTENSION
from worker.celery_app import create_worker_app

flask_app = create_worker_app()
celery_app = flask_app.extensions["celery"]
ensure_broker(celery_app, flask_app.extensions[EXTENSION].settings)
# On record as using the data folder while the worker, beat or Flower runs (core/processes.py):
# `replyguard restore` refuses meanwhile.
register(flask_app.extensions[EXTENSION].settings.data_dir)
