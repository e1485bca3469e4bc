"""Stage 4, filter: the quality rules remove synthetic replies that break them (empty,
echoing the message, too short or long, unrelated to the message)."""

from __future__ import annotations

from dataclasses import dataclass

from core.schema import CandidateStatus
from core.schema import SyntheticCandidate
from safeguards.quality import default_rules
from safeguards.quality import filter_examples
from worker.stages.base import Counts
from worker.stages.base import GenerationRun
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

    def run(self, run: GenerationRun) -> FilterCounts:
        """Remove synthetic replies that break a quality rule (each rule counted apart).

        Its input is every reply the generation staged, whatever an interrupted run of this
        stage marked: a rerun judges and counts them all again."""
        with run.ctx.db.session() as session:
            rows = staged(session, run.generation_id)
        rules = default_rules(run.ctx.settings.quality, precomputed(run.ctx, run.generation_id))
        result = filter_examples(rows, rules)
        removed = {rejected.example.id: rejected.rule for rejected in result.removed}
        with run.ctx.db.session() as session:
            reset(session, rows)
            for row_id, rule in removed.items():
                row = session.get_one(SyntheticCandidate, row_id)
                row.status = CandidateStatus.REMOVED.value
                row.removed_by = rule
        return FilterCounts(checked=len(rows), kept=result.kept_count, removed=result.counts)
