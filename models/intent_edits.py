"""Reviewers' edits to the catalogue of intents: add an intent, add a reply to one, rename,
disable and enable.

The shipped catalogue (models/catalogue.yaml, models.catalogue) is code, reviewed and
released; what reviewers change in production is stored beside it, in the database, as an
ordered list of edits (core.schema.IntentEdit: who, when, why) applied over the file. The
*effective* catalogue is the file with the edits applied (:func:`effective_catalogue`):
renamed intents under their new names, disabled ones left out, added intents and replies in.

One place for the rules of every action, used alike by the API (webapp/intents.py), the
dashboard and the command line: the name rules and the state rules (:func:`_apply`: an
unknown intent, a name taken, an intent disabled already), then the catalogue's own rules
(models.catalogue.validate, run on the effective catalogue the edit would make: 2 to 6
replies, each passing rules 1-4 of the response set with the product team's blocks, calm
sympathetic replies, no reply repeated within or across intents, a ``no`` beside every
``yes``). A refusal is a core.actions error (the API's 4xx, the dashboard's page, the command
line's message), saying what to do. Every edit is audited (core.audit), and :func:`revision`
changes with each, so every web process can notice within seconds (webapp.serving reads the
curation's revision the same way).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.orm import Session

from core import audit
from core.actions import ActionRefused
from core.actions import Conflict
from core.actions import Invalid
from core.actions import NotFound
from core.schema import IntentAction
from core.schema import IntentEdit as EditRow
from core.text import REASON
from core.text import InvalidText
from core.text import clean_text
from models.catalogue import Catalogue
from models.catalogue import Intent
from models.catalogue import Stance
from models.catalogue import Tone
from models.catalogue import load_catalogue
from models.catalogue import validate
from models.curation import load_curation
from models.reply_rules import ResponseSetConfig

# The catalogue's rule for names and groups (models.catalogue.validate checks the same).
SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
# The longest intent or group name: a label in a list, well inside its 100-character column.
MAX_NAME_CHARS = 64
# The PostgreSQL advisory lock key of intent edits ("Intnt" in ASCII): two reviewers editing
# at once are checked one after the other, so both cannot take the same name.
EDIT_LOCK = 0x496E746E74
# Where to see the intents, in every front end's words.
_LISTED = "the intents are listed by `replyguard intents list`, GET /v1/intents and the dashboard"


class Source(enum.StrEnum):
    """Where an intent, or one of its replies, comes from."""

    CATALOGUE = "catalogue"
    REVIEWER = "reviewer"


class InvalidIntent(Invalid):
    """An edit whose name, group, tone, stance or replies break a rule (422)."""

    code = "invalid_intent"


class UnknownIntent(NotFound):
    """The edit names an intent that does not exist (404)."""

    code = "unknown_intent"


class IntentConflict(Conflict):
    """The edit does not fit the intents as they are: a name taken, an intent disabled
    already or not disabled (409)."""

    code = "intent_conflict"


@dataclass(frozen=True)
class Edit:
    """One reviewer edit, as :func:`apply_edits` reads it (a core.schema.IntentEdit row).

    Attributes:
        action: what was done.
        intent: the intent's name when the edit was made (for ``add``: the new intent's).
        new_name: ``rename``: the new name.
        group, tone, stance: ``add``: the new intent's.
        replies: ``add``: the new intent's replies; ``add_reply``: the one reply added.
        id, reason, created_by, created_at: the stored row's (0 and empty before it is).
    """

    action: IntentAction
    intent: str
    new_name: str | None = None
    group: str | None = None
    tone: str | None = None
    stance: str | None = None
    replies: tuple[str, ...] = ()
    id: int = 0
    reason: str = ""
    created_by: str = ""
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class IntentState:
    """One intent of the effective catalogue, with what reviewers did to it.

    Attributes:
        intent: the intent as it is now (its current name, every reply).
        source: ``catalogue`` (shipped in models/catalogue.yaml) or ``reviewer`` (added).
        disabled: left out of the effective catalogue.
        shipped_name: its name in the shipped catalogue (None for an intent reviewers added).
        added: the replies reviewers added to it.
    """

    intent: Intent
    source: Source
    disabled: bool = False
    shipped_name: str | None = None
    added: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.intent.name

    def reply_source(self, reply: str) -> Source:
        """Where ``reply`` (one of this intent's) comes from."""
        if self.source == Source.REVIEWER or reply in self.added:
            return Source.REVIEWER
        return Source.CATALOGUE


@dataclass(frozen=True)
class Skipped:
    """A stored edit that no longer applies to the shipped catalogue (a newer release renamed
    or removed the intent it names, or took the name it gives), and why."""

    edit: Edit
    why: str


@dataclass(frozen=True)
class Overlay:
    """The shipped catalogue with the reviewers' edits applied.

    Attributes:
        version: the catalogue's format version.
        intents: every intent, disabled ones included: the shipped ones in the file's order
            (renamed in place), then those reviewers added, in the order they were added.
        skipped: stored edits that no longer apply (:class:`Skipped`), oldest first.
    """

    version: int
    intents: tuple[IntentState, ...]
    skipped: tuple[Skipped, ...] = ()

    def catalogue(self, disabled: bool = False) -> Catalogue:
        """The effective catalogue: every intent that is not disabled (with ``disabled``, the
        disabled ones too, for looking names up)."""
        return Catalogue(
            self.version, tuple(s.intent for s in self.intents if disabled or not s.disabled)
        )

    def get(self, name: str) -> IntentState | None:
        """The intent called ``name`` now (disabled or not), or None."""
        return next((s for s in self.intents if s.name == name), None)

    def groups(self) -> dict[str, tuple[IntentState, ...]]:
        """The intents of each group, groups in order of their first intent."""
        grouped: dict[str, list[IntentState]] = {}
        for state in self.intents:
            grouped.setdefault(state.intent.group, []).append(state)
        return {group: tuple(members) for group, members in grouped.items()}

    def disabled_names(self) -> frozenset[str]:
        """The names a served model's bank may carry for a disabled intent: its name now and
        its shipped name (a model is trained with the names of its day)."""
        names = {s.name for s in self.intents if s.disabled}
        names |= {s.shipped_name for s in self.intents if s.disabled and s.shipped_name}
        return frozenset(names)

    def current_names(self) -> dict[str, str]:
        """Each shipped intent's name now, by its shipped name (disabled ones included): what
        a model trained on the shipped names reads its intents as."""
        return {s.shipped_name: s.name for s in self.intents if s.shipped_name is not None}


def apply_edits(catalogue: Catalogue, edits: Iterable[Edit]) -> Overlay:
    """The catalogue with ``edits`` applied in order (pure: nothing is read or written).

    An edit that does not apply (it names an intent the catalogue no longer has, or gives a
    name it now has: the shipped file changed after the edit was made) is left out and listed
    in :attr:`Overlay.skipped`; it never stops the others.

    Args:
        catalogue: the shipped catalogue (models.catalogue.load_catalogue).
        edits: the reviewers' edits, oldest first (:func:`load_edits`).

    Returns:
        Every intent with its source and state; :meth:`Overlay.catalogue` is the effective one.
    """
    states = [IntentState(i, Source.CATALOGUE, shipped_name=i.name) for i in catalogue.intents]
    skipped: list[Skipped] = []
    for edit in edits:
        try:
            states = _apply(states, edit)
        except ActionRefused as exc:
            skipped.append(Skipped(edit, str(exc)))
    return Overlay(catalogue.version, tuple(states), tuple(skipped))


def effective_catalogue(catalogue: Catalogue, edits: Iterable[Edit]) -> Catalogue:
    """The catalogue reviewers made: ``catalogue`` with ``edits`` applied, in order.

    Renamed intents carry their new names (in their place in the file's order), disabled
    intents are left out, added intents come after the shipped ones (in the order they were
    added) and added replies after an intent's own. Edits that no longer apply are left out
    (:func:`apply_edits`). Pure.

    Args:
        catalogue: the shipped catalogue.
        edits: the reviewers' edits, oldest first.

    Returns:
        The effective catalogue (the same format version).
    """
    return apply_edits(catalogue, edits).catalogue()


def _apply(states: list[IntentState], edit: Edit) -> list[IntentState]:
    """``states`` after ``edit``: the rules of names and state of every action.

    Raises:
        InvalidIntent: a name or group that is not snake_case or is too long, an unknown
            tone or stance.
        UnknownIntent: the intent named does not exist.
        IntentConflict: the name is taken, or the intent is (not) disabled already.
    """
    taken = {s.name: s for s in states}
    if edit.action == IntentAction.ADD:
        _check_name(edit.intent, "name")
        _check_name(edit.group or "", "group")
        _check_free(edit.intent, taken)
        intent = Intent(
            edit.intent,
            edit.group or "",
            _tone(edit.tone),
            _stance(edit.stance),
            tuple(edit.replies),
        )
        return [*states, IntentState(intent, Source.REVIEWER)]
    state = taken.get(edit.intent)
    if state is None:
        raise UnknownIntent(f"no intent is called {edit.intent!r}: {_LISTED}")
    if edit.action == IntentAction.ADD_REPLY:
        if state.disabled:
            raise IntentConflict(
                f"intent {state.name!r} is disabled: enable it before adding replies to it"
            )
        changed = dataclasses.replace(
            state,
            intent=dataclasses.replace(
                state.intent, replies=(*state.intent.replies, *edit.replies)
            ),
            added=(*state.added, *edit.replies),
        )
    elif edit.action == IntentAction.RENAME:
        new_name = edit.new_name or ""
        _check_name(new_name, "new name")
        if new_name == state.name:
            raise IntentConflict(f"intent {state.name!r} is called that already")
        _check_free(new_name, taken)
        changed = dataclasses.replace(
            state, intent=dataclasses.replace(state.intent, name=new_name)
        )
    elif edit.action == IntentAction.DISABLE:
        if state.disabled:
            raise IntentConflict(f"intent {state.name!r} is disabled already")
        changed = dataclasses.replace(state, disabled=True)
    elif edit.action == IntentAction.ENABLE:
        if not state.disabled:
            raise IntentConflict(
                f"intent {state.name!r} is not disabled: there is nothing to enable"
            )
        changed = dataclasses.replace(state, disabled=False)
    else:  # pragma: no cover - the database's check constraint allows no other action
        raise InvalidIntent(f"unknown edit {edit.action!r}")
    return [changed if s is state else s for s in states]


def _check_name(name: str, what: str) -> None:
    if not SNAKE_CASE.fullmatch(name) or len(name) > MAX_NAME_CHARS:
        raise InvalidIntent(
            f"the {what} {name!r} is not usable: write it in snake_case (lower-case letters, "
            f"digits and single underscores, starting with a letter, such as 'running_late'), "
            f"at most {MAX_NAME_CHARS} characters"
        )


def _check_free(name: str, taken: dict[str, IntentState]) -> None:
    other = taken.get(name)
    if other is None:
        return
    if other.disabled:
        raise IntentConflict(
            f"an intent is called {name!r} already (it is disabled): enable it, or choose "
            "another name"
        )
    raise IntentConflict(
        f"an intent is called {name!r} already: choose another name, or add replies to it"
    )


def _tone(value: str | None) -> Tone:
    try:
        return Tone(value or "")
    except ValueError:
        raise InvalidIntent(f"{value!r} is not a tone: one of {', '.join(Tone)}") from None


def _stance(value: str | None) -> Stance | None:
    if value is None or value == "":
        return None
    try:
        return Stance(value)
    except ValueError:
        raise InvalidIntent(
            f"{value!r} is not a stance: 'yes', 'no', or none for an intent that answers "
            "no question"
        ) from None


# --- stored edits -----------------------------------------------------------------------


def load_edits(session: Session) -> tuple[Edit, ...]:
    """Every stored edit, oldest first."""
    return tuple(_edit(row) for row in session.scalars(select(EditRow).order_by(EditRow.id)))


def load_overlay(session: Session, catalogue: Catalogue | None = None) -> Overlay:
    """The catalogue with every stored edit applied.

    Args:
        session: the database.
        catalogue: the shipped catalogue; None reads the one in this package.
    """
    return apply_edits(catalogue or load_catalogue(), load_edits(session))


def revision(session: Session) -> tuple[int, int]:
    """Changes with every edit: the number of edits and the newest one's id (the table only
    grows). A web process that keeps the effective catalogue compares it, as
    webapp.serving compares models.curation.revision."""
    count, newest = session.execute(select(func.count(), func.max(EditRow.id))).one()
    return int(count or 0), int(newest or 0)


def _edit(row: EditRow) -> Edit:
    return Edit(
        action=IntentAction(row.action),
        intent=row.intent,
        new_name=row.new_name,
        group=row.intent_group,
        tone=row.tone,
        stance=row.stance,
        replies=tuple(row.replies or ()),
        id=row.id,
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
    )


# --- the actions ---------------------------------------------------------------------------


def add_intent(
    session: Session,
    config: ResponseSetConfig,
    name: str,
    group: str,
    tone: str,
    stance: str | None,
    replies: Sequence[str],
    reason: str,
    actor: str,
    catalogue: Catalogue | None = None,
) -> IntentState:
    """Add an intent (audited as ``intents.add``).

    Args:
        session: the database; the edit is written in its transaction.
        config: the response set's rules (settings.response_set).
        name: the new intent's name: snake_case, not any intent's now (disabled ones too).
        group: the group it is listed under: snake_case (a new group or an existing one).
        tone: one of models.catalogue.Tone's values.
        stance: ``yes``, ``no`` or None.
        replies: 2 to 6 replies (surrounding spaces removed), each passing the response set's
            rules 1-4 and the catalogue's (calm when sympathetic, in no other intent).
        reason: why; recorded with the edit and in the audit log.
        actor: who.
        catalogue: the shipped catalogue; None reads the one in this package.

    Returns:
        The intent as added.

    Raises:
        InvalidIntent: a bad name, group, tone or stance, a missing reason, or replies that
            break a rule (each named).
        IntentConflict: the name is taken.
    """
    edit = Edit(
        IntentAction.ADD,
        name.strip(),
        group=group.strip(),
        tone=tone,
        stance=stance or None,
        replies=tuple(r.strip() for r in replies),
    )
    return _record(session, config, catalogue, edit, reason, actor)


def add_reply(
    session: Session,
    config: ResponseSetConfig,
    name: str,
    reply: str,
    reason: str,
    actor: str,
    catalogue: Catalogue | None = None,
) -> IntentState:
    """Add a reply to an intent (audited as ``intents.add_reply``).

    Raises:
        UnknownIntent: no intent is called ``name``.
        IntentConflict: the intent is disabled.
        InvalidIntent: the reply breaks a rule (which one is named), the intent has 6 replies
            already, or the reason is missing.
    """
    edit = Edit(IntentAction.ADD_REPLY, name, replies=(reply.strip(),))
    return _record(session, config, catalogue, edit, reason, actor)


def rename_intent(
    session: Session,
    config: ResponseSetConfig,
    name: str,
    new_name: str,
    reason: str,
    actor: str,
    catalogue: Catalogue | None = None,
) -> IntentState:
    """Rename an intent (audited as ``intents.rename``).

    Raises:
        UnknownIntent: no intent is called ``name``.
        InvalidIntent: ``new_name`` is not snake_case or too long, or the reason is missing.
        IntentConflict: an intent is called ``new_name`` already (or it is ``name``).
    """
    edit = Edit(IntentAction.RENAME, name, new_name=new_name.strip())
    return _record(session, config, catalogue, edit, reason, actor)


def disable_intent(
    session: Session,
    config: ResponseSetConfig,
    name: str,
    reason: str,
    actor: str,
    catalogue: Catalogue | None = None,
) -> IntentState:
    """Disable an intent: out of the effective catalogue until enabled (audited as
    ``intents.disable``).

    Raises:
        UnknownIntent: no intent is called ``name``.
        IntentConflict: it is disabled already.
        InvalidIntent: it is the last ``no`` intent of a group with ``yes`` intents (a "no"
            is always offered beside a "yes"), or the reason is missing.
    """
    edit = Edit(IntentAction.DISABLE, name)
    return _record(session, config, catalogue, edit, reason, actor)


def enable_intent(
    session: Session,
    config: ResponseSetConfig,
    name: str,
    reason: str,
    actor: str,
    catalogue: Catalogue | None = None,
) -> IntentState:
    """Enable a disabled intent again (audited as ``intents.enable``).

    Raises:
        UnknownIntent: no intent is called ``name``.
        IntentConflict: it is not disabled.
        InvalidIntent: one of its replies now breaks a rule (a block added since, or the
            same reply in an intent added since), or the reason is missing.
    """
    edit = Edit(IntentAction.ENABLE, name)
    return _record(session, config, catalogue, edit, reason, actor)


# What a refusal by the catalogue's rules asks the reviewer to do, by action.
_ADVICE = {
    IntentAction.ADD: "fix what is named and add the intent again",
    IntentAction.ADD_REPLY: "reword the reply, or add it to the intent it belongs to",
    IntentAction.DISABLE: "disable the group's 'yes' intents first, or add another 'no' intent "
    "to the group",
    IntentAction.ENABLE: "change what is named first (unblock the reply, or disable the "
    "intent that has it)",
}


def _record(
    session: Session,
    config: ResponseSetConfig,
    catalogue: Catalogue | None,
    edit: Edit,
    reason: str,
    actor: str,
) -> IntentState:
    """Check ``edit`` against every rule, store it and audit it; the intent it leaves."""
    try:
        reason = clean_text(reason, REASON, "reason")
    except InvalidText as exc:
        raise InvalidIntent(f"{exc}: say why, it is recorded in the audit log") from None
    if session.get_bind().dialect.name == "postgresql":
        # Released at commit: the next edit is checked against this one.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EDIT_LOCK})
    before = load_overlay(session, catalogue)
    states = _apply(list(before.intents), edit)
    after = Overlay(before.version, tuple(states), before.skipped)
    if edit.action != IntentAction.RENAME:
        # A rename changes no reply, and its name rules are _apply's; re-checking the replies
        # under a new name would blame it for a reply blocked since it was added.
        _check_content(before, after, config, session, edit.action)
    row = EditRow(
        action=edit.action.value,
        intent=edit.intent,
        new_name=edit.new_name,
        intent_group=edit.group,
        tone=edit.tone,
        stance=edit.stance,
        replies=list(edit.replies),
        reason=reason,
        created_by=actor,
    )
    session.add(row)
    session.flush()
    target = edit.new_name if edit.action == IntentAction.RENAME else edit.intent
    details: dict[str, object] = {"edit": row.id}
    if edit.action == IntentAction.ADD:
        details |= {"group": edit.group, "tone": edit.tone, "stance": edit.stance}
    if edit.replies:
        details["replies"] = list(edit.replies)
    if edit.action == IntentAction.RENAME:
        details["from"] = edit.intent
    audit.record(session, actor, f"intents.{edit.action.value}", target or "", reason, details)
    state = after.get(target or "")
    assert state is not None  # _apply left it under this name
    return state


def _check_content(
    before: Overlay,
    after: Overlay,
    config: ResponseSetConfig,
    session: Session,
    action: IntentAction,
) -> None:
    """Refuse an edit whose effective catalogue breaks a rule of models.catalogue.validate
    that the one before it did not (a problem already there, such as a reply blocked after
    it was added, is not this edit's to answer for).

    Raises:
        InvalidIntent: naming every new problem and what to do.
    """
    curation = load_curation(session)
    known = set(validate(before.catalogue(), config, curation))
    new = [p for p in validate(after.catalogue(), config, curation) if p not in known]
    if new:
        raise InvalidIntent(f"{'; '.join(new)}: {_ADVICE[action]}")
