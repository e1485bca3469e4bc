"""The product team's hand on the response set: curated replies and blocks.

One place for the rules of both actions, used alike by the API, the dashboard and the CLI.
Every change is audited. A block is honoured by every web process within
``production_check_seconds`` (webapp.serving reads :func:`revision`) and by every model
trained after it (the response set's ``blocked`` rule); a curated reply is served at once by
every web process (added to the loaded model's bank) and enters every later response set.
"""

from __future__ import annotations

import re

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.actions import Invalid
from core.schema import BlockKind
from core.schema import CuratedReply as CuratedRow
from core.schema import ReplyBlock
from core.text import normalize
from models.response_set import Block
from models.response_set import CuratedReply
from models.response_set import Curation
from models.response_set import ResponseSetConfig
from models.response_set import refusal

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
    """Every curated reply and block, oldest first."""
    curated = tuple(
        CuratedReply(r.text, r.niche)
        for r in session.scalars(select(CuratedRow).order_by(CuratedRow.id))
    )
    blocks = tuple(
        Block(r.kind, r.value) for r in session.scalars(select(ReplyBlock).order_by(ReplyBlock.id))
    )
    return Curation(curated, blocks)


def revision(session: Session) -> tuple[int, int]:
    """Changes whenever a curated reply or block is added (both tables only grow)."""
    curated = session.scalar(select(func.count()).select_from(CuratedRow)) or 0
    blocks = session.scalar(select(func.count()).select_from(ReplyBlock)) or 0
    return int(curated), int(blocks)


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
    """Block a reply (``text``) or a pattern (``pattern``: a case-insensitive regular
    expression searched in each reply).

    Raises:
        CurationError: an unknown kind, an empty or over-long value, or a pattern that is
            not a valid regular expression.
    """
    value = value.strip()
    if kind not in {k.value for k in BlockKind}:
        raise InvalidBlock(f"a block is a 'text' or a 'pattern', not {kind!r}")
    if not value or len(value) > MAX_PATTERN_CHARS:
        raise InvalidBlock(f"a block's value must be 1 to {MAX_PATTERN_CHARS} characters")
    if kind == BlockKind.PATTERN:
        try:
            re.compile(value)
        except re.error as exc:
            raise InvalidBlock(f"{value!r} is not a regular expression: {exc}") from None
    row = ReplyBlock(kind=kind, value=value, reason=reason, created_by=actor)
    session.add(row)
    session.flush()
    audit.record(session, actor, "bank.block", value, reason, {"kind": kind})
    return row
