"""What every stage shares: the protocol it implements, its typed result, and the
generation's folder. (The generation's row, and the errors a generation raises, are the
generation store's: core/generations.py.)"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Protocol

from worker.context import PipelineContext

# Called with the share of the stage done, 0 to 1; the runner writes it at most once a second.
Progress = Callable[[float], None]


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


def generation_dir(ctx: PipelineContext, generation_id: int) -> Path:
    """``<data folder>/generations/<id>``, created if needed: the generation's files (the
    training set, the encode stage's chunks, the stage lock), shared by every worker."""
    path = ctx.settings.data_dir / "generations" / str(generation_id)
    path.mkdir(parents=True, exist_ok=True)
    return path
