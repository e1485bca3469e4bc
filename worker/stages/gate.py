"""Stage 9, gate: the safeguards decide pass, warn or block, with metrics and reasons."""

from __future__ import annotations

from dataclasses import dataclass

from core.generations import promoted_before
from safeguards.gate import decide
from safeguards.metrics import Evaluation
from worker.stages.base import Counts
from worker.stages.base import GenerationRun
from worker.stages.records import SNAPSHOT


@dataclass(frozen=True)
class GateCounts(Counts):
    verdict: str
    reasons: int


class GateStage:
    name = "gate"
    label = "The gate decides"

    def run(self, run: GenerationRun) -> GateCounts:
        """Decide on the evaluate stage's evaluations, against the candidates of the
        generations promoted before and the fresh human examples of the snapshot; store the
        decision on the generation."""
        with run.ctx.db.session() as session:
            generation = run.generation(session)
            metrics = generation.metrics
            fresh = int(generation.stage_runs[SNAPSHOT].counts["fresh_human"])
            history = [
                Evaluation.from_dict(g.metrics["candidate"])
                for g in promoted_before(session, run.number)
                if g.metrics.get("candidate")
            ]
        decision = decide(
            Evaluation.from_dict(metrics["candidate"]),
            Evaluation.from_dict(metrics["production"]),
            Evaluation.from_dict(metrics["baseline"]),
            history,
            run.ctx.settings.gate,
            fresh,
        )
        with run.ctx.db.session() as session:
            run.generation(session).decision = decision.to_dict()
        return GateCounts(verdict=decision.verdict, reasons=len(decision.reasons))
