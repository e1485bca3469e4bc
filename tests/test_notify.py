"""Webhook notifications, delivered to a real HTTP receiver on 127.0.0.1: signed bodies,
retries with backoff (in this process and through a real Celery worker and Redis), one event
per blocked generation, override and rollback, and a change that stands when Redis is down."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import func
from sqlalchemy import select

from core import webhooks
from core.db import Database
from core.schema import DeliveryStatus
from core.schema import Generation
from core.schema import GenerationStage
from core.schema import GenerationStatus
from core.schema import ModelVersion
from core.schema import WebhookAttempt
from core.schema import WebhookDelivery
from models.artifact import load_model
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import get_version
from models.registry import production
from models.registry import register
from tests.helpers import make_settings
from tests.helpers import wait_for_worker
from webapp.cli import main
from webapp.launch import free_port
from webapp.launch import server_env
from webapp.launch import stop_server
from webapp.launch import worker_command
from worker import notify
from worker.celery_app import queue_deliveries
from worker.context import PipelineContext
from worker.notify import deliver_now
from worker.notify import set_queuer
from worker.pipeline import STAGES
from worker.pipeline import fail_stage
from worker.pipeline import mark_failed
from worker.pipeline import run_stage
from worker.promotion import override
from worker.promotion import rollback
from worker.settings import Settings

SECRET = "s3cret-for-tests"
PUBLIC = "https://replyguard.example.test"
BLOCK_REASONS = ["Recall@3 fell 4.9% below production (0.41 → 0.39); tolerance is 3%."]


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers with the next code of
    ``answers`` (then 200)."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = iter(answers)
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                code = next(receiver.answers, 200)
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"nope" if code >= 300 else b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/replyguard"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver([])
    yield server
    server.close()


@pytest.fixture(autouse=True)
def celery_queues_deliveries() -> None:
    """The tests call the code that notifies directly, in this process: deliveries are queued
    as in every process of the service (celery_init_app and the command line set this)."""
    set_queuer(queue_deliveries)


def signature_ok(headers: dict[str, str], body: bytes) -> bool:
    """What docs/operations.md tells a receiver to do."""
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-ReplyGuard-Signature"])


def notifying(data_dir: Path, url: str, **overrides: Any) -> Settings:
    return make_settings(
        data_dir,
        notify_urls=url,
        notify_secret=SECRET,
        notify_backoff_seconds=0.01,
        public_url=PUBLIC + "/",
        **overrides,
    )


def deliveries(db: Database) -> list[WebhookDelivery]:
    with db.session() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def attempts(db: Database, delivery_pk: int) -> list[tuple[int, int | None]]:
    with db.session() as session:
        return [(a.attempt, a.status_code) for a in webhooks.attempts_of(session, delivery_pk)]


# ---------------------------------------------------------------------------------------
# Signing, retries, giving up


def test_notify_test_sends_a_signed_ping(receiver: Receiver, data_dir: Path, db: Database) -> None:
    runner = CliRunner()
    env = {"REPLYGUARD_NOTIFY_URLS": receiver.url, "REPLYGUARD_NOTIFY_SECRET": SECRET}
    result = runner.invoke(main, ["--data-dir", str(data_dir), "notify", "test"], env=env)
    assert result.exit_code == 0, result.output
    assert f"{receiver.url}: delivered (HTTP 200)" in result.output

    [(headers, body)] = receiver.requests
    assert signature_ok(headers, body)
    assert not signature_ok(
        {"X-ReplyGuard-Signature": headers["X-ReplyGuard-Signature"]}, body + b" "
    )
    payload = json.loads(body)
    assert payload["event"] == "ping"
    assert headers["X-ReplyGuard-Event"] == "ping"
    assert headers["X-ReplyGuard-Delivery"] == payload["delivery_id"]
    assert headers["Content-Type"] == "application/json"

    listed = runner.invoke(main, ["--data-dir", str(data_dir), "notify", "list", "--attempts"])
    assert listed.exit_code == 0, listed.output
    assert "ping" in listed.output
    assert "delivered attempts 1" in listed.output
    assert payload["delivery_id"] in listed.output
    assert "attempt 1" in listed.output


def test_notify_test_without_a_url_or_secret_says_what_to_set(
    receiver: Receiver, data_dir: Path, db: Database
) -> None:
    runner = CliRunner()
    args = ["--data-dir", str(data_dir), "notify", "test"]
    result = runner.invoke(main, args, env={"REPLYGUARD_NOTIFY_URLS": ""})
    assert result.exit_code == 1
    assert "REPLYGUARD_NOTIFY_URLS" in result.output
    result = runner.invoke(main, args, env={"REPLYGUARD_NOTIFY_URLS": receiver.url})
    assert result.exit_code == 1
    assert "REPLYGUARD_NOTIFY_SECRET is empty" in result.output
    # Nothing unsigned ever left.
    assert receiver.requests == []


def test_a_receiver_that_fails_twice_gets_three_attempts(data_dir: Path, db: Database) -> None:
    flaky = Receiver([500, 503])
    try:
        settings = notifying(data_dir, flaky.url)
        with db.session() as session:
            [delivery] = webhooks.record(session, settings, "ping", {"n": 1})
            pk = delivery.id
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

        outcomes = deliver_now(db, settings, pk, sleep=sleep)
    finally:
        flaky.close()
    assert [(o.status, o.status_code) for o in outcomes] == [
        ("pending", 500),
        ("pending", 503),
        ("delivered", 200),
    ]
    # Exponential backoff: the setting, then twice it.
    assert waits == [0.01, 0.02]
    assert attempts(db, pk) == [(1, 500), (2, 503), (3, 200)]
    [row] = deliveries(db)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == (
        "delivered",
        3,
        200,
        "",
    )
    assert row.finished_at is not None
    # The same bytes every time, each signed; the attempt is numbered in a header.
    bodies = {body for _, body in flaky.requests}
    assert len(bodies) == 1
    assert all(signature_ok(h, b) for h, b in flaky.requests)
    assert [h["X-ReplyGuard-Attempt"] for h, _ in flaky.requests] == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        # Still failing after the last attempt.
        ([500, 500, 500, 500], [500, 500, 500]),
        # A refusal that sending again cannot change: no retry.
        ([401], [401]),
    ],
)
def test_a_delivery_is_given_up(
    data_dir: Path, db: Database, answers: list[int], expected: list[int]
) -> None:
    server = Receiver(answers)
    try:
        settings = notifying(data_dir, server.url, notify_max_attempts=3)
        with db.session() as session:
            [delivery] = webhooks.record(session, settings, "ping", {})
        outcomes = deliver_now(db, settings, delivery.id)
    finally:
        server.close()
    assert [o.status_code for o in outcomes] == expected
    assert outcomes[-1].status == "failed"
    assert outcomes[-1].error == f"HTTP {expected[-1]}: nope"
    assert len(server.requests) == len(expected)


def test_an_unreachable_receiver_is_retried_then_given_up(data_dir: Path, db: Database) -> None:
    settings = notifying(data_dir, f"http://127.0.0.1:{free_port()}/gone", notify_max_attempts=2)
    with db.session() as session:
        [delivery] = webhooks.record(session, settings, "ping", {})
    outcomes = deliver_now(db, settings, delivery.id)
    assert [o.status for o in outcomes] == ["pending", "failed"]
    assert all(o.status_code is None for o in outcomes)
    assert "ConnectionError" in outcomes[-1].error
    assert attempts(db, delivery.id) == [(1, None), (2, None)]


# ---------------------------------------------------------------------------------------
# The events


def _candidate(ctx: PipelineContext, encoder: Encoder, decision: dict[str, Any]) -> int:
    """A generation whose every stage but promote is done, with a real candidate artifact
    (production's model written again as a new version) and the gate's ``decision``."""
    with ctx.db.session() as session:
        parent = production(session)
        assert parent is not None
        path, checksum, version = (
            artifact_dir(ctx.settings, parent),
            parent.checksum,
            parent.version,
        )
    model, _ = load_model(path, encoder, checksum)
    candidate = register(ctx.db, ctx.settings, model, 1, version, {})
    with ctx.db.session() as session:
        generation = Generation(
            number=1,
            status=GenerationStatus.RUNNING.value,
            lock="active",
            stage="gate",
            stage_runs={
                stage: GenerationStage(stage=stage, status="done") for stage in STAGES[:-1]
            },
            decision=decision,
            parent_version=version,
            candidate_version=candidate.version,
        )
        session.add(generation)
        session.flush()
        return generation.id


BLOCK = {
    "verdict": "block",
    "reasons": BLOCK_REASONS,
    "metrics": [],
    "compared_with": ["production", "baseline"],
    "fresh_human_examples": 0,
}


def test_blocked_override_and_rollback_each_send_one_event(
    receiver: Receiver, data_dir: Path, db: Database, encoder: Encoder, redis_url: str
) -> None:
    settings = notifying(data_dir, receiver.url, redis_url=redis_url)
    ctx = PipelineContext(settings, db, encoder)
    generation_id = _candidate(ctx, encoder, BLOCK)

    run_stage(ctx, generation_id, "promote")
    with db.session() as session:
        assert session.get_one(Generation, generation_id).status == "blocked"
        candidate = session.get_one(Generation, generation_id).candidate_version
        assert candidate == "v2"
    with db.session() as session:
        override(session, settings, "v2", "reviewer", "checked by hand")
    with db.session() as session:
        rollback(session, settings, "v1", "reviewer", "users complained")
    # A change that is rolled back notifies nobody.
    with pytest.raises(RuntimeError), db.session() as session:
        override(session, settings, "v2", "reviewer", "never committed")
        raise RuntimeError("the caller fails after the change")
    with db.session() as session:
        assert production(session).version == "v1"  # type: ignore[union-attr]

    rows = deliveries(db)
    assert [r.event for r in rows] == [
        "generation.blocked",
        "production.override",
        "production.rollback",
    ]
    assert {r.status for r in rows} == {"pending"}
    # Each was queued for a worker after its commit (no worker runs in this test).
    queue = redis.Redis(unix_socket_path=redis_url.removeprefix("redis+socket://"))
    # On the notifications queue: never the one the generation workers consume.
    assert queue.llen("replyguard.notifications") == 3
    assert queue.llen("celery") == 0

    for row in rows:
        assert [o.status for o in deliver_now(db, settings, row.id)] == ["delivered"]
    blocked, overridden, rolled_back = receiver.payloads()
    assert all(signature_ok(h, b) for h, b in receiver.requests)

    assert blocked["event"] == "generation.blocked"
    assert blocked["decision"] == {"verdict": "block", "reasons": BLOCK_REASONS}
    assert blocked["generation"]["id"] == generation_id
    assert blocked["generation"]["number"] == 1
    assert blocked["generation"]["status"] == "blocked"
    assert blocked["models"] == {"production": "v1", "candidate": "v2", "parent": "v1"}
    assert blocked["url"] == f"{PUBLIC}/dashboard/generations/{generation_id}"
    assert blocked["delivery_id"] == rows[0].delivery_id

    assert overridden["event"] == "production.override"
    assert overridden["models"]["production"] == "v2"
    assert overridden["models"]["previous"] == "v1"
    assert overridden["decision"]["verdict"] == "block"
    assert overridden["change"]["actor"] == "reviewer"
    assert overridden["change"]["reason"] == "checked by hand"
    assert overridden["url"] == f"{PUBLIC}/dashboard/models"

    assert rolled_back["event"] == "production.rollback"
    assert rolled_back["models"]["production"] == "v1"
    assert rolled_back["models"]["previous"] == "v2"
    assert rolled_back["change"]["reason"] == "users complained"


def test_a_failed_generation_sends_one_event(
    receiver: Receiver, data_dir: Path, db: Database, encoder: Encoder, redis_url: str
) -> None:
    settings = notifying(data_dir, receiver.url, redis_url=redis_url)
    ctx = PipelineContext(settings, db, encoder)
    generation_id = _candidate(ctx, encoder, BLOCK)
    # Two encode chunks failing one after the other, then a person marking it failed.
    fail_stage(ctx, generation_id, "encode", RuntimeError("chunk 0: out of memory"))
    fail_stage(ctx, generation_id, "encode", RuntimeError("chunk 1: out of memory"))
    mark_failed(ctx, generation_id, "given up")

    [row] = deliveries(db)
    assert row.event == "generation.failed"
    payload = json.loads(row.body)
    assert payload["generation"]["error"] == "encode: RuntimeError: chunk 0: out of memory"
    assert payload["generation"]["status"] == "failed"


def test_the_events_sent_are_a_setting(
    receiver: Receiver, data_dir: Path, db: Database, encoder: Encoder, redis_url: str
) -> None:
    settings = notifying(
        data_dir, receiver.url, redis_url=redis_url, notify_events="production.rollback"
    )
    ctx = PipelineContext(settings, db, encoder)
    run_stage(ctx, _candidate(ctx, encoder, BLOCK), "promote")
    with db.session() as session:
        override(session, settings, "v2", "reviewer", "checked by hand")
    assert deliveries(db) == []


def test_without_urls_nothing_is_recorded_or_queued(
    data_dir: Path, db: Database, encoder: Encoder
) -> None:
    settings = make_settings(data_dir)
    ctx = PipelineContext(settings, db, encoder)
    run_stage(ctx, _candidate(ctx, encoder, BLOCK), "promote")
    with db.session() as session:
        override(session, settings, "v2", "reviewer", "checked by hand")
    assert deliveries(db) == []
    # No embedded Redis was started to queue anything.
    assert not (data_dir / "redis").exists()


def test_redis_down_records_the_delivery_and_the_change_stands(
    receiver: Receiver, data_dir: Path, db: Database, encoder: Encoder
) -> None:
    settings = notifying(data_dir, receiver.url, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    ctx = PipelineContext(settings, db, encoder)
    run_stage(ctx, _candidate(ctx, encoder, BLOCK), "promote")
    with db.session() as session:
        override(session, settings, "v2", "reviewer", "checked by hand")
    with db.session() as session:
        assert production(session).version == "v2"  # type: ignore[union-attr]
        assert get_version(session, "v1").status == "archived"
    rows = deliveries(db)
    assert [r.event for r in rows] == ["generation.blocked", "production.override"]
    for row in rows:
        assert row.status == DeliveryStatus.FAILED.value
        assert row.last_error.startswith("not queued: the task queue (Redis) is unreachable")
    assert receiver.requests == []


def test_a_process_without_a_task_queue_records_the_delivery_and_the_change_stands(
    receiver: Receiver,
    data_dir: Path,
    db: Database,
    encoder: Encoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hooks know no Celery: a process that never set a queuer (no celery_init_app, not
    the command line) still records its deliveries, as not queued, and its change stands."""
    monkeypatch.setattr(notify, "_queuer", None)
    settings = notifying(data_dir, receiver.url)
    ctx = PipelineContext(settings, db, encoder)
    run_stage(ctx, _candidate(ctx, encoder, BLOCK), "promote")
    with db.session() as session:
        assert production(session).version == "v1"  # type: ignore[union-attr]
    [row] = deliveries(db)
    assert (row.event, row.status) == ("generation.blocked", DeliveryStatus.FAILED.value)
    assert row.last_error == "not queued: no task queue in this process"
    # Nothing tried to reach a queue: no embedded Redis was started.
    assert not (data_dir / "redis").exists()


def test_a_queuer_that_queues_some_records_the_rest(
    receiver: Receiver, data_dir: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queuer names the deliveries it could not queue; only those are recorded failed."""

    def first_only(settings: Settings, delivery_ids: Sequence[int]) -> None:
        raise notify.NotQueued(delivery_ids[1:], "the queue filled up")

    settings = notifying(data_dir, receiver.url)
    with db.session() as session:
        pks = [d.id for n in range(2) for d in webhooks.record(session, settings, "ping", {"n": n})]
    monkeypatch.setattr(notify, "_queuer", first_only)
    notify.queue(settings, db.engine, pks)
    first, second = deliveries(db)
    assert (first.status, first.last_error) == ("pending", "")
    assert (second.status, second.last_error) == ("failed", "not queued: the queue filled up")


# ---------------------------------------------------------------------------------------
# Through a real worker


@pytest.mark.integration
def test_a_worker_delivers_with_retries(
    data_dir: Path, db: Database, encoder: Encoder, redis_url: str
) -> None:
    flaky = Receiver([500, 502])
    env = {
        "REDIS_URL": redis_url,
        "REPLYGUARD_NOTIFY_URLS": flaky.url,
        "REPLYGUARD_NOTIFY_SECRET": SECRET,
        "REPLYGUARD_NOTIFY_BACKOFF_SECONDS": "0.2",
    }
    log = (data_dir / "worker.log").open("wb")
    process = subprocess.Popen(
        worker_command("INFO", queue="notifications"),
        env=server_env(data_dir, **env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        wait_for_worker(redis_url, process)
        settings = notifying(data_dir, flaky.url, redis_url=redis_url)
        with db.session() as session:
            # v1 is production; make it a rollback target by promoting a copy over it.
            model, _ = load_model(
                artifact_dir(settings, production(session)),  # type: ignore[arg-type]
                encoder,
            )
        register(db, settings, model, 1, "v1", {})
        with db.session() as session:
            override(session, settings, "v2", "reviewer", "a copy, for the test")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            [row] = deliveries(db)
            if row.status != "pending":
                break
            time.sleep(0.2)
    finally:
        stop_server(process)
        flaky.close()
    assert (row.event, row.status, row.attempts) == ("production.override", "delivered", 3)
    assert attempts(db, row.id) == [(1, 500), (2, 502), (3, 200)]
    assert all(signature_ok(h, b) for h, b in flaky.requests)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(WebhookAttempt)) == 3
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 2


# ---------------------------------------------------------------------------------------
# Slow and huge answers (item 6): a deadline for the whole attempt, a cap on what is read,
# and a queue of their own


class RawReceiver:
    """A TCP server on 127.0.0.1 that reads one request head and body, then runs ``answer``
    with the connected socket (to trickle, or to flood). Stops by itself after ``limit``
    seconds; records how many bytes ``answer`` managed to send."""

    def __init__(self, answer: Any, limit: float = 30.0) -> None:
        import socket

        self.answer, self.limit = answer, limit
        self.sent = 0
        self.closed_early = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(limit)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hooks"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(self.limit)
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re_search(rb"(?i)content-length: *(\d+)", head))
            while len(body) < length:
                body += connection.recv(65536)
            try:
                self.answer(self, connection, time.monotonic() + self.limit)
            except OSError:
                # The client hung up: what this test wants to see.
                self.closed_early.set()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(self.limit + 5)


def re_search(pattern: bytes, data: bytes) -> bytes:
    import re

    found = re.search(pattern, data)
    assert found is not None, data
    return found.group(1)


def trickle_body(receiver: RawReceiver, connection: Any, until: float) -> None:
    """200 with Content-Length: 40, then a byte of the body every 0.5 s."""
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")
    for _ in range(40):
        if time.monotonic() > until:
            return
        time.sleep(0.5)
        connection.sendall(b"x")
        receiver.sent += 1


def trickle_head(receiver: RawReceiver, connection: Any, until: float) -> None:
    """A 500's status line and headers, a byte every 0.5 s (never ends within the test)."""
    for byte in b"HTTP/1.1 500 Internal Server Error\r\nX-Padding: " + b"y" * 200:
        if time.monotonic() > until:
            return
        connection.sendall(bytes([byte]))
        receiver.sent += 1
        time.sleep(0.5)


def flood(receiver: RawReceiver, connection: Any, until: float) -> None:
    """A 500 whose body is 300 MB, sent as fast as the client reads."""
    total = 300 * 1024 * 1024
    connection.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % total)
    chunk = b"error page " * 6000
    while receiver.sent < total and time.monotonic() < until:
        connection.sendall(chunk[: total - receiver.sent])
        receiver.sent += len(chunk)


def test_a_receiver_that_trickles_its_answer_is_cut_at_the_deadline(
    data_dir: Path, db: Database
) -> None:
    """`notify test` against a receiver that answers 200 with Content-Length: 40 and then
    sends a byte at a time: it returns at once (a 2xx answer's body is not needed); against
    one that trickles its status line: it returns at the deadline (2 s here), not when the
    receiver is done, and the attempt is recorded as a timeout to retry."""
    runner = CliRunner()
    args = ["--data-dir", str(data_dir), "notify", "test"]
    slow_body = RawReceiver(trickle_body)
    try:
        env = {
            "REPLYGUARD_NOTIFY_URLS": slow_body.url,
            "REPLYGUARD_NOTIFY_SECRET": SECRET,
            "REPLYGUARD_NOTIFY_TIMEOUT_SECONDS": "2",
        }
        started = time.monotonic()
        result = runner.invoke(main, args, env=env)
        took = time.monotonic() - started
    finally:
        slow_body.close()
    assert result.exit_code == 0, result.output
    assert f"{slow_body.url}: delivered (HTTP 200)" in result.output
    assert took < 2.5, f"a 2xx answer's trickling body held `notify test` {took:.1f} s"

    slow_head = RawReceiver(trickle_head)
    try:
        env["REPLYGUARD_NOTIFY_URLS"] = slow_head.url
        started = time.monotonic()
        result = runner.invoke(main, args, env=env)
        took = time.monotonic() - started
    finally:
        slow_head.close()
    assert result.exit_code == 1, result.output
    assert "no whole answer within 2 s" in result.output
    assert 1.9 < took < 4, f"the deadline is 2 s for the whole attempt; it took {took:.1f} s"
    row = deliveries(db)[-1]
    assert (row.status, row.last_status_code) == ("failed", None)  # `notify test`: one try
    assert "REPLYGUARD_NOTIFY_TIMEOUT_SECONDS" in row.last_error


def test_a_slow_receiver_in_the_queue_is_retried_after_the_deadline(
    data_dir: Path, db: Database
) -> None:
    """A delivery (not the test ping) whose receiver trickles: the attempt ends at the
    deadline, is recorded, and is tried again later."""
    slow = RawReceiver(trickle_head)
    try:
        settings = notifying(data_dir, slow.url, notify_timeout_seconds=1.0)
        with db.session() as session:
            [delivery] = webhooks.record(session, settings, "generation.failed", {})
        started = time.monotonic()
        outcome = webhooks.attempt(db, settings, delivery.id)
        took = time.monotonic() - started
    finally:
        slow.close()
    assert took < 2.5
    assert (outcome.status, outcome.status_code, outcome.retry_in) == ("pending", None, 0.01)
    assert outcome.error.startswith("Timeout: no whole answer within 1 s")


def test_a_huge_error_body_is_read_only_as_far_as_the_record_needs(
    data_dir: Path, db: Database
) -> None:
    """A 500 with a 300 MB body: the attempt reads at most ANSWER_BYTES_MAX of it (memory
    stays flat, the receiver is hung up on), and records the start of it."""
    import tracemalloc

    huge = RawReceiver(flood)
    try:
        settings = notifying(data_dir, huge.url, notify_max_attempts=1)
        with db.session() as session:
            [delivery] = webhooks.record(session, settings, "ping", {})
        tracemalloc.start()
        try:
            outcome = webhooks.attempt(db, settings, delivery.id)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        huge.close()
    assert (outcome.status, outcome.status_code) == ("failed", 500)
    assert outcome.error == "HTTP 500: " + " ".join(["error", "page"] * 40)[:200]
    assert peak < 5 * 1024 * 1024, f"the attempt held {peak / 1e6:.0f} MB"
    assert huge.closed_early.is_set()
    # What the kernel's buffers took in before the client hung up, not the 300 MB.
    assert huge.sent < 50 * 1024 * 1024


@pytest.mark.integration
def test_deliveries_go_to_their_own_queue_never_the_generations(
    data_dir: Path, db: Database, redis_url: str
) -> None:
    """Queued deliveries land on the notifications queue, which the generation workers do
    not consume (their command: webapp/launch.py worker_command), so a slow receiver never
    holds up a generation's stage."""
    from worker.broker import GENERATIONS_QUEUE
    from worker.broker import NOTIFICATIONS_QUEUE
    from worker.notify import queue

    settings = notifying(data_dir, "http://127.0.0.1:9/hooks", redis_url=redis_url)
    with db.session() as session:
        pks = [d.id for d in webhooks.record(session, settings, "ping", {})]
    queue(settings, db.engine, pks)
    client = redis.Redis(unix_socket_path=redis_url.removeprefix("redis+socket://"))
    try:
        assert client.llen(NOTIFICATIONS_QUEUE) == 1
        assert client.llen(GENERATIONS_QUEUE) == 0
    finally:
        client.close()
    generations = worker_command("INFO")
    notifications = worker_command("INFO", queue="notifications")
    assert f"--queues={GENERATIONS_QUEUE}" in generations
    assert f"--queues={NOTIFICATIONS_QUEUE}" in notifications
    assert not any(NOTIFICATIONS_QUEUE in arg for arg in generations)
