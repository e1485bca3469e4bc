"""Rate limits (webapp/limits.py) through the Flask test client: per key, per endpoint, per
client address for sign-ins, in memory and in a real Redis server, and when Redis is down."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from apiflask import APIFlask
from flask.testing import FlaskClient

from core.keys import create_key
from core.schema import Role
from core.settings import SettingsError
from models.encoder import Encoder
from tests.helpers import FAST_TRAINING
from tests.helpers import make_settings
from tests.test_api import error_of
from tests.test_dashboard import sign_in
from webapp.launch import free_port
from webapp.limits import storage_uri
from worker.broker import embedded_redis_url
from worker.broker import stop_embedded_redis
from worker.settings import load_settings

FEEDBACK = "/v1/feedback"
DAY = 24 * 3600


@pytest.fixture
def make_app(data_dir: Path, encoder: Encoder) -> Iterator[Callable[..., APIFlask]]:
    """Build the app on the test's data folder with some settings overridden."""
    from webapp import create_app

    built: list[APIFlask] = []

    def make(**overrides: Any) -> APIFlask:
        app = create_app(
            {
                "data_dir": str(data_dir),
                **FAST_TRAINING,
                "production_check_seconds": 0,
                **overrides,
            },
            encoder=encoder,
        )
        app.config["TESTING"] = True
        built.append(app)
        return app

    yield make
    for app in built:
        app.extensions["replyguard"].db.dispose()


def key(app: APIFlask, role: Role = Role.CLIENT) -> dict[str, str]:
    with app.extensions["replyguard"].db.session() as session:
        token, _ = create_key(session, f"limits-{role.value}", role, "tester")
    return {"Authorization": f"Bearer {token}"}


def feedback(client: FlaskClient, headers: dict[str, str], i: int) -> Any:
    body = {"message": f"lunch at {i}?", "suggestions": ["Sure!"], "typed": f"make it {i + 1}"}
    return client.post(FEEDBACK, json=body, headers=headers)


