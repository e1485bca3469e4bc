"""gunicorn's threaded worker, with every request read in full before a thread takes it.

gunicorn's ``gthread`` worker hands a connection to a thread as soon as the first byte
arrives; the thread then reads the rest of the request with blocking calls. A client that
sends a request head and stalls therefore holds a thread, and 32 of them held every thread
of `replyguard run` (issue 11, item 8: other requests waited 40 s and more). This worker
reads each request in the worker's event loop instead, without a thread, and hands it to
the thread pool only once its head and body have arrived, as a buffering proxy (nginx) does
in front of gunicorn in docker-compose.yml. A stalled or slow client costs a socket and a
buffer, never a thread, and is closed after ``READ_TIMEOUT`` seconds.

Answers are still written by the thread, but a client that reads nothing cannot hold it
with one: the largest answer a client without a staff key can get (/openapi.json, about
10 KB) fits in the socket's send buffer, so the write returns at once. (In docker-compose.yml
nginx also takes every answer whole before feeding it to the client.)

Framing (where a request ends: Content-Length or chunked) comes from httptools, the
bindings to llhttp, Node.js's HTTP parser in C (uvicorn uses it too): about 6 µs a request
in the worker's one event-loop thread (bench/framing.py); the pure-Python h11, tried first,
was about sixty times slower. gunicorn's own parser then parses the buffered bytes in the
thread exactly as before, so the application sees the same WSGI environ.

Used with ``--worker-class=webapp.buffering.BufferingThreadWorker`` (webapp/launch.py). It
buffers plain HTTP/1.x only: with TLS, the uWSGI protocol or cleartext HTTP/2 configured it
behaves as ``gthread`` (the embedded default and docker-compose.yml use none of them).
"""

from __future__ import annotations

import contextlib
import json
import re
import selectors
import socket
import time
from functools import partial

import httptools
from gunicorn.workers.gthread import TConn
from gunicorn.workers.gthread import ThreadWorker

from webapp.errors import error_body

# Seconds a client has to send one whole request once its first byte arrived (nginx's
# client_header_timeout and client_body_timeout are 60 s each, per read; this is for the
# whole request). An idle kept-alive connection is closed after gunicorn's --keepalive.
READ_TIMEOUT = 30.0
# Bytes of request line and headers held before answering 431: nginx's default is 4 buffers
# of 8 KiB; twice that leaves room for long bearer tokens and cookies.
HEAD_LIMIT = 64 * 1024
# The body limit when the application does not state one (Flask's MAX_CONTENT_LENGTH):
# beyond it, the request goes to a thread at once and the application answers 413.
DEFAULT_BODY_LIMIT = 1024 * 1024
_RECV_BYTES = 64 * 1024


class _Reading:
    """One request being read: the bytes so far, and llhttp's view of where it ends (these
    methods are its callbacks)."""

    def __init__(self, limit: int) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.data = bytearray()
        self.limit = limit
        self.head_done = False
        self.complete = False
        # The body is larger than the limit: hand the request on as it stands.
        self.too_large = False
        self.body = 0
        self.expects_continue = False
        self.continue_sent = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"expect" and value.strip().lower() == b"100-continue":
            self.expects_continue = True
        elif name == b"content-length" and value.strip().isdigit():
            self.too_large = self.too_large or int(value) > self.limit

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.body += len(body)
        self.too_large = self.too_large or self.body > self.limit

    def on_message_complete(self) -> None:
        self.complete = True


