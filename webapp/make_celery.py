"""The entry module of Celery's own commands (worker, beat, Flower):

    celery -A webapp.make_celery worker --pool=solo

It builds the Flask app, so every task runs inside its app context.
"""

from __future__ import annotations

from webapp import create_app
from worker.broker import ensure_broker

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
ensure_broker(celery_app, flask_app.extensions["replyguard"].settings)
