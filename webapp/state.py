"""What one web process holds: the runtime (settings, database, encoder), the served model
and the request path's helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from core.db import Database
from core.incoming import IncomingLog
from models.encoder import Encoder
from webapp.batching import MicroBatcher
from webapp.keycache import KeyCache
from webapp.serving import ModelHolder
from worker.context import PipelineContext
from worker.settings import Settings

EXTENSION = "replyguard"


@dataclass
class Services:
    """Args:
    pipeline: the process's one runtime object (worker.context.PipelineContext): settings,
        the database and the serving encoder; actions that queue generations take it.
    holder: the served model.
    incoming: the writer of incoming messages.
    batcher: the encoder passes shared by concurrent requests.
    keys: recently verified API keys.
    """

    pipeline: PipelineContext
    holder: ModelHolder
    incoming: IncomingLog
    batcher: MicroBatcher
    keys: KeyCache[Any]

    @property
    def settings(self) -> Settings:
        return self.pipeline.settings

    @property
    def db(self) -> Database:
        return self.pipeline.db

    @property
    def encoder(self) -> Encoder:
        return self.pipeline.encoder


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found
