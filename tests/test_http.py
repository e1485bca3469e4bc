"""The API through a real gunicorn server on loopback, as clients see it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.db import Database
from core.keys import create_key
from core.schema import Role
from tests.helpers import make_settings
from webapp.launch import free_port
from webapp.launch import start_server
from webapp.launch import stop_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(
    trained_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    import shutil

    data_dir = tmp_path_factory.mktemp("http") / "data"
    shutil.copytree(trained_dir, data_dir)
    db = Database(make_settings(data_dir))
    with db.session() as session:
        token, _ = create_key(session, "http", Role.CLIENT)
    db.dispose()
    port = free_port()
    process = start_server(data_dir, port, workers=1, threads=4, log=data_dir / "server.log")
    yield f"http://127.0.0.1:{port}", token
    stop_server(process)


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
        f"{base}/v1/suggestions", b'{"message": "are we still on for lunch?"}', token
    )
    assert status == 200
    assert body["model_version"] == "v1"
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