class BufferingThreadWorker(ThreadWorker):  # type: ignore[misc]
    """``gthread`` whose threads only ever see requests that have fully arrived."""

    def enqueue_req(self, conn: TConn) -> None:
        """Every path to the thread pool (a new connection, a kept-alive one that became
        readable, bytes pipelined behind a response) passes here: read first, then submit."""
        if getattr(conn, "request_complete", False) or not self._buffers():
            conn.request_complete = False
            super().enqueue_req(conn)
            return
        reading = _Reading(self._body_limit())
        # Bytes gunicorn read ahead of the previous request (pipelining) come first.
        held = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        if held and self._finish(conn, _feed(reading, held, conn.sock)):
            return
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + READ_TIMEOUT
        # gthread closes the connections in this queue once their timeout passes.
        self.pending_conns.append(conn)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn, reading)
        )

    def _buffers(self) -> bool:
        cfg = self.cfg
        return bool(
            not cfg.is_ssl
            and getattr(cfg, "protocol", "http") == "http"
            and getattr(cfg, "http2_cleartext", "off") in (None, "off")
        )

    def _body_limit(self) -> int:
        config = getattr(self.wsgi, "config", None) or {}
        return int(config.get("MAX_CONTENT_LENGTH") or DEFAULT_BODY_LIMIT)

    def _on_readable(self, conn: TConn, reading: _Reading, _sock: socket.socket) -> None:
        try:
            data = conn.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        outcome = _feed(reading, data, conn.sock) if data else _GONE
        if outcome is not None:
            self.poller.unregister(conn.sock)
            self.pending_conns.remove(conn)
            self._finish(conn, outcome)

    def _finish(self, conn: TConn, outcome: _Outcome | None) -> bool:
        """Act on what reading found; True when the connection has left the reading state."""
        if outcome is None:
            return False
        if outcome is _GONE:
            # The client went away before its request was complete.
            self.nr_conns -= 1
            conn.close()
        elif isinstance(outcome, bytes):
            self._submit(conn, outcome)
        elif isinstance(outcome, tuple):
            status, reason = outcome
            self._refuse(conn, status, reason)
        return True

    def _submit(self, conn: TConn, data: bytes) -> None:
        conn.sock.setblocking(True)
        if conn.parser is None:
            # Builds gunicorn's parser for this socket (reads nothing: see TConn.init).
            conn.init()
        conn.parser.unreader.unread(data)
        conn.data_ready = True
        conn.request_complete = True
        self.enqueue_req(conn)

    def _refuse(self, conn: TConn, status: int, reason: str) -> None:
        """A request that is not HTTP, or whose head is too large: answered here, in the API's
        error shape, and the connection closed (no thread would ever get a whole request)."""
        message = (
            f"the request head is larger than {HEAD_LIMIT} bytes"
            if status == 431
            else f"malformed HTTP request: {reason}"
        )
        code = "headers_too_large" if status == 431 else "bad_request"
        body = json.dumps(error_body(status, message, code=code)).encode()
        head = (
            f"HTTP/1.1 {status} {'Request Header Fields Too Large' if status == 431 else 'Bad Request'}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
            "\r\nConnection: close\r\n\r\n"
        )
        _send_quietly(conn.sock, head.encode() + body)
        self.nr_conns -= 1
        conn.close()

    def _cap_keepalive(self, deadline: float) -> None:
        """On shutdown, close the connections still sending a request by ``deadline`` too,
        instead of waiting up to READ_TIMEOUT for them."""
        super()._cap_keepalive(deadline)
        for conn in self.pending_conns:
            conn.timeout = min(conn.timeout, deadline)


_GONE = object()
# The Expect header line of a request head (the head ends at the first empty line, and no
# header line of it starts with CR or LF).
_EXPECT = re.compile(rb"(?<=\n)expect:[^\r\n]*\r?\n(?=(?:[^\r\n]+\r?\n)*\r?\n)", re.IGNORECASE)
# What reading found: the whole request (its bytes), a refusal (status, reason), or the
# client gone (_GONE); None while more is needed.
_Outcome = bytes | tuple[int, str] | object


def _feed(reading: _Reading, data: bytes, sock: socket.socket) -> _Outcome | None:
    """Add bytes to the request being read; return what is known once it is complete, too
    large to buffer, or not HTTP at all, and None while more bytes are needed.

    A declared or chunked body larger than the reading's limit is handed on as it stands:
    the application answers 413 without reading the rest."""
    reading.data += data
    try:
        reading.parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        # An Upgrade request (h2c, websocket): complete as far as HTTP/1 goes; gunicorn
        # decides what to do with it.
        return bytes(reading.data)
    except httptools.HttpParserError as exc:
        if not reading.complete:
            return (400, str(exc) or type(exc).__name__)
        # The request is whole; the bytes after it (pipelined) are gunicorn's to judge.
    if not reading.head_done and len(reading.data) > HEAD_LIMIT:
        return (431, "request head too large")
    if reading.head_done and reading.expects_continue and not reading.continue_sent:
        # The client sends its body only when told to (curl does so for bodies over 1 KiB).
        _send_quietly(sock, b"HTTP/1.1 100 Continue\r\n\r\n")
        reading.continue_sent = True
    if not (reading.complete or reading.too_large):
        return None
    if reading.expects_continue:
        # The expectation is met: handed on without it, as nginx does, or gunicorn would send
        # the client a second "100 Continue".
        return _EXPECT.sub(b"", bytes(reading.data), count=1)
    return bytes(reading.data)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """Best effort on a non-blocking socket: a client that cannot take a few hundred bytes is
    about to be closed or is reading nothing anyway."""
    with contextlib.suppress(OSError):
        sock.send(data)
