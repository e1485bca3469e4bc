"""`replyguard intents ...` and `replyguard bank list`: the same rules and listing as the API
(models/intent_edits.py, models/served.py), refusals as `Error: ...` with exit code 1."""

from __future__ import annotations

from sqlalchemy import select

from core.db import Database
from core.schema import AuditEntry
from models.artifact import read_bank
from models.intent_edits import load_overlay
from models.registry import artifact_dir
from models.registry import production
from tests.test_cli import run

ADD = [
    "intents",
    "add",
    "on_it",
    "--group",
    "work",
    "--tone",
    "neutral",
    "--reply",
    "Handling it now",
    "--reply",
    "On the case",
    "--reason",
    "support agents answer this all day",
]


def audited(db: Database, action: str) -> list[AuditEntry]:
    with db.session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_list_shows_every_intent_by_group(db: Database) -> None:
    code, output = run(db, "intents", "list", "--group", "offers")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == "offers"
    no_thanks = next(line for line in lines if line.split()[0] == "no_thanks")
    assert "negative no catalogue" in no_thanks and "DISABLED" not in no_thanks
    code, output = run(db, "intents", "list", "--group", "nope")
    assert (code, "no group is called 'nope'" in output) == (1, True)


def test_add_and_its_refusals(db: Database) -> None:
    code, output = run(db, *ADD)
    assert code == 0, output
    assert "added intent 'on_it' to 'work'" in output
    [entry] = audited(db, "intents.add")
    assert (entry.actor, entry.target) == ("cli", "on_it")
    with db.session() as session:
        state = load_overlay(session).get("on_it")
    assert state is not None and state.intent.replies == ("Handling it now", "On the case")

    code, output = run(db, *ADD)
    assert code == 1
    assert "Error: an intent is called 'on_it' already: choose another name" in output
    bad = [*ADD[:2], "on_it_too", *ADD[3:]]
    bad[bad.index("On the case")] = "Call me on 415 555 0132"
    code, output = run(db, *bad)
    assert code == 1
    assert "breaks the response set's personal_data rule" in output
    code, output = run(db, *[a for a in ADD[:-2]])
    assert code == 2 and "Missing option '--reason'" in output
    assert len(audited(db, "intents.add")) == 1


def test_add_reply_rename_disable_enable(db: Database) -> None:
    why = ["--reason", "reviewed"]
    assert run(db, "intents", "add-reply", "ok", "Okey dokey", *why) == (
        0,
        "added 'Okey dokey' to intent 'ok'\n",
    )
    code, output = run(db, "intents", "add-reply", "nope_nope", "Okey dokey", *why)
    assert code == 1 and "Error: no intent is called 'nope_nope'" in output
    code, output = run(db, "intents", "add-reply", "thanks", "Thanks, shit", *why)
    assert code == 1 and "sensitive rule" in output

    assert run(db, "intents", "rename", "ok", "okay_then", *why)[0] == 0
    code, output = run(db, "intents", "rename", "okay_then", "thanks", *why)
    assert code == 1 and "an intent is called 'thanks' already" in output

    assert run(db, "intents", "disable", "okay_then", *why)[0] == 0
    code, output = run(db, "intents", "list", "--group", "acknowledge")
    line = next(x for x in output.splitlines() if x.split()[0] == "okay_then")
    assert "DISABLED" in line and "was ok" in line and "Okey dokey (reviewer)" in line
    code, output = run(db, "intents", "disable", "okay_then", *why)
    assert code == 1 and "disabled already" in output
    code, output = run(db, "intents", "disable", "okay_then")
    assert code == 2 and "Missing option '--reason'" in output
    assert run(db, "intents", "enable", "okay_then", *why)[0] == 0
    for action in ("add_reply", "rename", "disable", "enable"):
        assert [e.actor for e in audited(db, f"intents.{action}")] == ["cli"], action


def test_bank_list_shows_the_served_set_by_intent(db: Database) -> None:
    assert run(db, "bank", "add", "Let me check and get back to you", "--reason", "canned")[0] == 0
    code, output = run(db, "bank", "list")
    assert code == 0, output
    with db.session() as session:
        row = production(session)
        assert row is not None
        trained = read_bank(artifact_dir(db.settings, row), row.checksum)
    assert f"served by v1: {len(trained) + 1} replies, 1 intents" in output
    assert "(no intent)" in output
    first = max(range(len(trained)), key=lambda i: (trained.counts[i], -i))
    assert f"{int(trained.counts[first]):6} mined     " in output
    assert "     0 curated   Let me check and get back to you" in output
    code, output = run(db, "bank", "list", "--curation-only")
    assert "served by" not in output and "curated  general" in output
