"""ONNX exports of the local sentence-transformers model, made once per machine.

The export (and its int8 quantisation) is a pure function of the model files, so it lives in
the user's cache (``$XDG_CACHE_HOME/replyguard/encoders``), shared by every process, data
folder and virtualenv on the machine, like a model hub's cache: its folder is named by the
files' contents and the exporting libraries' versions (:func:`_fingerprint`), never by where
the model is installed. It is written to a temporary folder and renamed into place, so
processes that start together never load half an export.

The int8 file is quantised *statically*: every activation's int8 scale was fixed once, from a
bundled set of calibration texts, so a text's vector depends on that text alone. Dynamic
quantisation (the exporter's default) computes each scale from the whole padded batch at run
time, so a message's vector, and the suggestions built on it, changed with whatever other
clients' messages shared its micro-batch (cosine 0.96-0.99 to itself; docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ONNX_FILE = "onnx/model.onnx"
INT8_FILE = "onnx/model_int8_static.onnx"
# A sample of the chatterbot corpus: every 8th of its distinct texts (235 with
# chatterbot-corpus 1.3.3, of 1 to 66 words, median 6). Calibrating on all of them gave the same vectors (mean cosine to float32 0.9865
# against 0.9868) in six times the calibration time.
CALIBRATION_STRIDE = 8


def exports_root() -> Path:
    """``$XDG_CACHE_HOME/replyguard/encoders``, or ``~/.cache/replyguard/encoders`` when
    ``XDG_CACHE_HOME`` is unset, empty or relative (the XDG Base Directory specification says
    to ignore a relative one)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "replyguard" / "encoders"


