"""What every stage shares: the protocol it implements, what it is handed
(:class:`GenerationRun`), its typed result, and the generation's folder. (The generation's
row, and the errors a generation raises, are the generation store's: core/generations.py.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Protocol

from sqlalchemy.orm import Session

from core.generations import GenerationError
from core.generations import finish_run
from core.generations import get_generation
from core.generations import stage_run
from core.schema import Generation
from core.schema import GenerationStage
from core.schema import StageStatus
from models.artifact import load_model
from models.registry import artifact_dir
from models.registry import get_version
from models.suggester import SuggestionModel
from worker.context import PipelineContext
from worker.data import ExamplePools
from worker.data import example_pools
from worker.faults import fault_point
from worker.stages.records import Snapshot
from worker.stages.records import snapshot_of

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


@dataclass
class GenerationRun:
    """One run of one stage of a generation: what the runner (worker/pipeline.py) read for it
    in the transaction that recorded the stage started, and hands to :meth:`Stage.run`.

    Args:
        ctx: the process's settings, database and encoder.
        generation_id: the generation's id.
        stage: the stage's name.
        attempt: this run's attempt at the stage (1, 2, ...).
        number: the generation's number.
        parent_version: production when the snapshot was taken (None before it).
        candidate_version: the candidate, once the train stage recorded it.
        frozen: what the snapshot stage froze (None before it ran; :attr:`snapshot`).
        progress: the stage reports the share it has done through it.
        pools: the examples read so far, by watermark; the runner shares it between the
            stages it runs in one process, since the examples up to a watermark do not change
            while a generation runs (examples are never edited, and the reservoir is not
            rebuilt under a running generation: core/reservoir.py).
    """

    ctx: PipelineContext
    generation_id: int
    stage: str
    attempt: int
    number: int
    parent_version: str | None
    candidate_version: str | None
    frozen: Snapshot | None
    progress: Progress
    pools: dict[int, ExamplePools] = field(default_factory=dict)
    # Set by :meth:`record_done`: the runner then only logs the stage's end.
    recorded: bool = False

    @classmethod
    def of(
        cls,
        ctx: PipelineContext,
        generation: Generation,
        stage: str,
        attempt: int,
        progress: Progress,
        pools: dict[int, ExamplePools] | None = None,
    ) -> GenerationRun:
        """The run of ``stage`` of ``generation``, a row read in the caller's session."""
        return cls(
            ctx,
            generation.id,
            stage,
            attempt,
            generation.number,
            generation.parent_version,
            generation.candidate_version,
            snapshot_of(generation),
            progress,
            {} if pools is None else pools,
        )

    @property
    def folder(self) -> Path:
        """The generation's folder (:func:`generation_dir`)."""
        return generation_dir(self.ctx, self.generation_id)

    @property
    def snapshot(self) -> Snapshot:
        """What the snapshot stage froze; raises GenerationError before it ran."""
        if self.frozen is None:
            raise GenerationError(f"generation {self.number} has no snapshot yet")
        return self.frozen

    def parent_model(self) -> SuggestionModel:
        """The parent (production when the snapshot was taken), loaded from its artifact.

        Raises GenerationError before the snapshot, and models.registry's and
        models.artifact's errors (an unknown version, an artifact that cannot be loaded)."""
        with self.ctx.db.session() as session:
            row = get_version(session, self.parent_version or "")
            path, checksum = artifact_dir(self.ctx.settings, row), row.checksum
        model, _ = load_model(path, self.ctx.encoder, checksum)
        return model

    def examples(self, watermark: int | None = None) -> ExamplePools:
        """The stored examples up to ``watermark`` (default: the snapshot's), read once.

        Raises GenerationError without a watermark before the snapshot ran."""
        up_to = self.snapshot.watermark if watermark is None else watermark
        if up_to not in self.pools:
            with self.ctx.db.session() as session:
                self.pools[up_to] = example_pools(session, up_to)
        return self.pools[up_to]

    def generation(self, session: Session) -> Generation:
        """The generation's row in ``session``; raises GenerationNotFound."""
        return get_generation(session, self.generation_id)

    def record_done(self, session: Session, generation: Generation, result: StageResult) -> None:
        """For a stage that ends the generation (promote): record it done in the transaction
        that ends it, so no kill can leave a finished generation with its last stage still
        running. The fault point (worker/faults.py) is here, before that transaction
        commits; the runner then only logs the stage's end."""
        run = stage_run(generation, self.stage)
        started = run.started_at
        seconds = (dt.datetime.now(dt.UTC) - started).total_seconds() if started else 0.0
        finish_run(run, result.as_counts(), seconds)
        session.flush()
        fault_point(self.ctx.settings.data_dir, self.stage)
        self.recorded = True


class Stage(Protocol):
    """One step of a generation (worker/pipeline.py runs them in order).

    ``run`` reads what it needs from the database and the generation's folder, writes its
    work in one transaction or one atomic file, and returns its counts; the runner records
    the stage started, done (with the counts and the seconds) or failed, and passes the
    stage's fault point in between. A stage must be safe to run again from its beginning
    after a kill at any point.
    """

    @property
    def name(self) -> str:
        """The stage's name in the generation's record, the logs and the task names."""
        ...

    @property
    def label(self) -> str:
        """What the dashboard calls it."""
        ...

    def run(self, run: GenerationRun) -> StageResult:
        """Do the stage's work for the generation of ``run``.

        Raises whatever fails; the runner records the generation failed in this stage."""
        ...


def generation_dir(ctx: PipelineContext, generation_id: int) -> Path:
    """``<data folder>/generations/<id>``, created if needed: the generation's files (the
    training set, the encode stage's chunks, the stage lock), shared by every worker."""
    path = ctx.settings.data_dir / "generations" / str(generation_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


class Pipeline:
    """Stages in the order they run, each found by its name.

    Args:
        stages: the stages, in order; their names must differ.

    Raises:
        ValueError: two stages share a name.
    """

    def __init__(self, *stages: Stage) -> None:
        self.names = tuple(stage.name for stage in stages)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"stage names repeat: {self.names}")
        self._stages = {stage.name: stage for stage in stages}

    def __getitem__(self, name: str) -> Stage:
        return self._stages[name]

    def with_stages(self, *replacements: Stage) -> Pipeline:
        """The same order with each of ``replacements`` in the place of the stage of its
        name (the collapse experiment's policies). Raises KeyError for a name not in it."""
        swapped = dict(self._stages)
        for stage in replacements:
            if stage.name not in swapped:
                raise KeyError(f"no stage {stage.name!r} to replace in {self.names}")
            swapped[stage.name] = stage
        return Pipeline(*(swapped[name] for name in self.names))

    def next_stage(self, runs: Mapping[str, GenerationStage]) -> str | None:
        """The first stage that is not done, by the generation's stage rows; None when every
        stage is."""
        for name in self.names:
            run = runs.get(name)
            if run is None or run.status != StageStatus.DONE.value:
                return name
        return None
