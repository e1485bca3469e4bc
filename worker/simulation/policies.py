"""The collapse experiment's policies: what each one does with the production pipeline.

Each policy runs the workers' pipeline (worker/pipeline.py) with some of its stages swapped
for the policy's own (:data:`POLICY_PIPELINES`); only what a policy changes is written here.
The policies themselves are described in the package's docstring (worker/simulation/).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.references import ExampleRef
from models.adapter_training import train_adapter
from models.registry import register
from models.suggester import SuggestionModel
from worker.pipeline import PIPELINE
from worker.promotion import accept_generation
from worker.stages import Counts
from worker.stages import DeduplicateStage
from worker.stages import FilterStage
from worker.stages import GenerationRun
from worker.stages import MixStage
from worker.stages import PromoteStage
from worker.stages import TrainStage
from worker.stages.base import Pipeline
from worker.stages.filter import FilterCounts
from worker.stages.records import TrainingItem
from worker.stages.records import write_training_set
from worker.stages.staging import kept
from worker.stages.staging import mark_kept
from worker.stages.train import record_candidate

Policy = Literal["replace", "accumulate", "guarded", "bootstrap", "ablation"]
POLICIES: tuple[Policy, ...] = ("replace", "accumulate", "guarded", "bootstrap", "ablation")
ABLATION: Policy = "ablation"
# Policies that get the trickle of fresh human examples unless --fresh-human says otherwise:
# the production pipeline and its ablation (the same generations, no synthetic rows).
FRESH_BY_DEFAULT: tuple[Policy, ...] = ("guarded", ABLATION)
# The metrics drawn (titled with their labels in safeguards.metrics' registry).


@dataclass(frozen=True)
class _Skipped(Counts):
    skipped: bool = True


@dataclass(frozen=True)
class _MixedAnyway(Counts):
    human: int
    synthetic: int
    human_share: float


@dataclass(frozen=True)
class _PromotedAnyway(Counts):
    # What the gate said (recorded, not obeyed).
    verdict: str | None
    promoted: bool
    synthetic_added: int


@dataclass(frozen=True)
class _BootstrapCounts(Counts):
    examples: int
    bank_size: int
    candidate: str


class _KeepEverything:
    """No quality rules: every synthetic reply is kept."""

    name = FilterStage.name
    label = "Quality rules (none: every reply kept)"

    def run(self, run: GenerationRun) -> FilterCounts:
        with run.ctx.db.session() as session:
            kept = mark_kept(session, run.generation_id)
        return FilterCounts(checked=kept, kept=kept, removed={})


class _NoDeduplication:
    """No deduplication."""

    name = DeduplicateStage.name
    label = "Duplicate removal (none)"

    def run(self, run: GenerationRun) -> _Skipped:
        return _Skipped()


class _MixReplace:
    """Only what the previous model just wrote: no human example at all."""

    name = MixStage.name
    label = "Training on the model's replies only"

    def run(self, run: GenerationRun) -> _MixedAnyway:
        refs = _kept_refs(run)
        write_training_set(run.folder, [TrainingItem(ref, 1.0) for ref in refs])
        return _MixedAnyway(human=0, synthetic=len(refs), human_share=0.0)


class _MixAccumulate:
    """Every stored example and this generation's replies, unweighted and uncapped."""

    name = MixStage.name
    label = "Mixing everything, uncapped"

    def run(self, run: GenerationRun) -> _MixedAnyway:
        pools = run.examples()
        stored = [
            ExampleRef.example(r.id) for r in pools.human + pools.human_selected + pools.synthetic
        ]
        refs = stored + _kept_refs(run)
        write_training_set(run.folder, [TrainingItem(ref, 1.0) for ref in refs])
        return _MixedAnyway(
            human=len(pools.human),
            synthetic=len(refs) - len(pools.human),
            human_share=len(pools.human) / max(len(refs), 1),
        )


class _PromoteAlways:
    """Promote whatever the gate said (recorded, not obeyed)."""

    name = PromoteStage.name
    label = "Promote (whatever the gate said)"

    def run(self, run: GenerationRun) -> _PromotedAnyway:
        with run.ctx.db.session() as session:
            generation = run.generation(session)
            verdict = generation.decision.get("verdict")
            added = accept_generation(
                session, run.ctx.settings, generation, "simulate", "policy ignores the gate"
            )
            counts = _PromotedAnyway(verdict=verdict, promoted=True, synthetic_added=added)
            run.record_done(session, generation, counts)
        return counts


class _TrainBootstrap:
    """Fine-tune production on the replies it just wrote: its adapter trained further on
    those pairs alone; its response set, signal weights and triggering threshold kept; the
    pairs added to its nearest-message index (each votes for the reply it was given)."""

    name = TrainStage.name
    label = "Fine-tuning production on its own replies"

    def run(self, run: GenerationRun) -> _BootstrapCounts:
        ctx, generation_id = run.ctx, run.generation_id
        with ctx.db.session() as session:
            pairs = [(reply.message, reply.reply) for reply in kept(session, generation_id)]
        model = run.parent_model()
        reply_id = {text: i for i, text in enumerate(model.bank.texts)}
        ids = np.asarray([reply_id[reply] for _, reply in pairs], dtype=np.int64)
        adapter, losses = model.adapter, list[float]()
        messages = np.zeros((0, ctx.encoder.dim), dtype=np.float32)
        if pairs:
            messages = ctx.encoder.encode([m for m, _ in pairs])
            adapter, losses = train_adapter(
                messages,
                model.bank_embeddings[ids],
                ids,
                np.ones(len(pairs), dtype=np.float32),
                ctx.settings.adapter,
                start=model.adapter,
            )
        tuned = SuggestionModel(
            encoder=ctx.encoder,
            adapter=adapter,
            bank=model.bank,
            bank_embeddings=model.bank_embeddings,
            message_embeddings=np.vstack([model.message_embeddings, messages]),
            message_reply_ids=np.concatenate([model.message_reply_ids, ids]),
            weights=model.weights,
            retrieval=model.retrieval,
            triggering=model.triggering,
            prompts=model.prompts,
            tone_classifier=model.tone.classifier,
        )
        metadata = {
            "training": {
                "examples": len(pairs),
                "provenance_counts": {"synthetic": len(pairs)} if pairs else {},
                "final_loss": losses[-1] if losses else None,
                "held": "response set, weights and triggering threshold of the parent",
                "generation_id": generation_id,
            }
        }

        version = register(
            ctx.db,
            ctx.settings,
            tuned,
            run.number,
            run.parent_version,
            metadata,
            record_candidate(generation_id),
        )
        return _BootstrapCounts(
            examples=len(pairs), bank_size=len(model.bank), candidate=version.version
        )


def _kept_refs(run: GenerationRun) -> list[ExampleRef]:
    with run.ctx.db.session() as session:
        return [reply.ref for reply in kept(session, run.generation_id)]


# No quality rules, no deduplication, every candidate promoted.
_UNGUARDED = (_KeepEverything(), _NoDeduplication(), _PromoteAlways())
# Each policy's pipeline: the production one with the policy's stages swapped in.
POLICY_PIPELINES: dict[Policy, Pipeline] = {
    "guarded": PIPELINE,
    ABLATION: PIPELINE,
    "replace": PIPELINE.with_stages(*_UNGUARDED, _MixReplace()),
    "accumulate": PIPELINE.with_stages(*_UNGUARDED, _MixAccumulate()),
    "bootstrap": PIPELINE.with_stages(*_UNGUARDED, _MixReplace(), _TrainBootstrap()),
}
