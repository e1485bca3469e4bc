"""Changing production: a generation's promotion, a reviewer's override, a rollback.

Each runs in the caller's transaction, so production, the generation's status and its
synthetic rows change together or not at all.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ingest import ExampleIn
from core.ingest import add_examples
from core.provenance import Provenance
from core.schema import CandidateStatus
from core.schema import Generation
from core.schema import GenerationStatus
from core.schema import ModelStatus
from core.schema import ModelVersion
from core.schema import SyntheticCandidate
from core.settings import Settings
from models.registry import RegistryError
from models.registry import get_version
from models.registry import production
from models.registry import promote
from worker.notify import when_production_changes


def accept_generation(
    session: Session,
    settings: Settings,
    generation: Generation,
    actor: str,
    reason: str,
    action: str = "model.promote",
) -> int:
    """Promote the generation's candidate and turn its kept synthetic replies into examples.

    Returns how many synthetic examples were added.
    """
    if generation.candidate_version is None:
        raise RegistryError(f"generation {generation.number} has no candidate model")
    kept = session.scalars(
        select(SyntheticCandidate)
        .where(
            SyntheticCandidate.generation_id == generation.id,
            SyntheticCandidate.status == CandidateStatus.KEPT.value,
        )
        .order_by(SyntheticCandidate.id)
    ).all()
    added, _ = add_examples(
        session,
        [ExampleIn(c.message, c.reply, c.niche, Provenance.SYNTHETIC) for c in kept],
        source=f"generation:{generation.number}",
        generation=generation.number,
        model_version=generation.parent_version,
    )
    promote(session, settings, generation.candidate_version, actor, reason, action=action)
    verdict = (generation.decision or {}).get("verdict", "pass")
    generation.status = (
        GenerationStatus.WARNED.value if verdict == "warn" else GenerationStatus.PASSED.value
    )
    generation.lock = None
    generation.finished_at = dt.datetime.now(dt.UTC)
    return len(added)


def override(
    session: Session, settings: Settings, version: str, actor: str, reason: str
) -> ModelVersion:
    """A reviewer promotes a version the gate blocked (or any finished candidate)."""
    reason = _required(reason, "an override needs a reason: say why the gate is wrong here")
    row = get_version(session, version)
    generation = session.scalars(
        select(Generation).where(Generation.candidate_version == version)
    ).one_or_none()
    if row.status == ModelStatus.ARCHIVED.value:
        raise RegistryError(f"{version} was production before: use rollback to return to it")
    if generation is not None and generation.status == GenerationStatus.BLOCKED.value:
        generation.decision = {
            **generation.decision,
            "overridden_by": actor,
            "override_reason": reason,
        }
        accept_generation(session, settings, generation, actor, reason, action="model.override")
    else:
        promote(session, settings, version, actor, reason, action="model.override")
    when_production_changes(session, settings, "override", version)
    return get_version(session, version)


def rollback(
    session: Session, settings: Settings, version: str, actor: str, reason: str
) -> ModelVersion:
    """Make an earlier version production again (any version that was production before)."""
    reason = _required(reason, "a rollback needs a reason")
    row = get_version(session, version)
    if row.status != ModelStatus.ARCHIVED.value:
        current = production(session)
        if current is not None and current.version == version:
            raise RegistryError(f"{version} is production already")
        raise RegistryError(
            f"{version} is {row.status}: rollback returns to a version that was production "
            "before (status archived); to promote a candidate, use promote"
        )
    promote(session, settings, version, actor, reason, action="model.rollback")
    when_production_changes(session, settings, "rollback", version)
    return row


def _required(reason: str, message: str) -> str:
    """Every change of production is audited with a reason; refuse an empty one."""
    if not reason.strip():
        raise RegistryError(message)
    return reason.strip()
