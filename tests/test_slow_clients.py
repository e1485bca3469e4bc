"""Slow and stalled clients against the real gunicorn server on loopback (issue 11, item 8).

The server runs as `replyguard run` and `replyguard serve` run it (webapp/launch.py), with
fewer threads (4) than there are stalled connections (64): under gunicorn's plain gthread
worker every thread would be held by a stalled client and the ordinary requests would wait
until those clients gave up. "Answered within a second" is the behaviour specified, so it is
asserted, with every socket bounded by a timeout.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from typing import BinaryIO

import pytest

from core.db import Database
from core.keys import create_key
from core.schema import Role
from tests.helpers import gunicorn
from tests.helpers import make_settings
from webapp.buffering import HEAD_LIMIT
from webapp.launch import BUFFERING_WORKER
from webapp.launch import gunicorn_command

pytestmark = pytest.mark.integration

STALLED = 64
THREADS = 4
ANSWER_WITHIN_S = 1.0
# Every socket operation in this file gives up after this long: nothing here can hang.
SOCKET_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def server(
    trained_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, str]]:
    data_dir = tmp_path_factory.mktemp("slow") / "data"
    shutil.copytree(trained_dir, data_dir)
    db = Database(make_settings(data_dir))
    with db.session() as session:
        token, _ = create_key(session, "slow-clients", Role.CLIENT, "tester")
    db.dispose()
    with gunicorn(data_dir, threads=THREADS) as server:
        yield server.port, token


def suggest(port: int, token: str, message: str) -> tuple[int, float]:
    """POST one suggestion request on a new connection; (status, seconds to the answer)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/suggestions",
        data=json.dumps({"message": message}).encode(),
        headers={"Authorization": f"Bearer {token}"},
    )
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=SOCKET_TIMEOUT_S) as response:
        response.read()
        return response.status, time.perf_counter() - start


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_S)


def head(token: str, length: int, extra: str = "") -> bytes:
    return (
        f"POST /v1/suggestions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def read_response(stream: BinaryIO) -> tuple[int, dict[str, Any]]:
    """The next response (status, JSON body) from a socket's file: status line, headers,
    then Content-Length bytes of body (or up to the end, when the server closes)."""
    status = int(stream.readline().split()[1])
    length = None
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = stream.read(length) if length is not None else stream.read()
    return status, json.loads(body) if body else {}


def test_the_embedded_default_and_serve_read_requests_before_a_thread_takes_them() -> None:
    command = gunicorn_command("127.0.0.1", 8000, workers=1, threads=32)
    assert f"--worker-class={BUFFERING_WORKER}" in command


def test_64_stalled_connections_do_not_stop_others_being_served(
    server: tuple[int, str],
) -> None:
    port, token = server
    with ExitStack() as stack:
        stalled = [stack.enter_context(connect(port)) for _ in range(STALLED)]
        for i, sock in enumerate(stalled):
            # Three kinds of stall: a head whose body never comes, half a head, nothing.
            if i % 3 == 0:
                sock.sendall(head(token, 100))
            elif i % 3 == 1:
                sock.sendall(b"POST /v1/suggestions HTTP/1.1\r\nHost: t\r\n")
        answers = [suggest(port, token, f"are we still on for lunch? ({i})") for i in range(10)]
        assert [status for status, _ in answers] == [200] * 10
        slowest = max(seconds for _, seconds in answers)
        assert slowest < ANSWER_WITHIN_S, f"an ordinary request took {slowest:.2f} s"

        # A slow client that finishes its request is served like any other.
        body = json.dumps({"message": "see you at noon"}).encode()
        slow = stalled[0]
        slow.sendall(body[:5])
        slow.sendall(body[5:] + b" " * (100 - len(body)))
        status, answer = read_response(slow.makefile("rb"))
        assert status == 200
        assert len(answer["suggestions"]) == 3


def test_pipelined_and_expect_continue_requests_are_answered(server: tuple[int, str]) -> None:
    port, token = server
    body = json.dumps({"message": "hello there"}).encode()
    with connect(port) as sock, sock.makefile("rb") as stream:
        # Two requests in one write: the second is read ahead of the first's answer.
        sock.sendall((head(token, len(body)) + body) * 2)
        assert read_response(stream)[0] == 200
        assert read_response(stream)[0] == 200
    with connect(port) as sock, sock.makefile("rb") as stream:
        sock.sendall(head(token, len(body), "Expect: 100-continue\r\n"))
        assert stream.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert stream.readline() == b"\r\n"
        sock.sendall(body)
        # Then the answer itself, with no second "100 Continue" before it.
        status, answer = read_response(stream)
        assert status == 200
        assert answer["model_version"] == "v1"


def test_malformed_and_oversized_requests_get_the_json_error_shape(
    server: tuple[int, str],
) -> None:
    port, token = server
    with connect(port) as sock:
        sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        status, answer = read_response(sock.makefile("rb"))
    assert (status, answer["error"]["code"]) == (400, "bad_request")
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Padding: " + b"a" * (HEAD_LIMIT + 10))
        status, answer = read_response(sock.makefile("rb"))
    assert (status, answer["error"]["status"]) == (431, 431)
    with connect(port) as sock:
        # Larger than the body limit: refused by the application without reading it.
        sock.sendall(head(token, 10 * 1024 * 1024) + b"{")
        status, answer = read_response(sock.makefile("rb"))
    assert (status, answer["error"]["code"]) == (413, "body_too_large")


def test_a_client_that_goes_away_mid_request_leaves_the_server_serving(
    server: tuple[int, str],
) -> None:
    port, token = server
    for _ in range(20):
        with connect(port) as sock:
            sock.sendall(head(token, 50) + b'{"message": ')
    status, _ = suggest(port, token, "still there?")
    assert status == 200
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/nothing", timeout=SOCKET_TIMEOUT_S)
    except urllib.error.HTTPError as error:
        assert error.code == 404


def chunked(token: str, body: bytes, chunk: int = 16 * 1024) -> bytes:
    """A POST /v1/suggestions whose body is sent chunked (no Content-Length)."""
    head = (
        f"POST /v1/suggestions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    return head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def test_a_chunked_body_over_the_limit_gets_413_like_a_declared_one(
    server: tuple[int, str],
) -> None:
    """A chunked body larger than REPLYGUARD_MAX_BODY_BYTES (256 KiB by default): 413 in the
    JSON error shape, as with Content-Length (before: werkzeug cut the stream at the limit and
    the JSON parser answered 400 on the cut-off body; faults item 12). A chunked body within
    the limit is read whole and answered as usual."""
    from core.settings import CoreSettings

    port, token = server
    limit = CoreSettings.load().max_body_bytes
    over = json.dumps({"message": "x" * (limit + 1000)}).encode()
    with connect(port) as sock:
        sock.sendall(chunked(token, over))
        status, answer = read_response(sock.makefile("rb"))
    assert (status, answer["error"]["code"]) == (413, "body_too_large")
    # Just over the limit, in one chunk and in many.
    just_over = b'{"message": "hi", "pad": "' + b" " * limit + b'"}'
    for size in (len(just_over), 1000):
        with connect(port) as sock:
            sock.sendall(chunked(token, just_over, size))
            status, answer = read_response(sock.makefile("rb"))
        assert (status, answer["error"]["status"]) == (413, 413)
    # Within the limit, chunked in 5-byte pieces: read whole and answered.
    with connect(port) as sock:
        sock.sendall(chunked(token, json.dumps({"message": "hello there"}).encode(), 5))
        status, answer = read_response(sock.makefile("rb"))
    assert status == 200, answer
    assert answer["suggestions"]
