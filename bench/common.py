"""What several benchmarks share: distinct messages to encode, timing an encoder on them, and
a data folder with its clean baseline trained."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy import select

from core.db import Database
from core.demo import chatterbot_rows
from core.demo import load_demo
from core.ingest import import_file
from core.provenance import Provenance
from core.schema import Example
from models.artifact import load_model
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import production
from models.suggester import SuggestionModel
from worker.baseline import train_baseline
from worker.context import PipelineContext
from worker.data import ReplyExample
from worker.data import example_pools
from worker.settings import Settings
from worker.settings import load_settings

# The demo data of the benchmarks whose figures in docs/benchmarks.md were measured on the
# chatterbot corpus (encoder backends, generation, latency): kept so that they can
# be reproduced. The start-up, demo-size, quality and served-set benchmarks use
# the default demo.
BENCH_DEMO = {"demo_dataset": "chatterbot"}


def distinct_messages(count: int) -> list[str]:
    """Chatterbot demo messages with a numbered suffix: every one distinct, so no cache
    answers. (Chatterbot, as when the figures in docs/benchmarks.md were measured.)"""
    base = [example.message for _, example in chatterbot_rows()]
    return [f"{base[i % len(base)]} ({i})" for i in range(count)]


def encode_rate(encoder: Encoder, texts: list[str], batch: int) -> float:
    """Messages per second over one pass, ``batch`` texts per call."""
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        encoder.encode(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - start)


@dataclass
class BenchData:
    """A data folder with its clean baseline (generation 0) trained and loaded.

    Attributes:
        name: what the tables call it ("demo", or the imported file's name).
        settings: the folder's settings.
        model: the production model (generation 0 when the folder was new).
        manifest: the model artifact's manifest (weights, triggering, response set report).
        train: the human examples the baseline trained on (benchmark excluded), by id.
        benchmark: the benchmark split (never trained on), by id.
    """

    name: str
    settings: Settings
    model: SuggestionModel
    manifest: dict[str, Any]
    train: list[ReplyExample]
    benchmark: list[ReplyExample]


def prepare(
    name: str,
    data_dir: Path,
    encoder: Encoder,
    data_file: Path | None = None,
    provenance: Provenance = Provenance.HUMAN,
    skip_invalid: bool = False,
) -> BenchData:
    """Fill an empty data folder and train its clean baseline, or reuse what is there.

    An empty folder gets the default demo data (``core.demo.load_demo``: its chitchat share,
    with its incoming traffic) or, with ``data_file``, that JSONL/CSV file imported as
    ``replyguard data import`` does, rows without a ``provenance`` column taking
    ``provenance`` (a file of message/reply pairs as users have them names none: human).
    The baseline is trained by ``worker.baseline`` as ``make run`` trains it, so the
    figures are the served model's.

    Args:
        name: what the tables call the data set.
        data_dir: the data folder (created when missing).
        encoder: shared by every data set of a run.
        data_file: a JSONL/CSV file to import into an empty folder; None: the demo.
        provenance: of the file's rows that name none.
        skip_invalid: import the valid rows of a file with invalid ones (else refused).

    Raises:
        core.ingest.ImportFailed: ``data_file`` has invalid rows and ``skip_invalid`` is off.
        core.ingest.NothingToImport, core.ingest.FileRefused: no valid row, an unreadable
            file.
    """
    settings = load_settings({"data_dir": str(data_dir)})
    db = Database(settings)
    db.upgrade()
    with db.session() as session:
        if session.scalar(select(func.count(Example.id))) == 0:
            if data_file is None:
                load_demo(session, settings)
            else:
                import_file(session, data_file, provenance, skip_invalid)
    with db.session() as session:
        if production(session) is None:
            train_baseline(PipelineContext(settings, db, encoder, show_progress=True), "bench")
    with db.session() as session:
        version = production(session)
        assert version is not None
        model, manifest = load_model(artifact_dir(settings, version), encoder, version.checksum)
        pools = example_pools(session)
    db.dispose()
    return BenchData(name, settings, model, manifest, pools.human, pools.benchmark)
