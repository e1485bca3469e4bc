"""The encode stage: embeddings of a generation's texts, in chunks that workers share.

Filtering and deduplication need an embedding of every synthetic message and reply and of
every stored example. The texts are planned once, split into chunks, and each chunk is
encoded by whichever worker takes it (a Celery chord, see ``worker.tasks``) into the
generation's folder in the shared data folder; the later stages read them back. Inline runs
(the command line, the simulation) encode the chunks one after another.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import select

from core.schema import Example
from core.schema import Generation
from core.schema import SyntheticCandidate
from core.text import text_hash
from models.encoder import Encoder
from worker.context import PipelineContext
from worker.faults import fault_point

CHUNK_SIZE = 512


def chunk_dir(ctx: PipelineContext, generation_id: int) -> Path:
    path = ctx.settings.data_dir / "generations" / str(generation_id) / "embeddings"
    path.mkdir(parents=True, exist_ok=True)
    return path


def plan_chunks(ctx: PipelineContext, generation_id: int) -> int:
    """Write the list of distinct texts to encode; return how many chunks it makes.

    The texts are the generation's synthetic replies and the examples stored up to its
    snapshot's watermark, so planning again (a resumed or redelivered encode stage) writes
    the same plan, and chunks already encoded stay valid."""
    with ctx.db.session() as session:
        generation = session.get_one(Generation, generation_id)
        watermark = generation.stages["snapshot"]["data"]["watermark"]
        staged = session.execute(
            select(SyntheticCandidate.message, SyntheticCandidate.reply).where(
                SyntheticCandidate.generation_id == generation_id
            )
        ).all()
        stored = session.execute(
            select(Example.message, Example.reply).where(Example.id <= watermark)
        ).all()
    texts = sorted({t for pair in [*staged, *stored] for t in pair})
    folder = chunk_dir(ctx, generation_id)
    _atomic_write(folder / "plan.json", json.dumps(texts).encode())
    return (len(texts) + CHUNK_SIZE - 1) // CHUNK_SIZE


def encode_chunk(ctx: PipelineContext, generation_id: int, index: int) -> int:
    """Encode one chunk of the plan (idempotent: a chunk already written is skipped)."""
    folder = chunk_dir(ctx, generation_id)
    target = folder / f"{index:05d}.npy"
    if target.exists():
        return 0
    texts = json.loads((folder / "plan.json").read_text())[
        index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE
    ]
    vectors = ctx.encoder.encode(texts)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".npy")
    with os.fdopen(fd, "wb") as handle:
        np.save(handle, vectors)
    os.replace(tmp, target)
    fault_point(ctx.settings.data_dir, "encode")
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


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
