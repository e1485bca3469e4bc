"""Artifacts on disk and the registry: atomic, checked at load, one production model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.db import Database
from core.schema import AuditEntry
from core.schema import ModelStatus
from core.schema import ModelVersion
from models.artifact import ArtifactError
from models.artifact import load_model
from models.artifact import write_model
from models.encoder import Encoder
from models.registry import RegistryError
from models.registry import artifact_dir
from models.registry import production
from models.registry import promote
from models.registry import register
from worker.settings import Settings


def production_model(db: Database, settings: Settings, encoder: Encoder):  # type: ignore[no-untyped-def]
    with db.session() as session:
        row = production(session)
        assert row is not None
    model, manifest = load_model(artifact_dir(settings, row), encoder, row.checksum)
    return row, model, manifest


def test_round_trip_gives_the_same_suggestions(
    db: Database, settings: Settings, encoder: Encoder, tmp_path: Path
) -> None:
    _, model, _ = production_model(db, settings, encoder)
    checksum = write_model(model, tmp_path / "copy", {"version": "copy"})
    again, manifest = load_model(tmp_path / "copy", encoder, checksum)
    assert manifest["version"] == "copy"
    messages = ["Hello, how are you?", "What is your favourite book?"]
    assert again.suggest_many(messages, k=3) == model.suggest_many(messages, k=3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging dir left behind"


def test_versions_are_never_overwritten(
    db: Database, settings: Settings, encoder: Encoder, tmp_path: Path
) -> None:
    _, model, _ = production_model(db, settings, encoder)
    write_model(model, tmp_path / "v", {})
    with pytest.raises(ArtifactError, match="never overwritten"):
        write_model(model, tmp_path / "v", {})


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda d: (d / "bank_embeddings.npy").write_bytes(b"garbage"),
            "bank_embeddings.npy is corrupt",
        ),
        (lambda d: (d / "messages.faiss").unlink(), "messages.faiss is missing"),
        (lambda d: (d / "manifest.json").unlink(), "no manifest"),
        (lambda d: (d / "manifest.json").write_text("{"), "unreadable manifest"),
    ],
)
def test_damaged_artifacts_are_refused(
    db: Database, settings: Settings, encoder: Encoder, damage, message: str
) -> None:  # type: ignore[no-untyped-def]
    row, _, _ = production_model(db, settings, encoder)
    directory = artifact_dir(settings, row)
    damage(directory)
    with pytest.raises(ArtifactError, match=message):
        load_model(directory, encoder, row.checksum if "manifest" not in message else None)


def test_manifest_swapped_for_another_is_refused(
    db: Database, settings: Settings, encoder: Encoder
) -> None:
    row, _, _ = production_model(db, settings, encoder)
    manifest_path = artifact_dir(settings, row) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["generation"] = 5
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="does not match the registered checksum"):
        load_model(artifact_dir(settings, row), encoder, row.checksum)


def register_copy(db: Database, settings: Settings, encoder: Encoder, parent: str) -> ModelVersion:
    _, model, _ = production_model(db, settings, encoder)
    model.adapter.weight = model.adapter.weight + np.float32(0.001)
    return register(db, settings, model, generation=1, parent=parent, metadata={"training": {}})


def test_register_then_promote_archives_the_previous(
    db: Database, settings: Settings, encoder: Encoder
) -> None:
    first, _, _ = production_model(db, settings, encoder)
    candidate = register_copy(db, settings, encoder, first.version)
    assert candidate.status == ModelStatus.CANDIDATE.value
    assert candidate.artifact_path == f"models/{candidate.version}"
    with db.session() as session:
        promote(session, settings, candidate.version, "tester", "better")
    with db.session() as session:
        statuses = dict(session.execute(select(ModelVersion.version, ModelVersion.status)).all())
        audit = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert statuses == {first.version: "archived", candidate.version: "production"}
    assert audit is not None
    assert (audit.action, audit.target, audit.reason) == (
        "model.promote",
        candidate.version,
        "better",
    )
    assert audit.details == {"previous": first.version}


def test_corrupt_candidate_is_never_promoted(
    db: Database, settings: Settings, encoder: Encoder
) -> None:
    first, _, _ = production_model(db, settings, encoder)
    candidate = register_copy(db, settings, encoder, first.version)
    (artifact_dir(settings, candidate) / "adapter.npz").write_bytes(b"\0" * 10)
    with pytest.raises(RegistryError, match="refusing to promote"), db.session() as session:
        promote(session, settings, candidate.version, "tester", "why not")
    with db.session() as session:
        assert production(session).version == first.version  # type: ignore[union-attr]


def test_database_allows_one_production_model(
    db: Database, settings: Settings, encoder: Encoder
) -> None:
    first, _, _ = production_model(db, settings, encoder)
    candidate = register_copy(db, settings, encoder, first.version)
    with pytest.raises(IntegrityError), db.session() as session:
        session.get_one(ModelVersion, candidate.id).status = ModelStatus.PRODUCTION.value
        session.flush()


def test_unknown_version_says_how_to_list(db: Database, settings: Settings) -> None:
    with pytest.raises(RegistryError, match="replyguard models list"), db.session() as session:
        promote(session, settings, "v99", "tester", "x")
