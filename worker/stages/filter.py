"""Stage 4, filter: the quality rules remove synthetic replies that break them (empty,
echoing the message, too short or long, unrelated to the message)."""

from __future__ import annotations

from dataclasses import dataclass

from core.schema import CandidateStatus
from core.schema import SyntheticCandidate
from safeguards.quality import default_rules
from safeguards.quality import filter_examples
from worker.context import PipelineContext
from worker.faults import fault_point
from worker.stages.base import Counts
from worker.stages.base import Progress
from worker.stages.encode import precomputed
from worker.stages.staging import reset
from worker.stages.staging import staged


@dataclass(frozen=True)
class FilterCounts(Counts):
    checked: int
    kept: int
    # Removed replies by rule name (safeguards.quality).
    removed: dict[str, int]


class FilterStage:
    name = "filter"
    label = "Quality rules"

    def run(self, ctx: PipelineContext, generation_id: int, progress: Progress) -> FilterCounts:
        """Remove synthetic replies that break a quality rule (each rule counted apart).

        Its input is every reply the generation staged, whatever an interrupted run of this
        stage marked: a rerun judges and counts them all again."""
        with ctx.db.session() as session:
            rows = staged(session, generation_id)
        rules = default_rules(ctx.settings.quality, precomputed(ctx, generation_id))
        result = filter_examples(rows, rules)
        removed = {rejected.example.id: rejected.rule for rejected in result.removed}
        with ctx.db.session() as session:
            reset(session, rows)
            for row_id, rule in removed.items():
                row = session.get_one(SyntheticCandidate, row_id)
                row.status = CandidateStatus.REMOVED.value
                row.removed_by = rule
        fault_point(ctx.settings.data_dir, self.name)
        return FilterCounts(checked=len(rows), kept=result.kept_count, removed=result.counts)
