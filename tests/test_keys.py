"""API keys: listed and revoked from the command line and by admins through the API, every
change audited; `replyguard run` keeps its quickstart keys across restarts."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from core.db import Database
from core.keys import quickstart_keys
from core.schema import ApiKey
from core.schema import AuditEntry
from core.schema import Role
from webapp.cli import main
from webapp.keycache import KeyCache


def cli(db: Database, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--data-dir", str(db.settings.data_dir), *args])
    return result.exit_code, result.output


def audit(db: Database) -> list[tuple[str, str, str, str]]:
    with db.session() as session:
        return [
            (e.actor, e.action, e.target, e.reason)
            for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]


def test_keys_are_listed_and_revoked_from_the_command_line(empty_db: Database) -> None:
    code, output = cli(empty_db, "keys", "list")
    assert (code, output.strip()) == (
        0,
        "no API keys yet: `replyguard keys create --role client --name NAME`",
    )
    code, token = cli(empty_db, "keys", "create", "--role", "reviewer", "--name", "Robin")
    assert code == 0
    code, output = cli(empty_db, "keys", "list")
    row = output.splitlines()[1].split()
    assert row[:3] == ["1", f"{token.strip()[:10]}...", "reviewer"]
    assert row[-1] == "Robin" and "-" in row  # not revoked

    code, output = cli(empty_db, "keys", "revoke", "1", "--reason", "left the team")
    assert (code, output.strip()) == (0, f"revoked key 1 ({token.strip()[:10]}..., Robin)")
    with empty_db.session() as session:
        assert session.get_one(ApiKey, 1).revoked_at is not None
    assert audit(empty_db) == [
        ("cli", "create_key", "key 1", ""),
        ("cli", "revoke_key", "key 1", "left the team"),
    ]

    code, output = cli(empty_db, "keys", "revoke", "1", "--reason", "again")
    assert code == 1
    assert "key 1 (" in output and "was revoked at" in output
    code, output = cli(empty_db, "keys", "revoke", "7", "--reason", "typo")
    assert code == 1
    assert "no API key has id 7: `replyguard keys list` shows them" in output
    code, output = cli(empty_db, "keys", "revoke", "1", "--reason", "   ")
    assert code == 2  # the one text validation refuses an empty reason before anything runs
    assert len(audit(empty_db)) == 2


def test_run_keeps_its_quickstart_keys_across_restarts(empty_db: Database) -> None:
    with empty_db.session() as session:
        first = quickstart_keys(session)
    assert {role: (token is not None) for role, (token, _) in first.items()} == {
        Role.CLIENT: True,
        Role.REVIEWER: True,
    }
    ids = {role: row.id for role, (_, row) in first.items()}
    with empty_db.session() as session:
        again = quickstart_keys(session)
    # A restart makes no key and names the ones it made before.
    assert {role: (token, row.id) for role, (token, row) in again.items()} == {
        role: (None, ids[role]) for role in ids
    }
    assert cli(empty_db, "keys", "revoke", str(ids[Role.CLIENT]), "--reason", "lost")[0] == 0
    with empty_db.session() as session:
        third = quickstart_keys(session)
        assert session.query(ApiKey).count() == 3
    token, row = third[Role.CLIENT]
    assert token is not None and row.id not in ids.values()
    assert third[Role.REVIEWER][0] is None


def test_admins_manage_keys_through_the_api(client: Any, admin_headers: Any, app: Any) -> None:
    created = client.post("/v1/keys", json={"name": "android app"}, headers=admin_headers)
    assert created.status_code == 201
    key = created.json
    assert (key["name"], key["role"], key["revoked_at"]) == ("android app", "client", None)
    assert key["token"].startswith(key["prefix"])
    new_headers = {"Authorization": f"Bearer {key['token']}"}
    body = {"message": "are we still on for lunch?"}
    assert client.post("/v1/suggestions", json=body, headers=new_headers).status_code == 200

    listed = client.get("/v1/keys", headers=admin_headers).json["keys"]
    assert [k["name"] for k in listed] == ["test-admin", "android app"]
    assert all("token" not in k and "key_hash" not in k for k in listed)

    path = f"/v1/keys/{key['id']}/revoke"
    revoked = client.post(path, json={"reason": "phone lost"}, headers=admin_headers)
    assert revoked.status_code == 200
    assert revoked.json["revoked_at"] is not None
    # A web process trusts a recent check for key_cache_seconds (tests/test_keycache.py);
    # a process that has not seen the key yet refuses it at once.
    services = app.extensions["replyguard"]
    services.keys = KeyCache(services.settings.key_cache_seconds)
    refused = client.post("/v1/suggestions", json=body, headers=new_headers)
    assert refused.status_code == 401

    again = client.post(path, json={"reason": "twice"}, headers=admin_headers)
    assert (again.status_code, again.json["error"]["code"]) == (409, "conflict")
    missing = client.post("/v1/keys/999/revoke", json={"reason": "x"}, headers=admin_headers)
    assert (missing.status_code, missing.json["error"]["code"]) == (404, "not_found")
    empty = client.post(path, json={"reason": " "}, headers=admin_headers)
    assert empty.status_code == 422
    bad_role = client.post("/v1/keys", json={"name": "x", "role": "root"}, headers=admin_headers)
    assert bad_role.status_code == 422
    actions = [a for _, a, _, _ in audit(app.extensions["replyguard"].db)]
    assert actions.count("revoke_key") == 1
    assert actions.count("create_key") == 2  # the admin's own key and the android app's


def test_only_admins_manage_keys(client: Any, client_headers: Any, reviewer_headers: Any) -> None:
    for headers in (client_headers, reviewer_headers):
        assert client.get("/v1/keys", headers=headers).status_code == 403
        made = client.post("/v1/keys", json={"name": "sneaky", "role": "admin"}, headers=headers)
        assert made.status_code == 403
        assert (
            client.post("/v1/keys/1/revoke", json={"reason": "x"}, headers=headers).status_code
            == 403
        )
    assert client.get("/v1/keys").status_code == 401
