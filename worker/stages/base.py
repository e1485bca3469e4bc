"""What every stage shares: the protocol it implements, its typed result, the errors a
generation raises, and the generation's row and folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Protocol

from sqlalchemy.orm import Session

from core.actions import Conflict
from core.actions import NotFound
from core.schema import Generation
from worker.context import PipelineContext

# Called with the share of the stage done, 0 to 1; the runner writes it at most once a second.
Progress = Callable[[float], None]


class GenerationError(Conflict):
    """A generation cannot start or go on; the message says why and what to do."""


class GenerationBusy(GenerationError):
    """Another generation is queued or running."""

    code = "generation_running"


class GenerationNotFound(NotFound, GenerationError):
    """No generation has the id given."""


class StageResult(Protocol):
    """What a stage's run returns: its counts, as the generation's record keeps them."""

    def as_counts(self) -> dict[str, Any]:
        """The counts as JSON-ready values by name (shown by the dashboard, the API and
        ``replyguard generation show``, in this order)."""
        ...


@dataclass(frozen=True)
class Counts:
    """A stage's counts as a frozen dataclass: its fields, in order, are what it records."""

    def as_counts(self) -> dict[str, Any]:
        return asdict(self)


class Stage(Protocol):
    """One step of a generation (worker/pipeline.py runs them in order).

    ``run`` reads what it needs from the database and the generation's folder, writes its
    work in one transaction or one atomic file, and returns its counts; the runner records
    the stage started, done (with the counts and the seconds) or failed. A stage must be
    safe to run again from its beginning after a kill at any point.
    """

    @property
    def name(self) -> str:
        """The stage's name in the generation's record, the logs and the task names."""
        ...

    @property
    def label(self) -> str:
        """What the dashboard calls it."""
        ...

    def run(self, ctx: PipelineContext, generation_id: int, progress: Progress) -> StageResult:
        """Do the stage's work for the generation with id ``generation_id``.

        Raises whatever fails; the runner records the generation failed in this stage."""
        ...


def get_generation(session: Session, generation_id: int) -> Generation:
    """The generation's row; raises GenerationNotFound."""
    generation = session.get(Generation, generation_id)
    if generation is None:
        raise GenerationNotFound(f"no generation with id {generation_id}")
    return generation


def generation_dir(ctx: PipelineContext, generation_id: int) -> Path:
    """``<data folder>/generations/<id>``, created if needed: the generation's files (the
    training set, the encode stage's chunks, the stage lock), shared by every worker."""
    path = ctx.settings.data_dir / "generations" / str(generation_id)
    path.mkdir(parents=True, exist_ok=True)
    return path
