"""The one runtime object of a process: settings, the database and the encoder (loaded once,
on first use). A web process (webapp.state.Services.pipeline, also its Celery app's), a Celery
worker (worker.celery_app.pipeline_context) and the command line (webapp.cli.base.Context)
each hold one; every stage of a generation takes it."""

from __future__ import annotations

from collections.abc import Sequence

from core.db import Database
from models.adapter import Adapter
from models.catalogue import load_catalogue
from models.curation import load_curation
from models.encoder import Encoder
from models.selection import SelectionConfig
from models.suggester import ScoringWeights
from models.suggester import SuggestionModel
from models.training import TrainingConfig
from models.training import TrainingExample
from models.training import TrainingReport
from models.training import train_model
from worker.settings import Settings


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
            self._encoder = Encoder.from_config(
                self.settings.encoder, self.settings.embedding_cache
            )
        return self._encoder

    def train(
        self,
        examples: Sequence[TrainingExample],
        start: Adapter | None = None,
        weights: ScoringWeights | None = None,
        inherited: Sequence[str] = (),
    ) -> tuple[SuggestionModel, TrainingReport]:
        """Train a model with the settings' configuration, the team's current curation and
        the starter catalogue of intents (models.training.train_model says what goes in and
        out)."""
        with self.db.session() as session:
            curation = load_curation(session)
        return train_model(
            self.encoder,
            examples,
            self.training_config,
            curation,
            start=start,
            show_progress=self.show_progress,
            weights=weights,
            inherited=inherited,
            catalogue=load_catalogue(),
        )

    @property
    def training_config(self) -> TrainingConfig:
        """The settings' adapter, retrieval, response-set, coverage and seed for training."""
        settings = self.settings
        return TrainingConfig(
            adapter=settings.adapter,
            retrieval=settings.retrieval,
            response_set=settings.response_set,
            target_coverage=settings.triggering_target_coverage,
            selection=SelectionConfig(seed=settings.seed),
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
