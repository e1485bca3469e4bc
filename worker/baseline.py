"""Generation 0: the clean baseline, trained on human examples only.

Every later generation is compared against it, so it is trained once and stays pinned.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Sequence

from core.actions import Conflict
from core.generations import baseline_generation
from core.reservoir import ensure_anchor
from core.reservoir import ensure_benchmark
from core.schema import Generation
from core.schema import GenerationStatus
from core.schema import ModelVersion
from models.registry import production
from models.registry import promote
from models.registry import register
from models.training import TrainingExample
from models.training import TrainingReport
from models.training import train_model
from worker.context import PipelineContext
from worker.data import Row
from worker.data import example_pools
from worker.evaluation import VersionEvaluator


class NoTrainingData(Conflict):
    """The clean baseline cannot be trained now: it exists already, or there is no human
    example to train on; the message says what to run first."""


def baseline_version(ctx: PipelineContext) -> str | None:
    with ctx.db.session() as session:
        row = baseline_generation(session)
        return row.candidate_version if row else None


def training_metadata(rows: Sequence[Row], report: TrainingReport, **extra: object) -> dict:  # type: ignore[type-arg]
    fingerprint = hashlib.sha256("".join(sorted(r.content_hash for r in rows)).encode())
    return {
        "training": {
            "fingerprint": fingerprint.hexdigest(),
            "examples": len(rows),
            "provenance_counts": dict(Counter(r.provenance.value for r in rows)),
            "niche_counts": dict(Counter(r.niche for r in rows)),
            "validation_examples": report.validation_examples,
            "final_loss": report.epoch_losses[-1] if report.epoch_losses else None,
            "response_set": report.response_set.as_dict(),
            # The chosen epochs, form and weights, with the held-out 1-of-100 of the model
            # and of the plain encoder (models.selection); None: too few examples.
            "selection": report.selection.as_dict() if report.selection else None,
            **extra,
        }
    }


def train_baseline(ctx: PipelineContext, actor: str) -> tuple[ModelVersion, TrainingReport]:
    """Set the benchmark aside, train on the other human examples, register generation 0,
    evaluate it, and promote it when nothing is in production yet."""
    if baseline_version(ctx) is not None:
        raise NoTrainingData("the clean baseline exists already; it is trained once")
    # Its generation row spans the training, as a generation's does (created, then finished).
    started = dt.datetime.now(dt.UTC)
    with ctx.db.session() as session:
        ensure_benchmark(session, ctx.settings)
        ensure_anchor(session, ctx.settings)
        pools = example_pools(session)
    rows = pools.human
    if not rows:
        raise NoTrainingData(
            "no human examples to train on: run `replyguard data load-demo` or "
            "`replyguard data import FILE --provenance human` first"
        )
    model, report = train_model(
        ctx.encoder,
        [TrainingExample(r.message, r.reply, r.niche, conversation=r.conversation) for r in rows],
        config=ctx.training_config(),
        show_progress=ctx.show_progress,
    )
    metadata = training_metadata(rows, report, benchmark_examples=len(pools.benchmark))
    version = register(ctx.db, ctx.settings, model, generation=0, parent=None, metadata=metadata)
    evaluation = VersionEvaluator(ctx, pools)(version.version, model)
    with ctx.db.session() as session:
        session.add(
            Generation(
                number=0,
                status=GenerationStatus.PASSED.value,
                stage="done",
                candidate_version=version.version,
                metrics={"candidate": evaluation.to_dict(include_suggestions=False)},
                decision={"verdict": "pass", "reasons": ["The clean baseline: human data only."]},
                requested_by=actor,
                created_at=started,
                finished_at=dt.datetime.now(dt.UTC),
            )
        )
        if production(session) is None:
            version = promote(
                session, ctx.settings, version.version, actor, "first model: the clean baseline"
            )
    return version, report
