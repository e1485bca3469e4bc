"""Stage 6, mix: accumulate, never replace. Every human example plus capped model-influenced
ones, tail-weighted, become the training set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from core.generations import GenerationError
from core.provenance import Provenance
from core.references import ExampleRef
from core.reservoir import member_ids
from core.schema import CandidateStatus
from core.schema import ReservoirRole
from core.schema import SyntheticCandidate
from safeguards.mixing import MixCounts
from safeguards.mixing import mix_training_set
from worker.data import Row
from worker.stages.base import GenerationRun
from worker.stages.records import TrainingItem
from worker.stages.records import TrainingRow
from worker.stages.records import write_training_set


@dataclass(frozen=True)
class MixStageCounts:
    """The mix's own counts (safeguards.mixing.MixCounts) and the anchor examples, every one
    of which is in the training set."""

    mix: MixCounts
    anchor: int

    def as_counts(self) -> dict[str, Any]:
        return {**self.mix.as_dict(), "anchor": self.anchor}


class MixStage:
    name = "mix"
    label = "Mixing with human data"

    def run(self, run: GenerationRun) -> MixStageCounts:
        """Write the training set: every human example up to the watermark, then the
        model-influenced ones (feedback, earlier synthetic examples, this generation's kept
        replies) within the cap. Raises GenerationError when an anchor example is missing
        from it (the reservoir's promise; a mixing change that breaks it must not train
        silently)."""
        pools, watermark, settings = run.examples(), run.snapshot.watermark, run.ctx.settings
        with run.ctx.db.session() as session:
            anchor = member_ids(session, ReservoirRole.ANCHOR)
            kept = session.execute(
                select(
                    SyntheticCandidate.id,
                    SyntheticCandidate.message,
                    SyntheticCandidate.reply,
                    SyntheticCandidate.niche,
                )
                .where(
                    SyntheticCandidate.generation_id == run.generation_id,
                    SyntheticCandidate.status == CandidateStatus.KEPT.value,
                )
                .order_by(SyntheticCandidate.id)
            ).all()
        synthetic = stored_rows(pools.synthetic) + [
            TrainingRow(ExampleRef.candidate(i), m, r, n, Provenance.SYNTHETIC)
            for i, m, r, n in kept
        ]
        result = mix_training_set(
            stored_rows(pools.human),
            stored_rows(pools.human_selected),
            synthetic,
            synthetic_cap=settings.synthetic_cap,
            seed=settings.seed,
        )
        items = [
            TrainingItem(row.ref, float(weight))
            for row, weight in zip(result.examples, result.weights, strict=True)
        ]
        trained = {item.ref for item in items}
        missing = [i for i in anchor if i <= watermark and ExampleRef.example(i) not in trained]
        if missing:
            raise GenerationError(f"{len(missing)} anchor example(s) left out of the training set")
        write_training_set(run.folder, items)
        return MixStageCounts(result.counts, len(anchor))


def stored_rows(rows: Sequence[Row]) -> list[TrainingRow]:
    """Stored examples as training rows."""
    return [
        TrainingRow(
            ExampleRef.example(r.id), r.message, r.reply, r.niche, r.provenance, r.conversation
        )
        for r in rows
    ]
