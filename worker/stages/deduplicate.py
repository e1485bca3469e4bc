"""Stage 5, deduplicate: near-duplicates among the synthetic replies, and of the examples
stored up to the snapshot's watermark, are removed."""

from __future__ import annotations

from dataclasses import dataclass

from core.generations import get_generation
from core.references import ExampleRef
from core.schema import CandidateStatus
from core.schema import SyntheticCandidate
from safeguards.dedup import deduplicate
from worker.context import PipelineContext
from worker.data import example_pools
from worker.faults import fault_point
from worker.stages.base import Counts
from worker.stages.base import Progress
from worker.stages.encode import precomputed
from worker.stages.records import read_snapshot
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

    def run(
        self, ctx: PipelineContext, generation_id: int, progress: Progress
    ) -> DeduplicateCounts:
        """Remove near-duplicates among the synthetic replies and of the examples stored up
        to the snapshot's watermark (what the generation trains with).

        Its input is every reply the quality rules kept, whatever an interrupted run of this
        stage marked: a rerun decides and counts them all again."""
        with ctx.db.session() as session:
            watermark = read_snapshot(get_generation(session, generation_id)).watermark
            rows = staged(session, generation_id, passed_filter=True)
            pools = example_pools(session, watermark)
        result = deduplicate(
            rows,
            pools.stored,
            precomputed(ctx, generation_id),
            ctx.settings.dedup,
        )
        with ctx.db.session() as session:
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
        fault_point(ctx.settings.data_dir, self.name)
        return DeduplicateCounts(checked=len(rows), kept=len(result.kept), removed=result.counts)
