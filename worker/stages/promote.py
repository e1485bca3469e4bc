"""Stage 10, promote: pass or warn promotes the candidate and keeps its synthetic rows;
block keeps production. The only stage that changes production."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace

from models.registry import production
from safeguards.gate import Decision
from worker.notify import when_generation_ends
from worker.promotion import accept_generation
from worker.promotion import block_generation
from worker.stages.base import Counts
from worker.stages.base import GenerationRun


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

    def run(self, run: GenerationRun) -> PromoteCounts:
        """Pass or warn: promote the candidate and keep its synthetic rows, in one
        transaction. Block: production stays; the candidate and its synthetic rows wait for
        review. The same transaction ends the generation and records this stage done
        (:meth:`GenerationRun.record_done`). A change of production while the generation ran
        blocks it (its comparison no longer holds)."""
        with run.ctx.db.session() as session:
            generation = run.generation(session)
            when_generation_ends(session, run.ctx.settings, generation)
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
                    session, run.ctx.settings, generation, "gate", "; ".join(decision.reasons)
                )
                counts = PromotedCounts(
                    verdict=decision.verdict,
                    promoted=generation.candidate_version,
                    synthetic_added=added,
                )
            run.record_done(session, generation, counts)
        return counts


def _blocked_because(decision: Decision, reason: str) -> Decision:
    return replace(decision, verdict="block", reasons=(reason, *decision.reasons))
