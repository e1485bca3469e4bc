"""Stage 3, encode: embeddings of a generation's texts, in chunks that workers share.

Filtering and deduplication need an embedding of every synthetic message and reply and of
every stored example. The texts are planned once, split into chunks, and each chunk is
encoded by whichever worker takes it into the generation's folder in the shared data folder;
the later stages read them back (:func:`precomputed`). The Celery workers share the chunks
through a chord (worker/tasks.py); run inline (the command line, the collapse experiment)
they go one after another. Both record the same counts (:meth:`EncodeStage.counts`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from core.files import atomic_write
from core.schema import SyntheticCandidate
from core.text import text_hash
from models.encoder import Encoder
from worker.context import PipelineContext
from worker.faults import fault_point
from worker.stages.base import Counts
from worker.stages.base import GenerationRun
from worker.stages.base import generation_dir

CHUNK_SIZE = 512


@dataclass(frozen=True)
class EncodeCounts(Counts):
    chunks: int
    # Distinct texts in the plan: the chunks' embeddings cover them all.
    texts: int


class EncodeStage:
    name = "encode"
    label = "Embedding the texts to compare"

    def run(self, run: GenerationRun) -> EncodeCounts:
        """Plan, then encode every chunk one after another (the inline run)."""
        plan = self.plan(run)
        for index in range(plan.chunks):
            encode_chunk(run.ctx, run.generation_id, index)
            run.progress((index + 1) / plan.chunks)
        return plan

    def plan(self, run: GenerationRun) -> EncodeCounts:
        """Write the plan (:func:`plan_texts`); return its chunks and texts, which are also
        the stage's counts, however its chunks are then encoded."""
        texts = plan_texts(run)
        return EncodeCounts(chunks=(texts + CHUNK_SIZE - 1) // CHUNK_SIZE, texts=texts)


def chunk_dir(ctx: PipelineContext, generation_id: int) -> Path:
    path = generation_dir(ctx, generation_id) / "embeddings"
    path.mkdir(parents=True, exist_ok=True)
    return path


def plan_texts(run: GenerationRun) -> int:
    """Write the list of distinct texts to encode; return how many there are.

    The texts are the generation's synthetic replies and the examples stored up to its
    snapshot's watermark, so planning again (a resumed or redelivered encode stage) writes
    the same plan, and chunks already encoded stay valid."""
    with run.ctx.db.session() as session:
        staged = session.execute(
            select(SyntheticCandidate.message, SyntheticCandidate.reply).where(
                SyntheticCandidate.generation_id == run.generation_id
            )
        ).all()
    stored = [(r.message, r.reply) for r in run.examples().stored]
    texts = sorted({t for pair in [*staged, *stored] for t in pair})
    atomic_write(chunk_dir(run.ctx, run.generation_id) / "plan.json", json.dumps(texts).encode())
    return len(texts)


def encode_chunk(ctx: PipelineContext, generation_id: int, index: int) -> int:
    """Encode chunk ``index`` of the plan; return how many texts it encoded (0 when the
    chunk was written already: it is skipped)."""
    folder = chunk_dir(ctx, generation_id)
    target = folder / f"{index:05d}.npy"
    if target.exists():
        return 0
    texts = json.loads((folder / "plan.json").read_text())[
        index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE
    ]
    buffer = io.BytesIO()
    np.save(buffer, ctx.encoder.encode(texts))
    atomic_write(target, buffer.getvalue())
    fault_point(ctx.settings.data_dir, EncodeStage.name)
    return len(texts)


def precomputed(ctx: PipelineContext, generation_id: int) -> PrecomputedEncoder:
    """An encoder that answers from the generation's chunks (and encodes anything missing)."""
    folder = chunk_dir(ctx, generation_id)
    plan_path = folder / "plan.json"
    known: dict[str, np.ndarray] = {}
    if plan_path.exists():
        texts = json.loads(plan_path.read_text())
        for index in range((len(texts) + CHUNK_SIZE - 1) // CHUNK_SIZE):
            path = folder / f"{index:05d}.npy"
            if not path.exists():
                continue
            chunk = texts[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]
            vectors = np.load(path)
            known.update((text_hash(t), v) for t, v in zip(chunk, vectors, strict=True))
    return PrecomputedEncoder(ctx.encoder, known)


class PrecomputedEncoder:
    """Looks texts up in precomputed embeddings; falls back to the real encoder."""

    def __init__(self, encoder: Encoder, known: dict[str, np.ndarray]) -> None:
        self.encoder = encoder
        self.known = known
        self.dim = encoder.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        hashes = [text_hash(t) for t in texts]
        missing = [t for t, h in zip(texts, hashes, strict=True) if h not in self.known]
        if missing:
            vectors = self.encoder.encode(missing)
            self.known.update((text_hash(t), v) for t, v in zip(missing, vectors, strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.known[h] for h in hashes])
