"""Stage 7, train: the candidate, trained from production's weights on the mixed set, and
registered with its artifact."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.generations import get_generation
from core.schema import ModelStatus
from core.schema import ModelVersion
from models.registry import get_version
from models.registry import register
from models.training import Inherited
from models.training import train_model
from models.training import training_metadata
from worker.stages.base import Counts
from worker.stages.base import GenerationRun
from worker.stages.records import read_training_set
from worker.stages.records import resolve


@dataclass(frozen=True)
class TrainCounts(Counts):
    examples: int
    bank_size: int
    candidate: str
    # Replies the response set's rules left out, by rule (models.response_set).
    response_set_removed: dict[str, int]
    triggering_threshold: float


class TrainStage:
    name = "train"
    label = "Training the candidate"

    def run(self, run: GenerationRun) -> TrainCounts:
        """Train the candidate from production's weights on the mixed set; write its
        artifact and record it on the generation, in one transaction that also marks the
        candidate of an interrupted run of this stage failed."""
        ctx, generation_id = run.ctx, run.generation_id
        training_set = read_training_set(run.folder)
        with ctx.db.session() as session:
            rows = resolve(session, [item.ref for item in training_set])
        parent_model = run.parent_model()
        examples = [
            row.for_training(item.weight) for row, item in zip(rows, training_set, strict=True)
        ]
        model, report = train_model(
            ctx.encoder,
            examples,
            config=ctx.training_config(),
            inherited=Inherited.of(parent_model),
            show_progress=ctx.show_progress,
        )
        metadata = training_metadata(examples, report, generation_id=generation_id)

        version = register(
            ctx.db,
            ctx.settings,
            model,
            run.number,
            run.parent_version,
            metadata,
            record_candidate(generation_id),
        )
        return TrainCounts(
            examples=len(examples),
            bank_size=report.bank_size,
            candidate=version.version,
            response_set_removed=report.response_set.removed,
            triggering_threshold=report.triggering.threshold,
        )


def record_candidate(generation_id: int) -> Callable[[Session, ModelVersion], None]:
    """What models.registry.register runs in the transaction that makes a new version a
    candidate: the version becomes the candidate of generation ``generation_id``, and the
    candidate of a run of the train stage that was killed before it recorded itself done is
    marked failed (superseded: the registry refuses to promote a failed version)."""

    def record(session: Session, version: ModelVersion) -> None:
        generation = get_generation(session, generation_id)
        if generation.candidate_version is not None:
            get_version(session, generation.candidate_version).status = ModelStatus.FAILED.value
        generation.candidate_version = version.version

    return record
