"""What reviewers read: the served response set, by intent.

A model's bank (models.bank.ResponseBank) holds the replies it can suggest, with each one's
support (the distinct conversations that wrote it) and, for models built with intents, the
intent, tone and source of each reply. :func:`served_by_intent` lists the bank a web process
serves as reviewers read it: each intent with its replies, each reply with its support and
source. The API (GET /v1/bank), the command line (`replyguard bank list`) and the dashboard
all call :func:`served_listing` with the production model's bank (it reads the product team's
curation and the reviewers' edits to the intents), so they list the same thing.

A bank without intent data (models built before intents) lists every reply under no intent
(``None``) and as ``mined``, except the replies the product team curated, which are
``curated`` whatever the bank says. A curated reply that the model's bank does not hold yet
(added after the model was trained) is served all the same (webapp.serving adds it to the
served bank), so it is listed too, with support 0: no conversation was counted for it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.orm import Session

from models.bank import ResponseBank
from models.catalogue import Catalogue
from models.curation import load_curation
from models.intent_edits import load_overlay
from models.reply_rules import Curation
from models.reply_rules import surface_key

T = TypeVar("T")


class ReplySource(enum.StrEnum):
    """Where a served reply comes from."""

    # One of the catalogue's canonical replies (models/catalogue.yaml, or a reviewer's).
    CATALOGUE = "catalogue"
    # Found in the training data by the response set's rules (written by many).
    MINED = "mined"
    # Added by the product team (models.curation).
    CURATED = "curated"


@dataclass(frozen=True)
class ServedReply:
    """One reply of the served response set.

    Attributes:
        text: the reply as suggested.
        support: the bank's count: distinct conversations that wrote its meaning (0 for a
            curated reply the model was not trained with).
        source: where it comes from.
        niches: the niches it was written in.
        blocked: blocked by the product team since the model was built: never suggested.
    """

    text: str
    support: int
    source: ReplySource
    niches: tuple[str, ...]
    blocked: bool = False


@dataclass(frozen=True)
class ServedIntent:
    """An intent of the served response set and its replies, most supported first.

    Attributes:
        intent: the intent's name; None for the replies that carry no intent.
        group: its group in the catalogue given to :func:`served_by_intent` (None when that
            catalogue does not have it).
        tone: its tone, as the bank has it or else as the catalogue has it.
        replies: its served replies.
        disabled: a reviewer disabled the intent: none of its replies is suggested
            (models.intent_edits; webapp.serving applies it).
    """

    intent: str | None
    group: str | None
    tone: str | None
    replies: tuple[ServedReply, ...]
    disabled: bool = False

    @property
    def support(self) -> int:
        return sum(r.support for r in self.replies)


def served_by_intent(
    bank: ResponseBank,
    curation: Curation,
    catalogue: Catalogue | None = None,
    disabled: frozenset[str] = frozenset(),
) -> tuple[ServedIntent, ...]:
    """The served response set, by intent.

    Args:
        bank: the production model's bank as trained (webapp.serving's ``Loaded.trained``, or
            the artifact's: models.artifact.read_bank).
        curation: the product team's curated replies and blocks (models.curation).
        catalogue: the catalogue that gives each intent's group (and tone, where the bank
            has none); None: no groups.
        disabled: the names of the intents reviewers disabled
            (models.intent_edits.Overlay.disabled_names).

    Returns:
        The intents in the catalogue's order, then those the catalogue does not know (by
        name), then the replies without an intent; replies most supported first.
    """
    curated = {surface_key(c.text): c for c in curation.curated}
    replies: dict[str | None, list[ServedReply]] = {}
    tones: dict[str | None, str | None] = {}
    held: set[str] = set()
    for i, text in enumerate(bank.texts):
        key = surface_key(text)
        held.add(key)
        intent = _at(bank.intents, i)
        source = ReplySource.CURATED if key in curated else _source(_at(bank.sources, i))
        replies.setdefault(intent, []).append(
            ServedReply(
                text,
                int(bank.counts[i]),
                source,
                tuple(bank.niches[i]),
                curation.blocked(text),
            )
        )
        if tones.get(intent) is None:  # the first reply that has one gives the intent's
            tones[intent] = _at(bank.tones, i)
    for key, reply in curated.items():
        # Served without retraining (webapp.serving), unless blocked.
        if key not in held and not curation.blocked(reply.text):
            served = ServedReply(reply.text, 0, ReplySource.CURATED, (reply.niche,))
            replies.setdefault(None, []).append(served)
    order = {name: n for n, name in enumerate(catalogue.names())} if catalogue else {}
    listed = sorted(
        replies, key=lambda name: (name is None, order.get(name or "", len(order)), name or "")
    )
    result = []
    for name in listed:
        known = catalogue.get(name) if catalogue and name is not None else None
        tone = tones.get(name) or (known.tone.value if known else None)
        ranked = sorted(replies[name], key=lambda r: (-r.support, r.text))
        group = known.group if known else None
        off = name is not None and name in disabled
        result.append(ServedIntent(name, group, tone, tuple(ranked), off))
    return tuple(result)


def served_listing(session: Session, bank: ResponseBank) -> tuple[ServedIntent, ...]:
    """:func:`served_by_intent` of ``bank`` with the curation and the intents as stored now.

    Args:
        session: the database.
        bank: the production model's bank as trained.
    """
    overlay = load_overlay(session)
    return served_by_intent(
        bank, load_curation(session), overlay.catalogue(disabled=True), overlay.disabled_names()
    )


def _at(values: Sequence[T] | None, index: int) -> T | None:
    """``values[index]``, or None when the bank has no such values (or too few)."""
    if values is None or index >= len(values):
        return None
    return values[index]


def _source(value: str | None) -> ReplySource:
    """A bank's source, ``mined`` when it has none (a model built before intents)."""
    try:
        return ReplySource(value) if value else ReplySource.MINED
    except ValueError:
        return ReplySource.MINED
