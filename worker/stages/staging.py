"""The synthetic replies a generation staged (synthetic_candidates), as the filter and
deduplicate stages judge them."""

from __future__ import annotations

from sqlalchemy import Select
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.provenance import Provenance
from core.references import ExampleRef
from core.schema import CandidateStatus
from core.schema import SyntheticCandidate
from worker.data import ReplyExample
from worker.stages.records import BATCH


def staged(session: Session, generation_id: int, passed_filter: bool = False) -> list[ReplyExample]:
    """The generation's synthetic replies in the order they were written; with
    ``passed_filter``, only those no quality rule removed (deduplication's input)."""
    query = _replies(generation_id)
    if passed_filter:
        query = query.where(
            (SyntheticCandidate.status != CandidateStatus.REMOVED.value)
            | (SyntheticCandidate.removed_by == "duplicate")
        )
    return _read(session, query)


def kept(session: Session, generation_id: int) -> list[ReplyExample]:
    """The generation's kept replies (what it may train on), in the order they were
    written."""
    query = _replies(generation_id).where(SyntheticCandidate.status == CandidateStatus.KEPT.value)
    return _read(session, query)


def _replies(generation_id: int) -> Select[int, str, str, str]:
    return select(
        SyntheticCandidate.id,
        SyntheticCandidate.message,
        SyntheticCandidate.reply,
        SyntheticCandidate.niche,
    ).where(SyntheticCandidate.generation_id == generation_id)


def _read(session: Session, query: Select[int, str, str, str]) -> list[ReplyExample]:
    return [
        ReplyExample(ExampleRef.candidate(i), m, r, n, Provenance.SYNTHETIC)
        for i, m, r, n in session.execute(query.order_by(SyntheticCandidate.id))
    ]


def reset(session: Session, rows: list[ReplyExample]) -> None:
    """Undo what an interrupted run of the stage marked on its input, in the transaction that
    writes the stage's own marks: a stage's marks are all its own run's, or none."""
    for start in range(0, len(rows), BATCH):
        session.execute(
            update(SyntheticCandidate)
            .where(SyntheticCandidate.id.in_([s.id for s in rows[start : start + BATCH]]))
            .values(
                status=CandidateStatus.PENDING.value,
                removed_by="",
                duplicate_of="",
                similarity=None,
            )
        )


def mark_kept(session: Session, generation_id: int) -> int:
    """Keep every staged reply of the generation (a policy without filters, in the collapse
    experiment); return how many."""
    result = session.execute(
        update(SyntheticCandidate)
        .where(SyntheticCandidate.generation_id == generation_id)
        .values(status=CandidateStatus.KEPT.value)
    )
    return int(getattr(result, "rowcount", 0) or 0)