def from_address(app: APIFlask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def retry_after(response: Any) -> int:
    return int(response.headers["Retry-After"])


def test_a_key_over_its_feedback_rate_gets_429_and_another_key_does_not(
    make_app: Callable[..., APIFlask],
) -> None:
    app = make_app(rate_limit_feedback="3/minute;1000/day")
    client = app.test_client()
    first, second = key(app), key(app)
    assert [feedback(client, first, i).status_code for i in range(3)] == [201] * 3

    refused = feedback(client, first, 3)
    error = error_of(refused, 429)
    assert error["code"] == "rate_limited"
    assert 1 <= retry_after(refused) <= 60
    assert error["details"] == {
        "limit": "3 per 1 minute",
        "retry_after_seconds": retry_after(refused),
    }
    assert f"retry in {retry_after(refused)} s" in error["message"]
    assert "POST /v1/feedback" in error["message"]

    # Another key has its own count; the limited key may still ask for suggestions.
    assert feedback(client, second, 4).status_code == 201
    asked = client.post("/v1/suggestions", json={"message": "lunch?"}, headers=first)
    assert asked.status_code == 200


def test_feedback_has_a_daily_volume(make_app: Callable[..., APIFlask]) -> None:
    app = make_app(rate_limit_feedback="100/minute;2/day")
    client = app.test_client()
    headers = key(app)
    assert [feedback(client, headers, i).status_code for i in range(2)] == [201, 201]
    refused = feedback(client, headers, 2)
    error = error_of(refused, 429)
    assert error["details"]["limit"] == "2 per 1 day"
    # The day's window, not the minute's: a client is told to come back in about a day.
    assert DAY - 60 <= retry_after(refused) <= DAY
    assert "retry in 24 h" in error["message"]


def test_imports_have_their_own_limit(make_app: Callable[..., APIFlask]) -> None:
    app = make_app(rate_limit_imports="1/minute", rate_limit="100/minute")
    client = app.test_client()
    headers = key(app, Role.REVIEWER)
    body = {"examples": [{"message": "hi there", "reply": "hello!"}], "provenance": "human"}
    assert client.post("/v1/examples", json=body, headers=headers).status_code == 201
    refused = client.post("/v1/examples", json=body, headers=headers)
    assert error_of(refused, 429)["details"]["limit"] == "1 per 1 minute"
    # The import limit is not the default one: other endpoints still answer.
    assert client.get("/v1/generations", headers=headers).status_code == 200


def test_every_api_endpoint_is_limited_per_key_and_anonymous_calls_get_401(
    make_app: Callable[..., APIFlask],
) -> None:
    app = make_app(rate_limit="2/minute")
    client = app.test_client()
    reviewer = key(app, Role.REVIEWER)
    for path in ("/v1/models", "/v1/generations", "/v1/audit"):
        assert [client.get(path, headers=reviewer).status_code for _ in range(2)] == [200, 200]
        assert error_of(client.get(path, headers=reviewer), 429)["code"] == "rate_limited"
    # Without a valid key nothing is counted: the view refuses it first, every time.
    for headers in ({}, {"Authorization": "Bearer rg_not-a-key"}):
        statuses = {client.get("/v1/models", headers=headers).status_code for _ in range(4)}
        assert statuses == {401}


def test_health_probes_are_never_limited(make_app: Callable[..., APIFlask]) -> None:
    app = make_app(rate_limit="1/minute")
    client = app.test_client()
    headers = key(app)
    for path in ("/healthz", "/readyz"):
        assert {client.get(path, headers=headers).status_code for _ in range(5)} == {200}


def test_failed_sign_ins_are_limited_per_client_address(
    make_app: Callable[..., APIFlask],
) -> None:
    app = make_app(rate_limit_sign_in="3/minute")
    token = key(app, Role.REVIEWER)["Authorization"].removeprefix("Bearer ")
    guesser = from_address(app, "203.0.113.7")
    assert [sign_in(guesser, f"rg_guess{i}").status_code for i in range(3)] == [401] * 3
    # Locked out, even with the right key, until the window ends.
    refused = sign_in(guesser, token)
    assert refused.status_code == 429
    assert 1 <= retry_after(refused) <= 60
    assert "Too many failed sign-ins" in refused.get_data(as_text=True)

    # Another address is not affected, and successful sign-ins are not counted (a fresh
    # browser each time: a signed-in one is not shown the form).
    signed_in = [sign_in(from_address(app, "198.51.100.4"), token) for _ in range(5)]
    assert [response.status_code for response in signed_in] == [303] * 5


def test_limits_are_settings_checked_at_start_up(make_app: Callable[..., APIFlask]) -> None:
    environ = {"REPLYGUARD_RATE_LIMIT_FEEDBACK": "5/second;50/hour"}
    assert load_settings(environ=environ).rate_limit_feedback == "5/second;50/hour"
    with pytest.raises(SettingsError, match="REPLYGUARD_RATE_LIMIT_IMPORTS='lots'"):
        make_app(rate_limit_imports="lots")
    # Empty: no limit at all.
    app = make_app(rate_limit_feedback="", rate_limit="")
    client = app.test_client()
    headers = key(app)
    assert {feedback(client, headers, i).status_code for i in range(12)} == {201}


def test_counts_are_kept_in_redis_when_redis_url_is_set(
    data_dir: Path, make_app: Callable[..., APIFlask]
) -> None:
    # The embedded server's URL as `replyguard run` hands it to the web server.
    url = embedded_redis_url(make_settings(data_dir))
    try:
        assert url.startswith("redis+socket://")
        assert storage_uri(make_settings(data_dir, redis_url=url)).startswith("redis+unix://")
        app = make_app(redis_url=url, rate_limit_feedback="2/minute")
        client = app.test_client()
        headers = key(app)
        statuses = [feedback(client, headers, i).status_code for i in range(3)]
        assert statuses == [201, 201, 429]
        server = redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"))
        counts = [server.get(name) for name in server.scan_iter("LIMITS:*api.feedback*")]
        # Every process with this REDIS_URL sees the same count (3: refusals count too).
        assert counts == [b"3"]
        server.close()
    finally:
        stop_embedded_redis()


def test_requests_are_served_and_limited_in_memory_while_redis_is_down(
    make_app: Callable[..., APIFlask],
) -> None:
    app = make_app(redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_feedback="2/minute")
    client = app.test_client()
    headers = key(app)
    asked = client.post("/v1/suggestions", json={"message": "lunch?"}, headers=headers)
    assert asked.status_code == 200
    statuses = [feedback(client, headers, i).status_code for i in range(3)]
    assert statuses == [201, 201, 429]
