"""What every stage needs: settings, the database and the encoder (loaded once, on first use)."""

from __future__ import annotations

from core.db import Database
from core.settings import Settings
from models.encoder import Encoder


class PipelineContext:
    """Args:
    settings: the service's settings.
    db: its database.
    encoder: an encoder to share; None loads one from the settings when a stage needs it
        (commands that only queue or inspect generations never load it).
    show_progress: tqdm progress bars (the command line); workers record progress in the
        database instead.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        encoder: Encoder | None = None,
        show_progress: bool = False,
    ) -> None:
        self.settings = settings
        self.db = db
        self._encoder = encoder
        self.show_progress = show_progress

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = Encoder.from_settings(self.settings)
        return self._encoder

    @classmethod
    def from_settings(cls, settings: Settings, encoder: Encoder | None = None) -> PipelineContext:
        db = Database(settings)
        db.upgrade()
        return cls(settings, db, encoder)
