"""Model artifacts on disk: one directory per version, written atomically, checked at load.

A version is written into a temporary sibling directory, fsynced, then renamed into place, so
a reader sees either nothing or the whole artifact. ``manifest.json`` lists every file's
sha256; a missing, extra-short or altered file makes :func:`load_model` refuse the artifact.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from core.files import fsync_path
from core.files import sha256_file
from models.adapter import Adapter
from models.bank import ResponseBank
from models.encoder import Encoder
from models.index import load_index
from models.index import save_index
from models.prompts import IntentPrompts
from models.suggester import RetrievalConfig
from models.suggester import ScoringWeights
from models.suggester import SuggestionModel
from models.suggester import Triggering
from models.tone import ToneClassifier

FORMAT = 1
MANIFEST = "manifest.json"


class ArtifactError(RuntimeError):
    """An artifact is missing, partial or corrupt and must not be served."""


def write_model(model: SuggestionModel, target: Path, metadata: dict[str, Any]) -> str:
    """Write ``model`` to ``target`` atomically; return the manifest's sha256.

    ``metadata`` goes into the manifest as is (version, parent, generation, training-data
    fingerprint, provenance counts, ...).
    """
    if target.exists():
        raise ArtifactError(f"{target} already exists; model versions are never overwritten")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write_files(model, staging)
        files = {p.name: sha256_file(p) for p in sorted(staging.iterdir())}
        manifest = {
            "format": FORMAT,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "encoder": {"name": model.encoder.key, "dim": model.encoder.dim},
            "weights": model.weights.as_dict(),
            "triggering": model.triggering.as_dict(),
            "retrieval": asdict(model.retrieval),
            "bank_size": len(model.bank),
            "files": files,
            **metadata,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        for path in staging.iterdir():
            fsync_path(path)
        os.rename(staging, target)
        fsync_path(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sha256_file(target / MANIFEST)


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{directory}: no manifest; the artifact is partial or not a model")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{directory}: unreadable manifest ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{directory}: unknown artifact format {manifest.get('format')!r}")
    return manifest


def verify(directory: Path, expected_checksum: str | None = None) -> dict[str, Any]:
    """Check the manifest and every file against it; return the manifest."""
    manifest = read_manifest(directory)
    if expected_checksum and sha256_file(directory / MANIFEST) != expected_checksum:
        raise ArtifactError(f"{directory}: manifest does not match the registered checksum")
    for name, digest in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{directory}: {name} is missing")
        if sha256_file(path) != digest:
            raise ArtifactError(f"{directory}: {name} is corrupt (checksum mismatch)")
    return manifest


def load_model(
    directory: Path, encoder: Encoder, expected_checksum: str | None = None
) -> tuple[SuggestionModel, dict[str, Any]]:
    """Load a verified artifact; raise ArtifactError rather than serve a damaged one."""
    manifest = verify(directory, expected_checksum)
    if manifest["encoder"]["name"] != encoder.key:
        raise ArtifactError(
            f"{directory}: trained with encoder {manifest['encoder']['name']}, "
            f"but this service runs {encoder.key}; a model is tied to its encoder's vectors: "
            "set REPLYGUARD_ENCODER__BACKEND and REPLYGUARD_ENCODER__PATH back to what it was "
            "trained with (onnx-int8 for int8 models, torch or onnx for the others); a model "
            "of an older int8 export cannot be served by this one: train in a new data folder"
        )
    try:
        adapter_arrays = np.load(directory / "adapter.npz")
        bank_meta = json.loads((directory / "bank.json").read_text())
        prompts = IntentPrompts.empty(encoder.dim)
        if (directory / "prompts.json").is_file():
            listed = json.loads((directory / "prompts.json").read_text())
            prompts = IntentPrompts(
                tuple(listed["intents"]),
                tuple(listed["texts"]),
                np.load(directory / "prompt_embeddings.npy"),
                tuple(listed.get("general", ())),
            )
        # Models written before intents existed: each reply its own unnamed cluster, tone
        # unknown, source mined (models.bank.ResponseBank).
        bank = ResponseBank(
            texts=bank_meta["texts"],
            niches=bank_meta["niches"],
            counts=np.load(directory / "bank_counts.npy"),
            prior=np.load(directory / "bank_prior.npy"),
            intents=bank_meta.get("intents", []),
            tones=bank_meta.get("tones", []),
            stances=bank_meta.get("stances", []),
            sources=bank_meta.get("sources", []),
        )
        model = SuggestionModel(
            encoder=encoder,
            adapter=Adapter(adapter_arrays["weight"], adapter_arrays["bias"]),
            bank=bank,
            bank_embeddings=np.load(directory / "bank_embeddings.npy"),
            message_embeddings=np.load(directory / "message_embeddings.npy"),
            message_reply_ids=np.load(directory / "message_reply_ids.npy"),
            # A model written before the intent signal existed scores without it: it has no
            # prompts, and its triggering threshold was chosen without that signal's weight.
            weights=ScoringWeights(**{"intent": 0.0, **manifest["weights"]}),
            retrieval=RetrievalConfig(**manifest["retrieval"]),
            bank_index=load_index(directory / "bank.faiss"),
            message_index=load_index(directory / "messages.faiss"),
            # Models written before triggering existed answer every message.
            triggering=Triggering(
                **manifest.get("triggering", {"threshold": 0.0, "target_coverage": 1.0})
            ),
            prompts=prompts,
            # Models written before the classifier: the nearest-prototype rule.
            tone_classifier=(
                ToneClassifier.from_dict(json.loads((directory / "tone.json").read_text()))
                if (directory / "tone.json").is_file()
                else None
            ),
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ArtifactError(f"{directory}: cannot be loaded ({exc})") from None
    return model, manifest


def read_bank(directory: Path, expected_checksum: str | None = None) -> ResponseBank:
    """The response bank of a verified artifact, without its encoder or indexes (for listing
    it: ``replyguard bank list``).

    Reads the optional per-reply ``intents``, ``tones`` and ``sources`` of ``bank.json``
    where the artifact has them (None where it does not).

    Raises:
        ArtifactError: the artifact is missing, partial, corrupt or unreadable.
    """
    verify(directory, expected_checksum)
    try:
        meta = json.loads((directory / "bank.json").read_text())
        return ResponseBank(
            texts=meta["texts"],
            niches=meta["niches"],
            counts=np.load(directory / "bank_counts.npy"),
            prior=np.load(directory / "bank_prior.npy"),
            intents=meta.get("intents"),
            tones=meta.get("tones"),
            sources=meta.get("sources"),
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{directory}: cannot be loaded ({exc})") from None


def _write_files(model: SuggestionModel, directory: Path) -> None:
    np.savez(directory / "adapter.npz", weight=model.adapter.weight, bias=model.adapter.bias)
    bank = {
        "texts": model.bank.texts,
        "niches": model.bank.niches,
        "intents": model.bank.intents,
        "tones": model.bank.tones,
        "stances": model.bank.stances,
        "sources": model.bank.sources,
    }
    (directory / "bank.json").write_text(json.dumps(bank, ensure_ascii=False))
    np.save(directory / "bank_counts.npy", model.bank.counts)
    np.save(directory / "bank_prior.npy", model.bank.prior)
    np.save(directory / "bank_embeddings.npy", model.bank_embeddings)
    np.save(directory / "message_embeddings.npy", model.message_embeddings)
    np.save(directory / "message_reply_ids.npy", model.message_reply_ids)
    prompts = {
        "intents": model.prompts.intents,
        "texts": model.prompts.texts,
        "general": model.prompts.general,
    }
    (directory / "prompts.json").write_text(json.dumps(prompts, ensure_ascii=False))
    np.save(directory / "prompt_embeddings.npy", model.prompts.embeddings)
    if model.tone.classifier is not None:
        (directory / "tone.json").write_text(json.dumps(model.tone.classifier.to_dict()))
    save_index(model.bank_index, directory / "bank.faiss")
    save_index(model.message_index, directory / "messages.faiss")
