"""Generation 0: the clean baseline, trained on human examples only.

Every later generation is compared against it, so it is trained once and kept pinned.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from sqlalchemy import select

from core.db import Database
from core.provenance import Provenance
from core.reservoir import benchmark_ids
from core.reservoir import ensure_benchmark
from core.schema import Example
from core.schema import ModelVersion
from core.settings import Settings
from models.adapter import AdapterConfig
from models.encoder import Encoder
from models.registry import production
from models.registry import promote
from models.registry import register
from models.suggester import RetrievalConfig
from models.training import TrainingExample
from models.training import TrainingReport
from models.training import train_model


class NoTrainingData(RuntimeError):
    pass


def train_baseline(
    db: Database, settings: Settings, encoder: Encoder, actor: str, show_progress: bool = False
) -> tuple[ModelVersion, TrainingReport]:
    """Set the benchmark aside, train on the remaining human examples, register generation 0,
    and promote it when there is no production model yet."""
    with db.session() as session:
        ensure_benchmark(session, settings)
        held_out = benchmark_ids(session)
        rows = [
            r
            for r in session.scalars(
                select(Example)
                .where(Example.provenance == Provenance.HUMAN.value)
                .order_by(Example.id)
            )
            if r.id not in held_out
        ]
    if not rows:
        raise NoTrainingData(
            "no human examples to train on: run `replyguard data load-demo` or "
            "`replyguard data import FILE --provenance human` first"
        )
    examples = [TrainingExample(r.message, r.reply, r.niche) for r in rows]
    model, report = train_model(
        encoder,
        examples,
        AdapterConfig.from_settings(settings),
        RetrievalConfig.from_settings(settings),
        show_progress=show_progress,
    )
    fingerprint = hashlib.sha256("".join(sorted(r.content_hash for r in rows)).encode())
    metadata = {
        "training": {
            "fingerprint": fingerprint.hexdigest(),
            "examples": len(rows),
            "provenance_counts": dict(Counter(r.provenance for r in rows)),
            "niche_counts": dict(Counter(r.niche for r in rows)),
            "benchmark_examples": len(held_out),
            "validation_examples": report.validation_examples,
            "final_loss": report.epoch_losses[-1] if report.epoch_losses else None,
        }
    }
    version = register(db, settings, model, generation=0, parent=None, metadata=metadata)
    with db.session() as session:
        if production(session) is None:
            version = promote(
                session, settings, version.version, actor, "first model: the clean baseline"
            )
    return version, report
