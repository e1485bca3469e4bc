"""What one web process holds: settings, database, encoder and the served model."""

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
    settings: Settings
    db: Database
    encoder: Encoder
    holder: ModelHolder
    incoming: IncomingLog
    batcher: MicroBatcher
    keys: KeyCache[Any]

    @property
    def pipeline(self) -> PipelineContext:
        return PipelineContext(self.settings, self.db, self.encoder)


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found
