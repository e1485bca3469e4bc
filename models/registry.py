"""The model registry: versions in the database, artifacts on disk, one production model."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from core import audit
from core.actions import Conflict
from core.actions import NotFound
from core.db import Database
from core.schema import ModelStatus
from core.schema import ModelVersion
from core.settings import CoreSettings
from models.artifact import ArtifactError
from models.artifact import verify
from models.artifact import write_model
from models.suggester import SuggestionModel


class RegistryError(Conflict):
    """A registry action cannot be done in the registry's current state (the version is
    production already, unfinished, or its artifact is damaged); the message says why and
    what to do."""


class UnknownVersion(NotFound, RegistryError):
    """No model version has the name given."""


# A staging folder untouched this long belongs to a writer that died.
STALE_STAGING_SECONDS = 600


def remove_stale_staging(models_dir: Path) -> list[Path]:
    """Delete the temporary folders of artifacts whose writer was killed mid-write."""
    if not models_dir.is_dir():
        return []
    cutoff = time.time() - STALE_STAGING_SECONDS
    stale = [
        p
        for p in models_dir.iterdir()
        if p.name.startswith(".") and p.is_dir() and p.stat().st_mtime < cutoff
    ]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def production(session: Session) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).where(ModelVersion.status == ModelStatus.PRODUCTION.value)
    ).one_or_none()


def find_version(session: Session, version: str) -> ModelVersion | None:
    """The registry's row of ``version``; None when there is no such version."""
    return session.scalars(
        select(ModelVersion).where(ModelVersion.version == version)
    ).one_or_none()


def get_version(session: Session, version: str) -> ModelVersion:
    """The registry's row of ``version``; raises UnknownVersion when there is none."""
    row = find_version(session, version)
    if row is None:
        raise UnknownVersion(f"no model version {version!r}; `replyguard models list` shows them")
    return row


def register(
    db: Database,
    settings: CoreSettings,
    model: SuggestionModel,
    generation: int,
    parent: str | None,
    metadata: dict[str, Any],
    record: Callable[[Session, ModelVersion], None] | None = None,
) -> ModelVersion:
    """Write the model's artifact and record it as a candidate.

    The row exists as ``building`` while the artifact is written, so a crash leaves a visible
    row and no half-written artifact (the artifact appears by an atomic rename or not at all).
    ``record`` runs in the transaction that makes the row a candidate, so whatever points at
    the candidate (a generation) is written with it or not at all: a crash cannot leave a
    candidate that nothing refers to.
    """
    remove_stale_staging(settings.models_dir)
    with db.session() as session:
        # A row left 'building' by a process killed mid-write is not coming back.
        session.execute(
            update(ModelVersion)
            .where(
                ModelVersion.generation == generation,
                ModelVersion.status == ModelStatus.BUILDING.value,
            )
            .values(status=ModelStatus.FAILED.value)
        )
        row = ModelVersion(generation=generation, parent=parent, version="")
        session.add(row)
        session.flush()
        row.version = f"v{row.id}"
    target = settings.models_dir / row.version
    try:
        checksum = write_model(
            model,
            target,
            {"version": row.version, "parent": parent, "generation": generation, **metadata},
        )
    except BaseException:
        with db.session() as session:
            session.execute(
                update(ModelVersion)
                .where(ModelVersion.id == row.id)
                .values(status=ModelStatus.FAILED.value)
            )
        raise
    with db.session() as session:
        stored = session.get_one(ModelVersion, row.id)
        # Relative to the data folder, so a data folder can be moved or copied whole.
        stored.artifact_path = str(target.relative_to(settings.data_dir))
        stored.checksum = checksum
        stored.status = ModelStatus.CANDIDATE.value
        if record is not None:
            record(session, stored)
    return stored


def artifact_dir(settings: CoreSettings, row: ModelVersion) -> Path:
    return settings.data_dir / row.artifact_path


def promote(
    session: Session,
    settings: CoreSettings,
    version: str,
    actor: str,
    reason: str,
    action: str = "model.promote",
) -> ModelVersion:
    """Make ``version`` production in one transaction; the previous one is archived.

    The artifact is verified first: a corrupt or partial artifact is never promoted.
    """
    row = get_version(session, version)
    if row.status == ModelStatus.PRODUCTION.value:
        raise RegistryError(f"{version} is already production")
    if row.status in (ModelStatus.BUILDING.value, ModelStatus.FAILED.value):
        raise RegistryError(f"{version} is {row.status}: only a finished model can be promoted")
    try:
        verify(artifact_dir(settings, row), row.checksum)
    except ArtifactError as exc:
        raise RegistryError(f"refusing to promote {version}: {exc}") from None
    previous = production(session)
    if previous is not None:
        previous.status = ModelStatus.ARCHIVED.value
        # Flush first: the unique index allows one production row at any instant.
        session.flush()
    row.status = ModelStatus.PRODUCTION.value
    row.promoted_at = dt.datetime.now(dt.UTC)
    session.flush()
    audit.record(
        session,
        actor,
        action,
        target=version,
        reason=reason,
        details={"previous": previous.version if previous else None},
    )
    return row


def versions(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))
