"""ONNX exports of the local sentence-transformers model, made once per machine.

The export (and its int8 quantisation) is a pure function of the model files, so it lives in
the user's cache (``$XDG_CACHE_HOME/replyguard/encoders``), shared by every process and data
folder on the machine, like a model hub's cache. It is written to a temporary folder and
renamed into place, so processes that start together never load half an export.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import platform
import shutil
import tempfile
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

ONNX_FILE = "onnx/model.onnx"


def exports_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "replyguard" / "encoders"


def quantisation_target() -> str:
    """The int8 scheme for this CPU: VNNI instructions multiply signed int8 directly; without
    them the AVX2 scheme (unsigned activations, reduced range) avoids overflow."""
    if platform.machine().lower() in {"aarch64", "arm64"}:
        return "arm64"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    return "avx512_vnni" if "avx512_vnni" in flags else "avx2"


def int8_file() -> str:
    target = quantisation_target()
    kind = "quint8" if target == "avx2" else "qint8"
    return f"onnx/model_{kind}_{target}.onnx"


def exported_model(source: Path) -> Path:
    """A model folder with ``source``'s configuration and tokenizer, ``onnx/model.onnx`` and
    its int8 quantisation (about 115 MB), exported on first use (a few seconds) and reused
    afterwards."""
    target = exports_root() / f"{source.name}-{_fingerprint(source)}"
    if (target / int8_file()).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        _export(source, staging)
        try:
            staging.rename(target)
        except OSError:
            # Another process finished the same export first; both are identical.
            if not (target / int8_file()).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _export(source: Path, folder: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    log.info("exporting the encoder to ONNX, once for this machine (a few seconds): %s", source)
    # The exporter (PyTorch's legacy ONNX export through optimum) warns about its own
    # deprecations and leaves a temporary folder to the garbage collector: noise to users, and
    # errors under warnings-as-errors. Its output is checked by loading it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Exported from the source's weights; the folder gets the configuration, the tokenizer
        # and the ONNX files, not a second copy of the PyTorch weights.
        model = SentenceTransformer(
            str(source), backend="onnx", device="cpu", local_files_only=True
        )
        model.save_pretrained(str(folder))
        export_dynamic_quantized_onnx_model(model, quantisation_target(), str(folder))
        del model
        gc.collect()


def _fingerprint(source: Path) -> str:
    """Changes when the model files do, or when the exporting libraries change version."""
    from importlib.metadata import version

    digest = hashlib.sha256(str(source.resolve()).encode())
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(source)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for package in ("onnxruntime", "optimum-onnx", "sentence-transformers"):
        digest.update(f"{package}={version(package)}".encode())
    return digest.hexdigest()[:16]
