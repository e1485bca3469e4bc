"""The Flask application: the JSON API for app clients and the product team."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask

from core.incoming import IncomingLog
from core.logs import configure_logging
from models.encoder import Encoder
from webapp.batching import MicroBatcher
from webapp.keycache import KeyCache
from webapp.serving import ModelHolder
from webapp.state import EXTENSION
from webapp.state import Services
from worker.celery_app import celery_init_app
from worker.celery_app import celery_settings
from worker.context import PipelineContext
from worker.settings import load_settings

__all__ = ["create_app"]


def create_app(
    overrides: Mapping[str, Any] | None = None, encoder: Encoder | None = None
) -> APIFlask:
    """Build the app from defaults, then ``REPLYGUARD_*`` variables, then ``overrides``.

    ``encoder`` lets a caller that already holds the encoder share it (tests, benchmarks).
    """
    settings = load_settings(overrides)
    app = APIFlask(
        "replyguard",
        title="ReplyGuard API",
        version="1",
        spec_path="/openapi.json",
        docs_path=None,
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["VALIDATION_ERROR_STATUS_CODE"] = 422
    app.config["AUTO_404_RESPONSE"] = False
    app.config["INFO"] = {
        "description": "Short reply suggestions from a model that is retrained offline and "
        "refuses to promote blander versions."
    }
    configure_logging(settings.log_level)

    encoder = encoder or Encoder.from_config(settings.encoder, serving=True)
    runtime = PipelineContext.from_settings(settings, encoder)
    db = runtime.db
    app.config["CELERY"] = celery_settings(settings)
    celery_init_app(app, runtime)
    holder = ModelHolder(db, encoder, settings.production_check_seconds)
    holder.refresh()
    services = Services(
        runtime,
        holder,
        IncomingLog(db, settings.incoming_retention),
        MicroBatcher(threads=settings.batch_threads),
        KeyCache(settings.key_cache_seconds),
    )
    app.extensions[EXTENSION] = services

    from webapp import api
    from webapp import bank
    from webapp import body
    from webapp import dashboard
    from webapp import errors
    from webapp import generations
    from webapp import health
    from webapp import intents
    from webapp import keys
    from webapp import limits
    from webapp import observe

    # First: its request hooks time and count everything the others do.
    observe.init_app(app)
    errors.init_app(app)
    limits.init_app(app, settings)
    body.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(bank.bp)
    app.register_blueprint(generations.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(intents.bp)
    app.register_blueprint(keys.bp)
    dashboard.init_app(app)
    # Thread pools and gc.freeze: set per web worker by webapp/gunicorn_conf.py.
    return app
