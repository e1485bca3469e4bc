"""``replyguard backup`` and ``replyguard restore``: the database and every model artifact it
refers to, checked on the way in and on the way out.

The database half (copy, manifest, restore of the database) is core/backup.py; this module
adds the artifacts. Artifacts are immutable folders that are never deleted, so the ones that
a consistent copy of the database refers to can be copied after it, while the service runs,
and still belong to it.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.backup import DATA_FOLDERS
from core.backup import DATABASE_FILES
from core.backup import BackupError
from core.backup import check_database_copy
from core.backup import copy_file
from core.backup import file_entry
from core.backup import holds_data
from core.backup import new_backup_folder
from core.backup import read_manifest
from core.backup import restore_database
from core.backup import snapshot_database
from core.backup import total_size
from core.backup import verify_files
from core.backup import write_manifest
from core.db import Database
from core.files import fsync_path
from core.generations import unfinished_ids
from core.progress import BYTES
from core.progress import Progress
from core.settings import CoreSettings
from models.artifact import ArtifactError
from models.artifact import verify
from models.registry import artifact_dir
from models.registry import production

__all__ = ["BackupError", "RestoreReport", "backup", "restore"]


def backup(settings: CoreSettings, target: Path, show_progress: bool = False) -> dict[str, Any]:
    """Back up the database and every model artifact it refers to into the new folder
    ``target``; return the manifest written.

    Safe while the service runs. Raises BackupError (with nothing left in ``target``) when
    ``target`` has files in it, the database cannot be read, ``pg_dump`` is missing, or an
    artifact is missing or damaged in the data folder.
    """
    with new_backup_folder(target):
        snapshot = snapshot_database(settings, target)
        database = target / DATABASE_FILES[snapshot.kind]
        sources = [
            (ref, _artifact_source(settings, ref.version, ref.path)) for ref in snapshot.artifacts
        ]
        files_to_copy = [
            (ref, path) for ref, folder in sources for path in sorted(folder.iterdir())
        ]
        size = database.stat().st_size + sum(path.stat().st_size for _, path in files_to_copy)
        label = f"backup: copying the database and {len(sources)} model artifacts"
        with _bar(size, label, show_progress) as bar:
            files = {database.name: file_entry(database, bar.update)}
            for ref, path in files_to_copy:
                name = f"{ref.path}/{path.name}"
                files[name] = copy_file(path, target / name, bar.update)
        for ref in snapshot.artifacts:
            try:
                verify(target / ref.path, ref.checksum)
            except ArtifactError as exc:
                raise BackupError(
                    f"model {ref.version}: its artifact is damaged in the data folder ({exc})"
                ) from None
            fsync_path(target / ref.path)
        return write_manifest(target, snapshot, files)


@dataclass(frozen=True)
class RestoreReport:
    """What a restore did: ``production`` is the production version now served;
    ``replaced`` what was overwritten (empty without --force); ``unfinished`` the ids of
    generations that were queued or running when the backup was taken (no worker runs them
    now: resume or fail them)."""

    production: str | None
    examples: int
    artifacts: int
    alembic_revision: str | None
    replaced: list[str]
    unfinished: list[int]


def restore(
    settings: CoreSettings, source: Path, force: bool = False, show_progress: bool = False
) -> RestoreReport:
    """Restore the backup folder ``source`` into ``settings``' database and data folder.

    Everything is checked before anything changes; then the artifacts are staged inside the
    data folder, the database is replaced in one transaction, and the staged artifacts take
    the place of the data folder's ``models`` (and its ``generations`` working files go), so
    the restored database and its artifacts are served together. Stop the web servers and
    workers first.

    Raises BackupError, having changed nothing, when the backup is partial or damaged (no
    manifest, unknown format, a checksum or size mismatch, a missing file or artifact, a
    database copy that cannot be read), made by a newer version or for the other kind of
    database, or when the target holds data and ``force`` is False (the message lists it).
    """
    manifest = read_manifest(source, settings)
    with _bar(total_size(manifest), "restore: checking the backup's files", show_progress) as bar:
        verify_files(source, manifest, bar.update)
    artifacts: dict[str, Any] = manifest["artifacts"]
    for version, entry in artifacts.items():
        try:
            verify(source / entry["path"], entry["checksum"])
        except ArtifactError as exc:
            raise BackupError(f"model {version}: {exc}") from None
    snapshot = check_database_copy(source, manifest)
    if snapshot is not None:
        missing = [r.version for r in snapshot.artifacts if r.version not in artifacts]
        if missing:
            raise BackupError(
                f"the backup's database refers to artifacts it does not hold: {', '.join(missing)}"
            )
    replaced = holds_data(settings)
    if replaced and not force:
        raise BackupError(
            "the target already holds data, and restoring would overwrite: "
            + "; ".join(replaced)
            + ". Nothing was changed; give --force to replace it with the backup"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=settings.data_dir))
    try:
        _stage_artifacts(source, manifest, staging, show_progress)
        restore_database(settings, source, manifest)
        _swap_folders(settings.data_dir, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _report(settings, manifest, replaced)


def _stage_artifacts(
    source: Path, manifest: dict[str, Any], staging: Path, show_progress: bool
) -> None:
    """Copy the backup's artifacts to ``staging/models`` and check the copies."""
    names = [n for n in manifest["files"] if n.startswith("models/")]
    size = sum(int(manifest["files"][n]["size"]) for n in names)
    (staging / "models").mkdir()
    with _bar(size, "restore: copying the backup's model artifacts", show_progress) as bar:
        for name in names:
            copy_file(source / name, staging / name, bar.update)
    for version, entry in manifest["artifacts"].items():
        try:
            verify(staging / entry["path"], entry["checksum"])
        except ArtifactError as exc:
            raise BackupError(f"model {version}: copying its artifact failed ({exc})") from None


def _swap_folders(data_dir: Path, staging: Path) -> None:
    """Put the staged ``models`` in place; move the old data folders into ``staging``, which
    the caller deletes."""
    for name in DATA_FOLDERS:
        current = data_dir / name
        if current.exists():
            current.rename(staging / f"replaced-{name}")
    (staging / "models").rename(data_dir / "models")
    fsync_path(data_dir)


def _report(settings: CoreSettings, manifest: dict[str, Any], replaced: list[str]) -> RestoreReport:
    """Bring the restored schema up to date and say what is now served."""
    db = Database(settings)
    try:
        db.upgrade()
        with db.session() as session:
            current = production(session)
            if current is not None:
                try:
                    verify(artifact_dir(settings, current), current.checksum)
                except ArtifactError as exc:
                    raise BackupError(f"restored, but production cannot be served: {exc}") from None
            unfinished = unfinished_ids(session)
            return RestoreReport(
                production=current.version if current else None,
                examples=int(manifest["counts"].get("examples", 0)),
                artifacts=len(manifest["artifacts"]),
                alembic_revision=manifest["database"]["alembic_revision"],
                replaced=replaced,
                unfinished=unfinished,
            )
    finally:
        db.dispose()


def _artifact_source(settings: CoreSettings, version: str, path: str) -> Path:
    if not path.startswith("models/"):
        raise BackupError(f"model {version}: its artifact path {path!r} is not under models/")
    folder = settings.data_dir / path
    if not folder.is_dir():
        raise BackupError(
            f"model {version}: its artifact {folder} is missing from the data folder; the "
            "database refers to it, so no consistent backup can be made without it"
        )
    return folder


def _bar(total: int, label: str, show: bool) -> Progress:
    """The console line of one copy or check, in bytes (core.progress: a bar on a terminal,
    plain lines in a file)."""
    return Progress(label, total, BYTES, show=show)
