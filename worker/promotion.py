"""Changing production: a generation's promotion, a reviewer's override, a rollback.

Each runs in the caller's transaction, so production, the generation's status and its
synthetic rows change together or not at all. Every rule of these actions is here, raised as
the refusals of core/actions.py, so that the API, the dashboard and the command line enforce
the same ones (``check_override`` and ``check_rollback`` let the dashboard say so before it
asks for a reason).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.actions import Conflict
from core.actions import Invalid
from core.actions import NotFound
from core.generations import end_generation
from core.generations import generation_of
from core.generations import holds_lock
from core.ingest import ExampleIn
from core.ingest import add_examples
from core.provenance import Provenance
from core.schema import CandidateStatus
from core.schema import Generation
from core.schema import GenerationStatus
from core.schema import ModelStatus
from core.schema import ModelVersion
from core.schema import SyntheticCandidate
from models.registry import get_version
from models.registry import promote
from worker.notify import when_production_changes
from worker.settings import Settings


def accept_generation(
    session: Session,
    settings: Settings,
    generation: Generation,
    actor: str,
    reason: str,
    action: str = "model.promote",
) -> int:
    """Promote the generation's candidate and turn its kept synthetic replies into examples.

    Returns how many synthetic examples were added. Raises Conflict when the generation has
    no candidate or the registry refuses it (a corrupt artifact).
    """
    if generation.candidate_version is None:
        raise Conflict(f"generation {generation.number} has no candidate model")
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
    end_generation(
        generation, GenerationStatus.WARNED if verdict == "warn" else GenerationStatus.PASSED
    )
    return len(added)


def block_generation(session: Session, generation: Generation) -> None:
    """The gate (or a change of production meanwhile) blocked the generation: it ends, and
    its candidate waits for review as blocked. The production model is never demoted: if the
    candidate became production while the generation ran, it stays production."""
    if generation.candidate_version is not None:
        candidate = get_version(session, generation.candidate_version)
        if candidate.status != ModelStatus.PRODUCTION.value:
            candidate.status = ModelStatus.BLOCKED.value
    end_generation(generation, GenerationStatus.BLOCKED)


def check_override(session: Session, version: str) -> tuple[ModelVersion, Generation | None]:
    """The rules of promoting ``version`` over the gate; return it and its generation.

    Raises NotFound for an unknown version and Conflict unless it is a candidate or blocked
    version whose generation is not running any more (while it runs the gate has not decided,
    and the generation's own promote stage still owns the candidate)."""
    row = _version(session, version)
    generation = generation_of(session, version)
    if row.status == ModelStatus.PRODUCTION.value:
        raise Conflict(f"{version} is already production")
    if row.status == ModelStatus.ARCHIVED.value:
        raise Conflict(f"{version} was production before: use rollback to return to it")
    if row.status not in PROMOTABLE:
        raise Conflict(
            f"{version} is {row.status}: only a candidate or a blocked version can be promoted"
        )
    if generation is not None and holds_lock(generation):
        raise Conflict(
            f"generation {generation.number} is still {generation.status}: wait for the "
            f"gate's decision on {version} before overriding it"
        )
    return row, generation


def override(
    session: Session, settings: Settings, version: str, actor: str, reason: str
) -> ModelVersion:
    """A reviewer promotes a version the gate blocked (or a finished generation's candidate).

    Raises as :func:`check_override` does, and Invalid for an empty reason."""
    _row, generation = check_override(session, version)
    reason = _required(reason, "an override needs a reason: say why the gate is wrong here")
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


def check_rollback(session: Session, version: str) -> ModelVersion:
    """The rules of rolling back to ``version``: it exists (else NotFound) and was production
    before (status archived; else Conflict)."""
    row = _version(session, version)
    if row.status == ModelStatus.PRODUCTION.value:
        raise Conflict(f"{version} is production already")
    if row.status != ModelStatus.ARCHIVED.value:
        raise Conflict(
            f"{version} is {row.status}: rollback returns to a version that was production "
            "before (status archived); to promote a candidate, use promote"
        )
    return row


def rollback(
    session: Session, settings: Settings, version: str, actor: str, reason: str
) -> ModelVersion:
    """Make an earlier version production again (any version that was production before).

    Raises as :func:`check_rollback` does, and Invalid for an empty reason."""
    row = check_rollback(session, version)
    reason = _required(reason, "a rollback needs a reason")
    promote(session, settings, version, actor, reason, action="model.rollback")
    when_production_changes(session, settings, "rollback", version)
    return row


# Statuses a version may be promoted from over the gate.
PROMOTABLE = (ModelStatus.CANDIDATE.value, ModelStatus.BLOCKED.value)


def _version(session: Session, version: str) -> ModelVersion:
    row = session.scalars(select(ModelVersion).where(ModelVersion.version == version)).one_or_none()
    if row is None:
        raise NotFound(f"no model version {version!r}; `replyguard models list` shows them")
    return row


def _required(reason: str, message: str) -> str:
    """Every change of production is audited with a reason; refuse an empty one."""
    if not reason.strip():
        raise Invalid(message)
    return reason.strip()
