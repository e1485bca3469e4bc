"""Stage 5, deduplicate: near-duplicates among the synthetic replies, and of the examples
stored up to the snapshot's watermark, are removed."""

from __future__ import annotations

from dataclasses import dataclass

from core.references import ExampleRef
from core.schema import CandidateStatus
from core.schema import SyntheticCandidate
from safeguards.dedup import deduplicate
from worker.stages.base import Counts
from worker.stages.base import GenerationRun
from worker.stages.encode import precomputed
from worker.stages.staging import reset
from worker.stages.staging import staged


@dataclass(frozen=True)
class DeduplicateCounts(Counts):
    checked: int
    kept: int
    # Removed replies by what they duplicate (safeguards.dedup).
    removed: dict[str, int]


class DeduplicateStage:
    name = "deduplicate"
    label = "Duplicate removal"

    def run(self, run: GenerationRun) -> DeduplicateCounts:
        """Remove near-duplicates among the synthetic replies and of the examples stored up
        to the snapshot's watermark (what the generation trains with).

        Its input is every reply the quality rules kept, whatever an interrupted run of this
        stage marked: a rerun decides and counts them all again."""
        with run.ctx.db.session() as session:
            rows = staged(session, run.generation_id, passed_filter=True)
        result = deduplicate(
            rows,
            run.examples().stored,
            precomputed(run.ctx, run.generation_id),
            run.ctx.settings.dedup,
        )
        with run.ctx.db.session() as session:
            reset(session, rows)
            for duplicate in result.removed:
                row = session.get_one(SyntheticCandidate, rows[duplicate.index].id)
                row.status = CandidateStatus.REMOVED.value
                row.removed_by = "duplicate"
                original = (
                    ExampleRef.example(duplicate.duplicate_of)
                    if duplicate.against == "stored"
                    else ExampleRef.candidate(rows[duplicate.duplicate_of].id)
                )
                row.duplicate_of = str(original)
                row.similarity = float(duplicate.similarity)
            for kept in result.kept:
                session.get_one(SyntheticCandidate, kept.id).status = CandidateStatus.KEPT.value
        return DeduplicateCounts(checked=len(rows), kept=len(result.kept), removed=result.counts)
