"""Stage 8, evaluate: the candidate, production (the parent) and the clean baseline on the
benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.generations import GenerationError
from core.generations import baseline_version
from worker.evaluation import VersionEvaluator
from worker.stages.base import GenerationRun

# The models compared, by their role in the gate's decision.
ROLES = ("candidate", "production", "baseline")


@dataclass(frozen=True)
class EvaluateCounts:
    """Each model's primary metric, by its role (:data:`ROLES`)."""

    primary: dict[str, float]

    def as_counts(self) -> dict[str, Any]:
        return dict(self.primary)


class EvaluateStage:
    name = "evaluate"
    label = "Evaluation on the benchmark"

    def run(self, run: GenerationRun) -> EvaluateCounts:
        """Evaluate the three models (:data:`ROLES`), with the rare niches as the examples up
        to the snapshot's watermark make them, and store the evaluations on the generation.
        Raises GenerationError when one of them is missing."""
        candidate, parent = run.candidate_version, run.parent_version
        with run.ctx.db.session() as session:
            baseline = baseline_version(session)
        if candidate is None or parent is None or baseline is None:
            raise GenerationError("evaluate needs the candidate, the parent and the baseline")
        versions = dict(zip(ROLES, (candidate, parent, baseline), strict=True))
        evaluate_version = VersionEvaluator(run.ctx, run.examples())
        evaluations = {role: evaluate_version(v) for role, v in versions.items()}
        with run.ctx.db.session() as session:
            run.generation(session).metrics = {
                role: {"version": versions[role], **ev.to_dict(include_suggestions=False)}
                for role, ev in evaluations.items()
            }
        return EvaluateCounts({role: ev.value(ev.primary) for role, ev in evaluations.items()})
