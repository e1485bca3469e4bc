"""The one runtime object of a process: settings, the database and the encoder (loaded once,
on first use). A web process (webapp.state.Services.pipeline, also its Celery app's), a Celery
worker (worker.celery_app.pipeline_context) and the command line (webapp.cli.base.Context)
each hold one; every stage of a generation takes it."""

from __future__ import annotations

from core.db import Database
from models.curation import load_curation
from models.encoder import Encoder
from models.intent_edits import load_overlay
from models.selection import SelectionConfig
from models.training import TrainingConfig
from worker.settings import Settings


class PipelineContext:
    """Args:
    settings: the service's settings.
    db: its database.
    encoder: an encoder to share; None loads one from the settings when a stage needs it
        (commands that only queue or inspect generations never load it).
    show_progress: progress lines on the console, each saying what it counts (the command
        line; core/progress.py); workers record progress in the database instead.
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
            self._encoder = Encoder.from_config(
                self.settings.encoder, self.settings.embedding_cache
            )
        return self._encoder

    def training_config(self) -> TrainingConfig:
        """How this service trains a model now: the settings' adapter, retrieval, response
        set, target coverage and seed, the team's current curation, and the catalogue of
        intents as reviewers left it (the starter catalogue with their edits:
        models.intent_edits). Read from the database at each call, so a training takes the
        curation and edits made up to its start."""
        settings = self.settings
        with self.db.session() as session:
            curation = load_curation(session)
            catalogue = load_overlay(session).catalogue()
        return TrainingConfig(
            adapter=settings.adapter,
            retrieval=settings.retrieval,
            response_set=settings.response_set,
            target_coverage=settings.triggering_target_coverage,
            selection=SelectionConfig(seed=settings.seed),
            curation=curation,
            catalogue=catalogue,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, encoder: Encoder | None = None, show_progress: bool = False
    ) -> PipelineContext:
        """The context of ``settings``, with its database opened and migrated to the newest
        schema (the constructor's arguments say the rest)."""
        db = Database(settings)
        db.upgrade()
        return cls(settings, db, encoder, show_progress)
