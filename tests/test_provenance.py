"""Provenance is set at ingestion and can never change, through any path; the database
guards hold on SQLite and on PostgreSQL alike (the ``store`` fixture runs both)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

from core.audit import record
from core.db import Database
from core.ingest import ExampleIn
from core.ingest import add_examples
from core.provenance import Provenance
from core.provenance import ProvenanceImmutableError
from core.schema import AuditEntry
from core.schema import Example
from core.schema import ReservoirMember
from webapp.cli import main


def add(db: Database, provenance: Provenance, message: str = "hi?", reply: str = "hey") -> int:
    with db.session() as session:
        rows, _ = add_examples(session, [ExampleIn(message, reply, "chat", provenance)], "test")
        return rows[0].id


def provenance_of(db: Database, example_id: int) -> str:
    with db.session() as session:
        return session.get_one(Example, example_id).provenance


def test_orm_refuses_to_change_provenance(store: Database) -> None:
    example_id = add(store, Provenance.SYNTHETIC)
    with pytest.raises(ProvenanceImmutableError), store.session() as session:
        session.get_one(Example, example_id).provenance = Provenance.HUMAN.value
    assert provenance_of(store, example_id) == "synthetic"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE examples SET provenance = 'human'",
        "UPDATE examples SET generation = 7",
        "UPDATE examples SET model_version = 'v9'",
    ],
)
def test_database_refuses_raw_updates(store: Database, statement: str) -> None:
    example_id = add(store, Provenance.SYNTHETIC)
    with (
        pytest.raises(DBAPIError, match="provenance is immutable"),
        store.engine.begin() as connection,
    ):
        connection.execute(text(statement))
    assert provenance_of(store, example_id) == "synthetic"


def test_other_columns_may_still_be_updated_in_bulk(store: Database) -> None:
    example_id = add(store, Provenance.HUMAN)
    with store.session() as session:
        session.execute(update(Example).values(niche="renamed"))
    with store.session() as session:
        assert session.get_one(Example, example_id).niche == "renamed"


def test_reimport_under_another_provenance_changes_nothing(
    empty_db: Database, tmp_path: Path
) -> None:
    example_id = add(empty_db, Provenance.SYNTHETIC, "Is it raining?", "Yes, take an umbrella.")
    path = tmp_path / "relabel.jsonl"
    # Same pair, different case and spacing: still the same example.
    path.write_text(json.dumps({"message": "is it  raining?", "reply": "Yes, take an umbrella."}))
    result = CliRunner().invoke(
        main,
        [
            "--data-dir",
            str(empty_db.settings.data_dir),
            "data",
            "import",
            str(path),
            "--provenance",
            "human",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "0 added, 1 already present" in result.output
    assert provenance_of(empty_db, example_id) == "synthetic"


def test_only_human_examples_enter_the_reservoir(store: Database) -> None:
    human = add(store, Provenance.HUMAN, "a", "b")
    selected = add(store, Provenance.HUMAN_SELECTED, "c", "d")
    synthetic = add(store, Provenance.SYNTHETIC, "e", "f")
    with store.session() as session:
        session.add(ReservoirMember(example_id=human, role="anchor"))
    for example_id in (selected, synthetic):
        with pytest.raises(DBAPIError, match="only human examples"), store.session() as s:
            s.add(ReservoirMember(example_id=example_id, role="benchmark"))
    with (
        pytest.raises(DBAPIError, match="only human examples"),
        store.engine.begin() as connection,
    ):
        connection.execute(text(f"UPDATE reservoir SET example_id = {synthetic}"))
    with store.session() as session:
        assert list(session.scalars(select(ReservoirMember.example_id))) == [human]


def test_audit_log_is_append_only(store: Database) -> None:
    with store.session() as session:
        record(session, "tester", "model.promote", "v1", "because")
    statements = ["UPDATE audit_log SET reason = 'x'", "DELETE FROM audit_log"]
    if store.url.startswith("postgresql"):
        statements.append("TRUNCATE audit_log")
    for statement in statements:
        with (
            pytest.raises(DBAPIError, match="append-only"),
            store.engine.begin() as connection,
        ):
            connection.execute(text(statement))
    with store.session() as session:
        assert [e.reason for e in session.scalars(select(AuditEntry))] == ["because"]


def test_api_has_no_way_to_relabel(client, client_headers, reviewer_headers, db) -> None:  # type: ignore[no-untyped-def]
    body = {"message": "Is it raining?", "suggestions": ["Yes, take an umbrella."], "chosen": 0}
    first = client.post("/v1/feedback", json=body, headers=client_headers)
    assert first.status_code == 201
    assert first.json["provenance"] == "human_selected"
    example_id = first.json["example_id"]

    # The same pair reported as typed by the user is a duplicate, not a relabel.
    typed = {"message": "Is it raining?", "suggestions": [], "typed": "Yes, take an umbrella."}
    again = client.post("/v1/feedback", json=typed, headers=client_headers)
    assert again.status_code == 200
    assert again.json == {
        "example_id": example_id,
        "provenance": "human_selected",
        "duplicate": True,
    }

    bulk = {
        "examples": [{"message": "Is it raining?", "reply": "Yes, take an umbrella."}],
        "provenance": "human",
    }
    imported = client.post("/v1/examples", json=bulk, headers=reviewer_headers)
    assert imported.status_code == 201
    assert imported.json["duplicates"] == 1

    for method in ("put", "patch", "delete"):
        response = getattr(client, method)(
            "/v1/examples", json={"provenance": "human"}, headers=reviewer_headers
        )
        assert response.status_code == 405
        assert response.json["error"]["code"] == "method_not_allowed"
    assert provenance_of(db, example_id) == "human_selected"
