"""The API through a real gunicorn server on loopback, as clients see it."""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from core.db import Database
from core.keys import create_key
from core.schema import Example
from core.schema import IncomingMessage
from core.schema import Role
from tests.helpers import gunicorn
from tests.helpers import make_settings

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Served:
    base: str
    # A client key and a reviewer key.
    token: str
    staff: str
    data_dir: Path


@pytest.fixture(scope="module")
def served(trained_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import shutil

    data_dir = tmp_path_factory.mktemp("http") / "data"
    shutil.copytree(trained_dir, data_dir)
    db = Database(make_settings(data_dir))
    with db.session() as session:
        token, _ = create_key(session, "http", Role.CLIENT, "tester")
        staff, _ = create_key(session, "http staff", Role.REVIEWER, "tester")
    db.dispose()
    with gunicorn(data_dir) as server:
        yield Served(server.base, token, staff, data_dir)


@pytest.fixture(scope="module")
def server(served: Served) -> tuple[str, str]:
    return served.base, served.token


def call(url: str, body: bytes | None, token: str | None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_suggestions_over_http_like_curl(server: tuple[str, str]) -> None:
    base, token = server
    # curl -d sends a form content type; the API takes the body as JSON regardless.
    status, body = call(
        f"{base}/v1/suggestions", b'{"message": "are we still on for lunch?", "force": true}', token
    )
    assert status == 200
    assert body["model_version"] == "v1"
    assert isinstance(body["triggered"], bool)
    assert len(body["suggestions"]) == 3
    assert len({s["text"] for s in body["suggestions"]}) == 3


def test_many_sequential_requests_all_succeed(server: tuple[str, str]) -> None:
    base, token = server
    messages = ["Hello", "Tell me a joke", "What is a computer?", "I feel sad", "Who are you?"]
    statuses = [
        call(f"{base}/v1/suggestions", json.dumps({"message": m, "k": 2}).encode(), token)[0]
        for m in messages * 10
    ]
    assert statuses == [200] * 50


@pytest.mark.parametrize(
    ("body", "token", "status", "code"),
    [
        (b'{"message": "hi", "k": 99}', "key", 422, "invalid_input"),
        (b"\xc3\x28", "key", 400, "bad_request"),
        (b'{"message": "hi"}', None, 401, "unauthorized"),
        (b"x" * 300_000, "key", 413, "body_too_large"),
    ],
)
def test_bad_input_over_http_is_a_json_4xx(
    server: tuple[str, str], body: bytes, token: str | None, status: int, code: str
) -> None:
    base, key = server
    got, payload = call(f"{base}/v1/suggestions", body, key if token else None)
    assert got == status
    assert payload["error"]["code"] == code
    assert payload["error"]["message"]


def test_readiness_over_http(server: tuple[str, str]) -> None:
    base, _ = server
    status, body = call(f"{base}/readyz", None, None)
    assert (status, body["status"], body["checks"]["model"]) == (200, "ready", "v1")


# --- Mixed load: ordinary and malformed requests from 32 clients at once ---------------------

BIG_INT = b"9" * 5000


def _suggestion(i: int) -> tuple[str, bytes, int]:
    body = {"message": f"mixed {i}: are we still on for lunch?", "k": 1 + i % 5}
    return "/v1/suggestions", json.dumps(body).encode(), 200


def _feedback(i: int) -> tuple[str, bytes, int]:
    body: dict[str, Any] = {"message": f"mixed feedback {i}", "suggestions": ["Sure", "No"]}
    body.update({"chosen": i % 2} if i % 3 else {"typed": f"typed reply {i}"})
    return "/v1/feedback", json.dumps(body).encode(), 201


def _import(i: int) -> tuple[str, bytes, int]:
    rows = [{"message": f"mixed import {i}.{j}", "reply": f"imported {j}"} for j in range(5)]
    return "/v1/examples", json.dumps({"examples": rows, "provenance": "human"}).encode(), 201


def _j(body: Any) -> bytes:
    return json.dumps(body).encode()


# (path, body, status): each an instance of a kind of hostile input the service must refuse
# alone, without failing its neighbours or losing their rows.
MALFORMED = [
    ("/v1/suggestions", _j({"message": "hi \ud800"}), 422),
    ("/v1/suggestions", _j({"message": "x", "niche": "\ud800"}), 422),
    ("/v1/suggestions", _j({"message": "bell \x07"}), 422),
    ("/v1/suggestions", b'{"message": "hi", "k": ' + BIG_INT + b"}", 400),
    ("/v1/suggestions", b'{"message": "hi", "k": NaN}', 400),
    ("/v1/suggestions", b"[" * 50_000 + b"]" * 50_000, 400),
    ("/v1/suggestions", b"   ", 422),
    ("/v1/suggestions", b"\xc3\x28", 400),
    ("/v1/feedback", _j({"message": "m", "suggestions": ["y" * 200_000], "chosen": 0}), 422),
    ("/v1/feedback", _j({"message": "m", "suggestions": ["a"], "chosen": 0, "niche": "  "}), 422),
    (
        "/v1/feedback",
        _j({"message": "m", "suggestions": ["a"], "chosen": 0, "model_version": "v99"}),
        422,
    ),
    ("/v1/feedback", _j({"message": "m", "suggestions": [], "typed": "\ud800"}), 422),
    (
        "/v1/examples",
        _j(
            {
                "examples": [{"message": f"poisoned batch {j}", "reply": "r"} for j in range(4)]
                + [{"message": "poisoned batch \ud800", "reply": "r"}],
                "provenance": "human",
            }
        ),
        422,
    ),
    (
        "/v1/examples",
        _j(
            {"examples": [{"message": "poisoned batch s", "reply": "r"}], "provenance": "synthetic"}
        ),
        422,
    ),
]
IDENTICAL = ("/v1/feedback", _j({"message": "mixed same", "suggestions": ["Yes"], "chosen": 0}))


def test_32_clients_with_malformed_requests_among_them(served: Served) -> None:
    ordinary = (
        [_suggestion(i) for i in range(192)]
        + [_feedback(i) for i in range(64)]
        + [_import(i) for i in range(32)]
    )
    malformed = MALFORMED * 4
    requests = [(*r, "good") for r in ordinary] + [(*r, "bad") for r in malformed]
    requests += [(*IDENTICAL, 0, "identical")] * 8
    random.Random(11).shuffle(requests)
    # 32 clients, each with its own key (as 32 apps would be): one key would soon be over its
    # feedback and import rate limits, which have their own tests (tests/test_limits.py).
    db = Database(make_settings(served.data_dir))
    with db.session() as session:
        clients = [create_key(session, f"client {i}", Role.CLIENT, "tester")[0] for i in range(32)]
        staff = [create_key(session, f"staff {i}", Role.REVIEWER, "tester")[0] for i in range(32)]
    db.dispose()

    def send(numbered: tuple[int, tuple[str, bytes, int, str]]) -> tuple[int, dict[str, Any]]:
        i, (path, body, _, _) = numbered
        token = (staff if path == "/v1/examples" else clients)[i % 32]
        return call(f"{served.base}{path}", body, token)

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(send, enumerate(requests)))
    wrong = [
        (path, body[:80], expected, got, answer.get("error"))
        for (path, body, expected, kind), (got, answer) in zip(requests, answers, strict=True)
        if kind != "identical" and got != expected
    ]
    assert wrong == []
    identical = sorted(
        got for (*_, kind), (got, _) in zip(requests, answers, strict=True) if kind == "identical"
    )
    assert identical == [200] * 7 + [201]

    # Every well-formed row is stored, once; no row of a refused request is.
    db = Database(make_settings(served.data_dir))
    try:

        def count(table: Any, column: Any, pattern: str) -> int:
            with db.session() as session:
                return int(
                    session.scalar(
                        select(func.count()).select_from(table).where(column.like(pattern))
                    )
                    or 0
                )

        # Incoming messages are written in the background, every half second.
        deadline = time.monotonic() + 30
        while count(IncomingMessage, IncomingMessage.message, "mixed %") < 192:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert count(IncomingMessage, IncomingMessage.message, "mixed %") == 192
        assert count(Example, Example.message, "mixed feedback %") == 64
        assert count(Example, Example.message, "mixed same") == 1
        assert count(Example, Example.message, "mixed import %") == 160
        assert count(Example, Example.message, "poisoned batch %") == 0
    finally:
        db.dispose()
