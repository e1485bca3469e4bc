"""What every stage needs: settings, the database and the encoder (loaded once per process)."""

from __future__ import annotations

from dataclasses import dataclass

from core.db import Database
from core.settings import Settings
from models.encoder import Encoder


@dataclass
class PipelineContext:
    settings: Settings
    db: Database
    encoder: Encoder
    # Shows tqdm progress bars (the CLI); workers record progress in the database instead.
    show_progress: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, encoder: Encoder | None = None) -> PipelineContext:
        db = Database(settings)
        db.upgrade()
        return cls(settings, db, encoder or Encoder.from_settings(settings))
