"""Stage 10, promote: pass or warn promotes the candidate and keeps its synthetic rows;
block keeps production. The only stage that changes production."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from dataclasses import replace

from core.generations import finish_run
from core.generations import get_generation
from core.generations import stage_run
from models.registry import production
from safeguards.gate import Decision
from worker.context import PipelineContext
from worker.faults import fault_point
from worker.notify import when_generation_ends
from worker.promotion import accept_generation
from worker.promotion import block_generation
from worker.stages.base import Counts
from worker.stages.base import Progress


@dataclass(frozen=True)
class PromoteCounts(Counts):
    verdict: str
    # The version promoted, or None when the generation was blocked.
    promoted: str | None


@dataclass(frozen=True)
class PromotedCounts(PromoteCounts):
    synthetic_added: int


class PromoteStage:
    name = "promote"
    label = "Promote or block"

    def run(self, ctx: PipelineContext, generation_id: int, progress: Progress) -> PromoteCounts:
        """Pass or warn: promote the candidate and keep its synthetic rows, in one
        transaction. Block: production stays; the candidate and its synthetic rows wait for
        review. The same transaction ends the generation and records this stage done, so no
        kill can leave a finished generation with its last stage still running. A change of
        production while the generation ran blocks it (its comparison no longer holds)."""
        with ctx.db.session() as session:
            generation = get_generation(session, generation_id)
            when_generation_ends(session, ctx.settings, generation)
            decision = Decision.from_dict(generation.decision)
            current = production(session)
            if current is None or current.version != generation.parent_version:
                decision = _blocked_because(
                    decision,
                    f"production changed to {current.version if current else 'nothing'} "
                    f"while this generation ran (it was compared with "
                    f"{generation.parent_version})",
                )
                generation.decision = decision.to_dict()
            counts: PromoteCounts
            if decision.blocked:
                block_generation(session, generation)
                counts = PromoteCounts(verdict="block", promoted=None)
            else:
                added = accept_generation(
                    session, ctx.settings, generation, "gate", "; ".join(decision.reasons)
                )
                counts = PromotedCounts(
                    verdict=decision.verdict,
                    promoted=generation.candidate_version,
                    synthetic_added=added,
                )
            run = stage_run(generation, self.name)
            finish_run(run, counts.as_counts(), _since(run.started_at))
            session.flush()
            fault_point(ctx.settings.data_dir, self.name)
        return counts


def _blocked_because(decision: Decision, reason: str) -> Decision:
    return replace(decision, verdict="block", reasons=(reason, *decision.reasons))


def _since(started: dt.datetime | None) -> float:
    return (dt.datetime.now(dt.UTC) - started).total_seconds() if started else 0.0
