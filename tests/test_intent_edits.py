"""Reviewers' edits to the intents (models/intent_edits.py): the effective catalogue, the rules of
each action, the audit log and the revision; and the served response set by intent
(models/served.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func
from sqlalchemy import select

from core.actions import ActionRefused
from core.db import Database
from core.schema import AuditEntry
from core.schema import IntentAction
from core.schema import IntentEdit as EditRow
from models.bank import ResponseBank
from models.catalogue import Catalogue
from models.catalogue import Intent
from models.catalogue import Stance
from models.catalogue import Tone
from models.catalogue import load_catalogue
from models.curation import add_block
from models.curation import add_curated
from models.intent_edits import Edit
from models.intent_edits import IntentConflict
from models.intent_edits import InvalidIntent
from models.intent_edits import Source
from models.intent_edits import UnknownIntent
from models.intent_edits import add_intent
from models.intent_edits import add_reply
from models.intent_edits import apply_edits
from models.intent_edits import disable_intent
from models.intent_edits import effective_catalogue
from models.intent_edits import enable_intent
from models.intent_edits import load_overlay
from models.intent_edits import rename_intent
from models.intent_edits import revision
from models.reply_rules import Block
from models.reply_rules import CuratedReply
from models.reply_rules import Curation
from models.reply_rules import ResponseSetConfig
from models.served import ReplySource
from models.served import served_by_intent

CONFIG = ResponseSetConfig()
SMALL = Catalogue(
    1,
    (
        Intent("ok", "acknowledge", Tone.NEUTRAL, None, ("Ok", "Okay")),
        Intent("yes", "answers", Tone.POSITIVE, Stance.YES, ("Yes", "Yep")),
        Intent("no", "answers", Tone.NEGATIVE, Stance.NO, ("No", "Nope")),
    ),
)
NEW = {"name": "on_it", "group": "work", "tone": "neutral", "stance": None}


def edits_of(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(EditRow)) or 0)


def audit_rows(db: Database, action: str) -> list[AuditEntry]:
    with db.session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


# --- effective_catalogue: pure ------------------------------------------------------------


def test_a_rename_keeps_the_intents_place_and_everything_else() -> None:
    result = effective_catalogue(SMALL, [Edit(IntentAction.RENAME, "ok", new_name="okay")])
    assert result.names() == ("okay", "yes", "no")
    assert result["okay"].replies == ("Ok", "Okay")
    assert result["okay"].group == "acknowledge"
    assert "ok" not in result


def test_a_disabled_intent_is_left_out_until_enabled() -> None:
    disabled = [Edit(IntentAction.DISABLE, "ok")]
    assert effective_catalogue(SMALL, disabled).names() == ("yes", "no")
    enabled = [*disabled, Edit(IntentAction.ENABLE, "ok")]
    assert effective_catalogue(SMALL, enabled).names() == ("ok", "yes", "no")
    overlay = apply_edits(SMALL, disabled)
    state = overlay.get("ok")
    assert state is not None and state.disabled


def test_added_intents_come_last_and_added_replies_after_the_intents_own() -> None:
    edits = [
        Edit(
            IntentAction.ADD, "on_it", group="work", tone="neutral", replies=("On it", "Doing it")
        ),
        Edit(IntentAction.ADD_REPLY, "ok", replies=("Alright",)),
    ]
    result = effective_catalogue(SMALL, edits)
    assert result.names() == ("ok", "yes", "no", "on_it")
    assert result["on_it"] == Intent("on_it", "work", Tone.NEUTRAL, None, ("On it", "Doing it"))
    assert result["ok"].replies == ("Ok", "Okay", "Alright")
    overlay = apply_edits(SMALL, edits)
    ok, on_it = overlay.get("ok"), overlay.get("on_it")
    assert ok is not None and on_it is not None
    assert (ok.source, on_it.source) == (Source.CATALOGUE, Source.REVIEWER)
    assert ok.reply_source("Alright") == Source.REVIEWER
    assert ok.reply_source("Ok") == Source.CATALOGUE
    # The shipped catalogue itself is untouched.
    assert SMALL["ok"].replies == ("Ok", "Okay")


def test_edits_follow_renames_in_order() -> None:
    edits = [
        Edit(IntentAction.RENAME, "ok", new_name="okay"),
        Edit(IntentAction.ADD_REPLY, "okay", replies=("Alright",)),
        Edit(IntentAction.DISABLE, "okay"),
        # The old name is free again.
        Edit(IntentAction.ADD, "ok", group="acknowledge", tone="neutral", replies=("K", "Kk")),
    ]
    overlay = apply_edits(SMALL, edits)
    assert overlay.skipped == ()
    assert [s.name for s in overlay.intents] == ["okay", "yes", "no", "ok"]
    assert overlay.current_names() == {"ok": "okay", "yes": "yes", "no": "no"}
    assert overlay.catalogue()["ok"].replies == ("K", "Kk")


def test_edits_that_no_longer_apply_are_skipped_with_why() -> None:
    edits = [
        Edit(IntentAction.DISABLE, "gone", id=1),
        Edit(IntentAction.RENAME, "ok", new_name="yes", id=2),
        Edit(IntentAction.RENAME, "ok", new_name="okay", id=3),
    ]
    overlay = apply_edits(SMALL, edits)
    assert overlay.skipped[0].edit.id == 1
    assert "no intent is called 'gone'" in overlay.skipped[0].why
    assert overlay.skipped[1].edit.id == 2
    assert "an intent is called 'yes' already" in overlay.skipped[1].why
    assert overlay.catalogue().names() == ("okay", "yes", "no")


# --- the actions, stored and audited ------------------------------------------------------


def test_add_intent_is_stored_audited_and_in_the_effective_catalogue(empty_db: Database) -> None:
    with empty_db.session() as session:
        before = revision(session)
        state = add_intent(
            session,
            CONFIG,
            **NEW,
            replies=[" Handling it now ", "On the case"],
            reason="ops",
            actor="me",
        )
        assert state.intent.replies == ("Handling it now", "On the case")
        assert revision(session) != before
    with empty_db.session() as session:
        overlay = load_overlay(session)
        row = session.scalars(select(EditRow)).one()
    added = overlay.get("on_it")
    assert added is not None and added.source == Source.REVIEWER
    assert overlay.catalogue().names()[-1] == "on_it"
    assert len(overlay.catalogue()) == len(load_catalogue()) + 1
    assert (row.action, row.created_by, row.reason) == ("add", "me", "ops")
    [entry] = audit_rows(empty_db, "intents.add")
    assert (entry.actor, entry.target, entry.reason) == ("me", "on_it", "ops")
    assert entry.details["replies"] == ["Handling it now", "On the case"]


def test_every_action_changes_the_revision_and_is_audited(empty_db: Database) -> None:
    steps = [
        ("intents.add_reply", lambda s: add_reply(s, CONFIG, "ok", "Okey dokey", "r", "me")),
        ("intents.rename", lambda s: rename_intent(s, CONFIG, "ok", "okay_then", "r", "me")),
        ("intents.disable", lambda s: disable_intent(s, CONFIG, "okay_then", "r", "me")),
        ("intents.enable", lambda s: enable_intent(s, CONFIG, "okay_then", "r", "me")),
        (
            "intents.add",
            lambda s: add_intent(
                s, CONFIG, **NEW, replies=["Handling it now", "On the case"], reason="r", actor="me"
            ),
        ),
    ]
    seen = set()
    for action, step in steps:
        with empty_db.session() as session:
            seen.add(revision(session))
            step(session)
        with empty_db.session() as session:
            assert revision(session) not in seen, action
        assert len(audit_rows(empty_db, action)) == 1, action
    with empty_db.session() as session:
        catalogue = load_overlay(session).catalogue()
    assert catalogue["okay_then"].replies[-1] == "Okey dokey"
    assert "ok" not in catalogue
    assert audit_rows(empty_db, "intents.rename")[0].details["from"] == "ok"


@pytest.mark.parametrize(
    ("replies", "fragment"),
    [
        (
            ["Handling it now", "Call me at 415 555 0132"],
            "breaks the response set's personal_data rule",
        ),
        (["Handling it now", "What the fuck"], "breaks the response set's sensitive rule"),
        (["Handling it now"], "has 1 replies; an intent has 2 to 6"),
        (["Handling it now", "Okay"], "is already reply 'Okay' of intent 'ok'"),
        (["Handling it now", "handling it now!"], "repeats a reply"),
    ],
)
def test_add_intent_refuses_replies_that_break_a_rule(
    empty_db: Database, replies: list[str], fragment: str
) -> None:
    with empty_db.session() as session, pytest.raises(InvalidIntent) as refused:
        add_intent(session, CONFIG, **NEW, replies=replies, reason="r", actor="me")
    assert refused.value.status == 422
    assert fragment in str(refused.value)
    assert "fix what is named and add the intent again" in str(refused.value)
    assert edits_of(empty_db) == 0
    assert audit_rows(empty_db, "intents.add") == []


def test_a_sympathetic_intent_is_calm(empty_db: Database) -> None:
    with (
        empty_db.session() as session,
        pytest.raises(InvalidIntent, match="a sympathetic reply is calm"),
    ):
        add_intent(
            session,
            CONFIG,
            "so_so_sorry",
            "sympathy",
            "sympathetic",
            None,
            ["So very sorry!", "That is sad"],
            "r",
            "me",
        )


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("name", "On It", "the name 'On It' is not usable: write it in snake_case"),
        ("name", "a" * 65, "at most 64 characters"),
        ("group", "my-group", "the group 'my-group' is not usable"),
        ("tone", "grumpy", "'grumpy' is not a tone: one of sympathetic"),
        ("stance", "perhaps", "'perhaps' is not a stance"),
    ],
)
def test_add_intent_refuses_bad_names_tones_and_stances(
    empty_db: Database, field: str, value: str, fragment: str
) -> None:
    with empty_db.session() as session, pytest.raises(InvalidIntent) as refused:
        add_intent(
            session,
            CONFIG,
            **(NEW | {field: value}),
            replies=["Handling it now", "On the case"],
            reason="r",
            actor="me",
        )
    assert fragment in str(refused.value)
    assert edits_of(empty_db) == 0


def test_a_duplicate_name_is_refused_with_what_to_do(empty_db: Database) -> None:
    with empty_db.session() as session, pytest.raises(IntentConflict) as refused:
        add_intent(
            session,
            CONFIG,
            **(NEW | {"name": "ok"}),
            replies=["Handling it now", "On the case"],
            reason="r",
            actor="me",
        )
    assert refused.value.status == 409
    assert "an intent is called 'ok' already: choose another name" in str(refused.value)
    with empty_db.session() as session:
        disable_intent(session, CONFIG, "ok", "r", "me")
    with (
        empty_db.session() as session,
        pytest.raises(IntentConflict, match=r"it is disabled.*enable it"),
    ):
        rename_intent(session, CONFIG, "thanks", "ok", "r", "me")
    assert edits_of(empty_db) == 1


def test_unknown_intents_are_refused_by_every_action(empty_db: Database) -> None:
    actions = [
        lambda s: add_reply(s, CONFIG, "nope_nope", "Sure thing", "r", "me"),
        lambda s: rename_intent(s, CONFIG, "nope_nope", "other_name", "r", "me"),
        lambda s: disable_intent(s, CONFIG, "nope_nope", "r", "me"),
        lambda s: enable_intent(s, CONFIG, "nope_nope", "r", "me"),
    ]
    for action in actions:
        with empty_db.session() as session, pytest.raises(UnknownIntent) as refused:
            action(session)
        assert refused.value.status == 404
        assert "no intent is called 'nope_nope'" in str(refused.value)
        assert "replyguard intents list" in str(refused.value)
    assert edits_of(empty_db) == 0


def test_state_rules(empty_db: Database) -> None:
    with empty_db.session() as session, pytest.raises(IntentConflict, match="is not disabled"):
        enable_intent(session, CONFIG, "ok", "r", "me")
    with empty_db.session() as session, pytest.raises(IntentConflict, match="called that already"):
        rename_intent(session, CONFIG, "ok", "ok", "r", "me")
    with empty_db.session() as session:
        disable_intent(session, CONFIG, "ok", "r", "me")
    with empty_db.session() as session, pytest.raises(IntentConflict, match="disabled already"):
        disable_intent(session, CONFIG, "ok", "r", "me")
    with empty_db.session() as session, pytest.raises(IntentConflict, match="enable it before"):
        add_reply(session, CONFIG, "ok", "Okey dokey", "r", "me")
    assert edits_of(empty_db) == 1


def test_the_last_no_beside_a_yes_cannot_be_disabled(empty_db: Database) -> None:
    with empty_db.session() as session, pytest.raises(InvalidIntent) as refused:
        disable_intent(session, CONFIG, "no_thanks", "r", "me")
    assert "group 'offers' has 'yes' intents ('yes_please') but no 'no' intent" in str(
        refused.value
    )
    assert "disable the group's 'yes' intents first" in str(refused.value)
    with empty_db.session() as session:
        disable_intent(session, CONFIG, "yes_please", "r", "me")
        disable_intent(session, CONFIG, "no_thanks", "r", "me")
    assert edits_of(empty_db) == 2


def test_a_reply_breaking_a_rule_or_blocked_is_refused(empty_db: Database) -> None:
    with empty_db.session() as session, pytest.raises(InvalidIntent) as refused:
        add_reply(session, CONFIG, "ok", "mail me at me@example.com", "r", "me")
    assert "breaks the response set's personal_data rule" in str(refused.value)
    assert "reword the reply" in str(refused.value)
    with empty_db.session() as session:
        add_block(session, "text", "Okey dokey", "reads badly", "me")
    with empty_db.session() as session, pytest.raises(InvalidIntent, match="blocked rule"):
        add_reply(session, CONFIG, "ok", "Okey dokey", "r", "me")
    with empty_db.session() as session, pytest.raises(InvalidIntent, match="has 7 replies"):
        add_reply(session, CONFIG, "thanks", "Thanks a bunch", "r", "me")
        add_reply(session, CONFIG, "thanks", "Thanks heaps", "r", "me")
    # The sixth reply was stored; the seventh, and the refused ones before, were not.
    assert edits_of(empty_db) == 1


def test_a_blocked_reply_does_not_stop_a_rename_or_other_edits(empty_db: Database) -> None:
    # The block came after the catalogue: a problem already there is not the edit's.
    with empty_db.session() as session:
        add_block(session, "text", "Okay", "reads badly", "me")
    with empty_db.session() as session:
        rename_intent(session, CONFIG, "ok", "okay_then", "r", "me")
        add_reply(session, CONFIG, "okay_then", "Okey dokey", "r", "me")
    assert edits_of(empty_db) == 2


@pytest.mark.parametrize("reason", ["", "   ", "\u200b"])
def test_a_reason_is_required(empty_db: Database, reason: str) -> None:
    with empty_db.session() as session, pytest.raises(InvalidIntent, match="reason is empty"):
        disable_intent(session, CONFIG, "ok", reason, "me")
    assert edits_of(empty_db) == 0


def test_refusals_are_action_refusals_for_every_front_end() -> None:
    for error in (InvalidIntent, UnknownIntent, IntentConflict):
        assert issubclass(error, ActionRefused)
    assert (InvalidIntent.status, UnknownIntent.status, IntentConflict.status) == (422, 404, 409)


# --- what reviewers read: the served response set by intent -------------------------------


def bank(texts: list[str], counts: list[int], **per_reply: list[str | None] | None) -> ResponseBank:
    return ResponseBank(
        texts=texts,
        niches=[["chat"]] * len(texts),
        counts=np.array(counts, dtype=np.float32),
        prior=np.zeros(len(texts), dtype=np.float32),
        **per_reply,  # type: ignore[arg-type]
    )


def test_a_bank_without_intents_lists_each_reply_as_its_own_unnamed_cluster() -> None:
    """A bank made before intents (models.bank: each reply its own unnamed cluster, mined)."""
    listing = served_by_intent(
        bank(["hi", "Okay", "On my way"], [3, 9, 5]),
        Curation((CuratedReply("On my way", "chat"),)),
        SMALL,
    )
    assert len(listing) == 3
    assert all(i.intent is None or i.intent.startswith("unnamed-") for i in listing)
    sources = {r.text: (r.support, r.source) for i in listing for r in i.replies}
    assert sources == {
        "Okay": (9, ReplySource.MINED),
        "On my way": (5, ReplySource.CURATED),
        "hi": (3, ReplySource.MINED),
    }


def test_a_bank_with_intents_lists_by_intent_in_the_catalogues_order() -> None:
    served = bank(
        ["Nope", "Yep", "Okay", "lol", "Ok", "whatever"],
        [2, 4, 7, 1, 3, 6],
        intents=["no", "yes", "ok", None, "ok", "unknown_one"],
        tones=["negative", None, "neutral", None, "neutral", None],
        sources=["catalogue", "catalogue", "catalogue", "mined", "mined", None],
    )
    curation = Curation(
        (CuratedReply("Brb", "chat"), CuratedReply("Blocked one", "chat")),
        (Block("text", "lol"), Block("text", "blocked one")),
    )
    listing = served_by_intent(served, curation, SMALL)
    assert [i.intent for i in listing] == ["ok", "yes", "no", "unknown_one", None]
    ok = listing[0]
    assert (ok.group, ok.tone, ok.support) == ("acknowledge", "neutral", 10)
    assert [(r.text, r.support, r.source) for r in ok.replies] == [
        ("Okay", 7, ReplySource.CATALOGUE),
        ("Ok", 3, ReplySource.MINED),
    ]
    # The tone the bank does not have comes from the catalogue.
    assert listing[1].tone == "positive"
    assert listing[3].replies[0].source == ReplySource.MINED
    none = listing[-1]
    # A curated reply the model was not trained with is served, support 0; a blocked one is not.
    assert [(r.text, r.support, r.source, r.blocked) for r in none.replies] == [
        ("lol", 1, ReplySource.MINED, True),
        ("Brb", 0, ReplySource.CURATED, False),
    ]


def test_a_bank_with_fewer_values_than_replies_is_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        bank(["Ok", "Yep"], [1, 1], intents=["ok"], sources=["catalogue"])


def test_curated_marks_win_over_the_banks_source(empty_db: Database) -> None:
    with empty_db.session() as session:
        add_curated(session, CONFIG, "Sounds good to me", "chat", "canned", "me")
    from models.curation import load_curation

    with empty_db.session() as session:
        curation = load_curation(session)
    listing = served_by_intent(
        bank(["Sounds good to me"], [4], intents=[None], sources=["mined"]), curation
    )
    assert listing[0].replies[0].source == ReplySource.CURATED


def test_disabled_names_are_the_names_now_and_as_shipped() -> None:
    overlay = apply_edits(
        SMALL,
        [
            Edit(IntentAction.RENAME, "ok", new_name="okay"),
            Edit(IntentAction.DISABLE, "okay"),
            Edit(IntentAction.ADD, "on_it", group="work", tone="neutral", replies=("A", "B")),
            Edit(IntentAction.DISABLE, "on_it"),
        ],
    )
    assert overlay.disabled_names() == {"okay", "ok", "on_it"}


def test_a_disabled_intent_is_marked_in_the_served_listing() -> None:
    served = bank(["Ok", "Yep"], [2, 3], intents=["ok", "yes"])
    listing = served_by_intent(served, Curation(), SMALL, frozenset({"ok"}))
    assert [(i.intent, i.disabled) for i in listing] == [("ok", True), ("yes", False)]
