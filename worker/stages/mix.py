"""Stage 6, mix: accumulate, never replace. Every human example plus capped model-influenced
ones, tail-weighted, become the training set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.generations import GenerationError
from core.references import ExampleRef
from core.reservoir import member_ids
from core.schema import ReservoirRole
from safeguards.mixing import MixCounts
from safeguards.mixing import mix_training_set
from worker.stages.base import GenerationRun
from worker.stages.records import TrainingItem
from worker.stages.records import write_training_set
from worker.stages.staging import kept


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
            replies = kept(session, run.generation_id)
        result = mix_training_set(
            pools.human,
            pools.human_selected,
            pools.synthetic + replies,
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