def exported_model(source: Path) -> Path:
    """A model folder with ``source``'s configuration and tokenizer, ``onnx/model.onnx`` and
    its int8 quantisation (about 150 MB in all), exported on first use (ten to twenty seconds,
    most of it calibration) and reused afterwards.

    Raises:
        OSError: the cache folder cannot be written.
    """
    target = exports_root() / f"{source.name}-{_fingerprint(source)}"
    if (target / INT8_FILE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        _export(source, staging)
        try:
            staging.rename(target)
        except OSError:
            # Another process finished the same export first; both are identical.
            if not (target / INT8_FILE).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _quantisation() -> dict[str, Any]:
    """The arguments of ``onnxruntime.quantization.quantize_static`` for the int8 file.

    Only the MatMuls are quantised: weights per output channel, symmetric int8 in 7 bits
    (``reduce_range``: without VNNI instructions, x86 multiplies int8 pairs into 16-bit sums
    that overflow at full range, and one recipe everywhere keeps the vectors, and so the models
    tied to them, the same on every machine); activations unsigned int8 over the range seen in
    calibration (MinMax). The MatMuls' outputs stay float32: quantising them as well (the
    default) clipped the feed-forward outputs (range -4 to 195) and dropped the mean cosine to
    the float32 vectors from 0.987 to 0.92. QDQ is the format ONNX Runtime fuses into its
    integer kernels on CPU; QOperator cannot keep float outputs.
    """
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization import QuantType

    return {
        "quant_format": QuantFormat.QDQ,
        "op_types_to_quantize": ["MatMul"],
        "per_channel": True,
        "reduce_range": True,
        "activation_type": QuantType.QUInt8,
        "weight_type": QuantType.QInt8,
        "calibrate_method": CalibrationMethod.MinMax,
        "extra_options": {"OpTypesToExcludeOutputQuantization": ["MatMul"]},
    }


@functools.cache
def calibration_texts() -> tuple[str, ...]:
    """The texts whose activations fix the int8 scales: every ``CALIBRATION_STRIDE``-th of
    the distinct messages and replies of the English chatterbot corpus (installed by the
    ``chatterbot-corpus`` package; no network), in sorted order. Fixed whichever demo data set
    a data folder uses, so that every machine makes the same int8 file."""
    from core.demo import chatterbot_rows

    texts = sorted({text for _, row in chatterbot_rows() for text in (row.message, row.reply)})
    return tuple(texts[::CALIBRATION_STRIDE])


@functools.cache
def int8_recipe() -> str:
    """A name for how the int8 file is made, e.g. ``int8-static-1f0c2a9e``: the hash covers
    the quantisation arguments and the calibration texts, so that any change to either gives
    new vectors a new name. It is part of the export's fingerprint and of ``Encoder.key``, to
    which trained models and cached embeddings are tied."""
    digest = hashlib.sha256(repr(sorted(_quantisation().items())).encode())
    for text in calibration_texts():
        digest.update(text.encode() + b"\0")
    return f"int8-static-{digest.hexdigest()[:8]}"


def _export(source: Path, folder: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from core.logs import adopt_transformers_logging

    # transformers, just imported, writes to standard error unless told otherwise.
    adopt_transformers_logging()
    log.info("exporting the encoder to ONNX, once for this machine (about 15 s): %s", source)
    # The exporter (PyTorch's legacy ONNX export through optimum) warns about its own
    # deprecations and leaves a temporary folder to the garbage collector: noise to users, and
    # errors under warnings-as-errors. Its output is checked by loading it.
    with warnings.catch_warnings(), _quiet_export():
        warnings.simplefilter("ignore")
        # Exported from the source's weights; the folder gets the configuration, the tokenizer
        # and the ONNX files, not a second copy of the PyTorch weights.
        model = SentenceTransformer(
            str(source), backend="onnx", device="cpu", local_files_only=True
        )
        model.save_pretrained(str(folder))
        _quantise(model, folder)
        del model
        gc.collect()


def _quantise(model: Any, folder: Path) -> None:
    """Write ``INT8_FILE`` from ``ONNX_FILE``, calibrated one text at a time (no padding, so
    the ranges are those of real tokens)."""
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization import quantize_static

    inputs = set(model.transformers_model.input_names)
    tokenizer = model.tokenizer
    max_length = model.max_seq_length

    class Calibration(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._texts = iter(calibration_texts())

        def get_next(self) -> dict[str, Any] | None:
            text = next(self._texts, None)
            if text is None:
                return None
            encoded = tokenizer([text], return_tensors="np", truncation=True, max_length=max_length)
            return {name: value for name, value in encoded.items() if name in inputs}

    # The quantiser writes scratch files (a shape-inferred copy of the model and its external
    # data, about 90 MB) into the working directory and leaves them there: run it in a
    # throwaway one, or they land wherever the service was started.
    with (
        tempfile.TemporaryDirectory(prefix="replyguard-quantise-") as scratch,
        contextlib.chdir(scratch),
    ):
        quantize_static(
            str((folder / ONNX_FILE).resolve()),
            str((folder / INT8_FILE).resolve()),
            Calibration(),
            **_quantisation(),
        )


# Loggers whose warnings during the export are about the export itself, dropped while it runs
# (their errors still show). sentence-transformers announces that the folder has no ONNX file
# so it exports one, and advises saving it: this module exports on purpose and saves it (to the
# cache). transformers warns that `torch_dtype` is deprecated: optimum's exporter passes it, not
# us, and nothing here can change it. Both reached the console of every first run.
QUIET_DURING_EXPORT = ("sentence_transformers.backend", "transformers")


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Drop the libraries' warnings about the export while it runs: those of
    :data:`QUIET_DURING_EXPORT`, and the quantiser's log records (it advises a graph
    pre-processing pass on the root logger; that pass changed nothing here, and cost
    seconds), and only those."""
    import onnxruntime

    package = str(Path(onnxruntime.__file__).parent / "quantization")

    def elsewhere(record: logging.LogRecord) -> bool:
        return not record.pathname.startswith(package)

    root = logging.getLogger()
    loggers = [logging.getLogger(name) for name in QUIET_DURING_EXPORT]
    levels = [logger.level for logger in loggers]
    root.addFilter(elsewhere)
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.ERROR))
    try:
        yield
    finally:
        root.removeFilter(elsewhere)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# The libraries that make the export and its int8 file (torch traces the graph, optimum and
# transformers drive it, onnx and onnxruntime write and quantise it): a new version of any of
# them may write a different file, so each is part of the fingerprint. One lock (uv.lock) pins
# them, so every virtualenv installed from it shares one export.
EXPORTERS = (
    "onnx",
    "onnxruntime",
    "optimum",
    "optimum-onnx",
    "sentence-transformers",
    "torch",
    "transformers",
)


def _fingerprint(source: Path) -> str:
    """The export's key: the model files' contents (:func:`model_digest`), the exporting
    libraries' versions (:data:`EXPORTERS`) and the int8 recipe. Not where the folder is nor
    when its files were written: every virtualenv installs the bundled model at another path,
    with new mtimes, and each used to export it again (seven exports of one model on a
    developer's machine)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version

    digest = hashlib.sha256(model_digest(source).encode())
    for package in EXPORTERS:
        try:
            installed = version(package)
        except PackageNotFoundError:
            installed = "-"
        digest.update(f"\0{package}={installed}".encode())
    digest.update(f"\0{int8_recipe()}".encode())
    return digest.hexdigest()[:16]


def model_digest(source: Path) -> str:
    """SHA-256 over every file of the model folder ``source``: its path relative to the
    folder and the SHA-256 of its content, in path order. Reads the whole folder (90 MB for
    all-MiniLM-L6-v2: 0.2 s on the 2-core reference machine, under a tenth of loading the
    model), once per process for files unchanged since (:func:`_content_digest` is memoised on
    their inodes, sizes and times, which only decide whether to read them again, never the
    key: the change time moves with any write, even one that puts the mtime back).

    Raises:
        OSError: a file cannot be read.
    """
    stats: list[tuple[str, int, int, int, int]] = []
    for path in source.rglob("*"):
        if path.is_file():
            stat = path.stat()
            stats.append(
                (
                    path.relative_to(source).as_posix(),
                    stat.st_ino,
                    stat.st_size,
                    stat.st_mtime_ns,
                    stat.st_ctime_ns,
                )
            )
    return _content_digest(str(source.resolve()), tuple(sorted(stats)))


@functools.cache
def _content_digest(folder: str, stats: tuple[tuple[str, int, int, int, int], ...]) -> str:
    """The digest of :func:`model_digest` for ``folder``, whose files had ``stats``
    ((relative path, inode, size, mtime, ctime) each): read again whenever any of them
    changes."""
    digest = hashlib.sha256()
    for name, *_ in stats:
        with open(Path(folder) / name, "rb") as file:
            content = hashlib.file_digest(file, "sha256").hexdigest()
        digest.update(f"{name}\0{content}\0".encode())
    return digest.hexdigest()
