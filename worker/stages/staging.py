"""The synthetic replies a generation staged (synthetic_candidates), as the filter and
deduplicate stages judge them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.schema import CandidateStatus
from core.schema import SyntheticCandidate
from worker.stages.records import BATCH


@dataclass(frozen=True)
class Staged:
    """A staged synthetic reply: its row id, the prompt and the reply production wrote."""

    id: int
    message: str
    reply: str


def staged(session: Session, generation_id: int, passed_filter: bool = False) -> list[Staged]:
    """The generation's synthetic replies in the order they were written; with
    ``passed_filter``, only those no quality rule removed (deduplication's input)."""
    query = select(
        SyntheticCandidate.id, SyntheticCandidate.message, SyntheticCandidate.reply
    ).where(SyntheticCandidate.generation_id == generation_id)
    if passed_filter:
        query = query.where(
            (SyntheticCandidate.status != CandidateStatus.REMOVED.value)
            | (SyntheticCandidate.removed_by == "duplicate")
        )
    return [Staged(*row) for row in session.execute(query.order_by(SyntheticCandidate.id))]


def reset(session: Session, rows: list[Staged]) -> None:
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


def kept_ids(session: Session, generation_id: int) -> list[int]:
    """Ids of the generation's kept replies, in the order they were written."""
    return list(
        session.scalars(
            select(SyntheticCandidate.id)
            .where(
                SyntheticCandidate.generation_id == generation_id,
                SyntheticCandidate.status == CandidateStatus.KEPT.value,
            )
            .order_by(SyntheticCandidate.id)
        )
    )
