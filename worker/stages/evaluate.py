"""Stage 8, evaluate: the candidate, production (the parent) and the clean baseline on the
benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.generations import GenerationError
from core.generations import get_generation
from worker.baseline import baseline_version
from worker.context import PipelineContext
from worker.data import example_pools
from worker.evaluation import VersionEvaluator
from worker.faults import fault_point
from worker.stages.base import Progress
from worker.stages.records import read_snapshot

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

    def run(self, ctx: PipelineContext, generation_id: int, progress: Progress) -> EvaluateCounts:
        """Evaluate the three models (:data:`ROLES`), with the rare niches as the examples up
        to the snapshot's watermark make them, and store the evaluations on the generation.
        Raises GenerationError when one of them is missing."""
        with ctx.db.session() as session:
            generation = get_generation(session, generation_id)
            candidate, parent = generation.candidate_version, generation.parent_version
            pools = example_pools(session, read_snapshot(generation).watermark)
        baseline = baseline_version(ctx)
        if candidate is None or parent is None or baseline is None:
            raise GenerationError("evaluate needs the candidate, the parent and the baseline")
        versions = dict(zip(ROLES, (candidate, parent, baseline), strict=True))
        evaluate_version = VersionEvaluator(ctx, pools)
        evaluations = {role: evaluate_version(v) for role, v in versions.items()}
        with ctx.db.session() as session:
            get_generation(session, generation_id).metrics = {
                role: {"version": versions[role], **ev.to_dict(include_suggestions=False)}
                for role, ev in evaluations.items()
            }
        fault_point(ctx.settings.data_dir, self.name)
        return EvaluateCounts({role: ev.value(ev.primary) for role, ev in evaluations.items()})
