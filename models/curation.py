"""The product team's hand on the response set: curated replies and blocks.

One place for the rules of these actions, used alike by the API, the dashboard and the CLI.
Every change is audited. A block is honoured by every web process within
``production_check_seconds`` (webapp.serving reads :func:`revision`) and by every model
trained after it (the response set's ``blocked`` rule); lifting it undoes both on the same
schedule (its row stays, marked lifted). A curated reply is served at once by every web
process (added to the loaded model's bank) and enters every later response set.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.actions import Conflict
from core.actions import Invalid
from core.actions import NotFound
from core.patterns import PatternError
from core.patterns import compile_pattern
from core.schema import BlockKind
from core.schema import CuratedReply as CuratedRow
from core.schema import ReplyBlock
from core.text import normalize
from models.reply_rules import Block
from models.reply_rules import CuratedReply
from models.reply_rules import Curation
from models.reply_rules import ResponseSetConfig
from models.reply_rules import refusal

MAX_PATTERN_CHARS = 200


class CurationError(Invalid):
    """A curated reply or block that cannot be added; the message says why."""


class RefusedReply(CurationError):
    """A curated reply that a rule of the response set refuses, or that is curated already."""

    code = "refused_reply"


class InvalidBlock(CurationError):
    """A block whose kind or value is not usable."""

    code = "invalid_block"


def load_curation(session: Session) -> Curation:
    """Every curated reply and every block in force (not lifted), oldest first.

    A stored pattern that RE2 refuses (blocked before patterns were RE2) is still honoured,
    with a time limit per reply (core.patterns.BlockPattern), and logged.
    """
    curated = tuple(
        CuratedReply(r.text, r.niche)
        for r in session.scalars(select(CuratedRow).order_by(CuratedRow.id))
    )
    blocks = tuple(
        Block(r.kind, r.value, stored=True)
        for r in session.scalars(
            select(ReplyBlock).where(ReplyBlock.lifted_at.is_(None)).order_by(ReplyBlock.id)
        )
    )
    return Curation(curated, blocks)


def revision(session: Session) -> tuple[int, int, int]:
    """Changes whenever a curated reply or a block is added or a block lifted: the rows of
    both tables (which only grow) and the lifted blocks (a block is lifted once)."""
    curated = session.scalar(select(func.count()).select_from(CuratedRow)) or 0
    blocks = session.scalar(select(func.count()).select_from(ReplyBlock)) or 0
    lifted = (
        session.scalar(
            select(func.count()).select_from(ReplyBlock).where(ReplyBlock.lifted_at.is_not(None))
        )
        or 0
    )
    return int(curated), int(blocks), int(lifted)


def add_curated(
    session: Session, config: ResponseSetConfig, text: str, niche: str, reason: str, actor: str
) -> CuratedRow:
    """Add a canned reply; it skips the support rule, not the others.

    Raises:
        CurationError: the reply breaks a rule (which one is named), is blocked, or is
            curated already.
    """
    text = text.strip()
    rule = refusal(text, config, load_curation(session))
    if rule is not None:
        raise RefusedReply(f"{text!r} cannot be suggested: it breaks the {rule.value} rule")
    key = normalize(text)
    if session.scalar(select(CuratedRow).where(CuratedRow.text_key == key)) is not None:
        raise RefusedReply(f"{text!r} is curated already")
    row = CuratedRow(text=text, text_key=key, niche=niche, reason=reason, created_by=actor)
    session.add(row)
    session.flush()
    audit.record(session, actor, "bank.add", text, reason, {"niche": niche})
    return row


def add_block(session: Session, kind: str, value: str, reason: str, actor: str) -> ReplyBlock:
    """Block a reply (``text``) or a pattern (``pattern``: a case-insensitive RE2 regular
    expression searched in each reply as a reader sees it, core.patterns).

    Raises:
        CurationError: an unknown kind, an empty or over-long value, a pattern that RE2
            cannot compile (backreferences and lookarounds included: the message says what
            to write instead), or one that matches an empty text (it would block every reply).
    """
    value = value.strip()
    if kind not in {k.value for k in BlockKind}:
        raise InvalidBlock(f"a block is a 'text' or a 'pattern', not {kind!r}")
    if not value or len(value) > MAX_PATTERN_CHARS:
        raise InvalidBlock(f"a block's value must be 1 to {MAX_PATTERN_CHARS} characters")
    if kind == BlockKind.PATTERN:
        try:
            compiled = compile_pattern(value)
        except PatternError as exc:
            raise InvalidBlock(str(exc)) from None
        if compiled.search("") is not None:
            # "a*", "x?", "|": found in every reply, so every suggestion would stop.
            raise InvalidBlock(
                f"{value!r} matches an empty text, so it would block every reply: make it "
                "need at least one character (e.g. 'a+' rather than 'a*')"
            )
    row = ReplyBlock(kind=kind, value=value, reason=reason, created_by=actor)
    session.add(row)
    session.flush()
    audit.record(session, actor, "bank.block", value, reason, {"kind": kind, "id": row.id})
    return row


def lift_block(session: Session, block_id: int, reason: str, actor: str) -> ReplyBlock:
    """Lift the block with id ``block_id`` (``replyguard bank list`` shows ids) and audit it.

    Every web process serves what it blocked again within ``production_check_seconds``, and
    every model trained afterwards may hold it again; the row stays, marked lifted, when, by
    whom and why.

    Raises:
        NotFound: no block has this id.
        Conflict: the block is lifted already (the message says when and by whom).
        Invalid: the reason is empty.
    """
    if not reason.strip():
        raise Invalid("say why the block is lifted (a reason): it is kept in the audit log")
    row = session.get(ReplyBlock, block_id)
    if row is None:
        raise NotFound(f"no block has id {block_id}: `replyguard bank list` shows them")
    if row.lifted_at is not None:
        raise Conflict(
            f"block {block_id} ({row.kind} {row.value!r}) was lifted at "
            f"{row.lifted_at:%Y-%m-%d %H:%M} UTC by {row.lifted_by}"
        )
    row.lifted_at = dt.datetime.now(dt.UTC)
    row.lifted_by = actor
    row.lift_reason = reason
    session.flush()
    audit.record(session, actor, "bank.lift", row.value, reason, {"kind": row.kind, "id": row.id})
    return row
