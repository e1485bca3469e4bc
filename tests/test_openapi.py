"""The OpenAPI document is the API: schemathesis generates requests from /openapi.json for
every operation, with each role's key and with none, and checks every answer against it.

The app is the real one (trained demo model, SQLite, the embedded Redis as the task queue
without a worker), called in-process through Flask's test client. ``POST /v1/generations``
really queues: the first staff key's call answers 202, and every later one 409 (a generation
is queued already). Rate limits are set far above what the test sends, so that no 429
depends on timing; that a 429 is documented, and that a real one matches the document, is
asserted separately.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from apiflask import APIFlask
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis.strategies import SearchStrategy
from schemathesis import APIOperation
from schemathesis import Case
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance
from schemathesis.specs.openapi.checks import negative_data_rejection
from schemathesis.specs.openapi.checks import response_headers_conformance
from schemathesis.specs.openapi.checks import response_schema_conformance
from schemathesis.specs.openapi.checks import status_code_conformance
from sqlalchemy import select

from core.keys import create_key
from core.schema import ApiKey
from core.schema import Generation
from core.schema import ModelVersion
from core.schema import Role
from core.text import MESSAGE
from core.text import REASON
from models.encoder import Encoder
from tests.helpers import FAST_TRAINING
from worker.broker import stop_embedded_redis

pytestmark = pytest.mark.integration

# Generated requests of each kind (valid, invalid) per operation and role: hypothesis'
# max_examples. 25 operations x 4 callers x 2 kinds x 30 is at most 6,000 requests; fewer in
# fact (an operation without input has one request).
EXAMPLES = 30
# Far above what the test sends: no 429 unless a test asks for one.
HIGH_LIMITS = {
    "rate_limit": "1000000/minute",
    "rate_limit_feedback": "1000000/minute",
    "rate_limit_imports": "1000000/minute",
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
ROLES = ["none", *(r.value for r in Role)]


def _app(data_dir: Path, encoder: Encoder, **overrides: Any) -> APIFlask:
    from webapp import create_app

    return create_app(
        {"data_dir": str(data_dir), **FAST_TRAINING, "production_check_seconds": 0, **overrides},
        encoder=encoder,
    )


def _keys(app: APIFlask) -> dict[str, dict[str, str]]:
    """Authorization headers by role ("none": no header)."""
    headers: dict[str, dict[str, str]] = {"none": {}}
    with app.extensions["replyguard"].db.session() as session:
        for role in Role:
            token, _ = create_key(session, f"openapi-{role.value}", role, "tester")
            headers[role.value] = {"Authorization": f"Bearer {token}"}
        # What the admin's requests may revoke (never one of the keys above).
        create_key(session, "openapi-spare", Role.CLIENT, "tester")
    return headers


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, trained_dir: Path, encoder: Encoder
) -> Iterator[tuple[APIFlask, dict[str, dict[str, str]]]]:
    """One app for the whole module (a private copy of the trained data folder)."""
    data_dir = tmp_path_factory.mktemp("openapi") / "data"
    shutil.copytree(trained_dir, data_dir)
    app = _app(data_dir, encoder, **HIGH_LIMITS)
    yield app, _keys(app)
    app.extensions["replyguard"].db.dispose()
    stop_embedded_redis()


@pytest.fixture(scope="module")
def operations(served: tuple[APIFlask, dict[str, dict[str, str]]]) -> list[APIOperation]:
    app, _ = served
    return _operations(app)


def _operations(app: APIFlask) -> list[APIOperation]:
    """Every operation of the app's own document, as schemathesis reads it."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    # The test sends each role's key itself.
    schema.config.generation.update(with_security_parameters=False)
    # Refusals of invalid input: schemathesis' list, and 413 for more examples than an import
    # takes (maxItems; webapp/schemas.py BatchSize).
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    return [result.ok() for result in schema.get_all_operations()]


def _roles(operation: APIOperation) -> list[str] | None:
    """The roles the document lets call ``operation`` (APIFlask writes them as the scopes of
    its security requirement): None when it needs no key, [] when any key will do."""
    security = operation.definition.raw.get("security")
    if not security:
        return None
    roles: list[str] = security[0]["BearerAuth"]
    return roles


def _existing(app: APIFlask) -> dict[str, list[Any]]:
    """Path parameter values that name something that exists now, by parameter name: every
    generation's id, every model version, the spare API key and a few intents (generated ones
    seldom do)."""
    with app.extensions["replyguard"].db.session() as session:
        return {
            "generation_id": list(session.scalars(select(Generation.id))),
            "version": list(session.scalars(select(ModelVersion.version))),
            "key_id": list(
                session.scalars(select(ApiKey.id).where(ApiKey.name == "openapi-spare"))
            ),
            # One that answers no question, and the last 'no' of a group with a 'yes'.
            "name": ["ok", "no_thanks"],
        }


def _own_keys(app: APIFlask) -> dict[int, int]:
    """The ids of the keys the test sends, each mapped to the spare key's id: a generated
    revoke of one of them revokes the spare instead, so that no role loses its key halfway."""
    with app.extensions["replyguard"].db.session() as session:
        spare = session.scalars(select(ApiKey.id).where(ApiKey.name == "openapi-spare")).one()
        own = session.scalars(
            select(ApiKey.id).where(ApiKey.name.in_([f"openapi-{r.value}" for r in Role]))
        )
        return {key_id: spare for key_id in own}


def _strategies(
    operation: APIOperation, existing: dict[str, list[Any]]
) -> list[tuple[SearchStrategy[Case], int]]:
    """What to send to ``operation``, and how many of each: every request body example the
    document gives and every path naming something ``existing`` (once each; the rest
    generated), EXAMPLES generated valid requests and, when the operation takes input,
    EXAMPLES invalid ones. Hypothesis sends fewer when there are not so many different ones:
    an operation without input is called once."""
    content = operation.definition.raw.get("requestBody", {}).get("content", {})
    plan = [
        (operation.as_strategy(body=media["example"], media_type=name), 1)
        for name, media in content.items()
        if "example" in media
    ]
    plan += [
        (operation.as_strategy(path_parameters={parameter.name: value}), 1)
        for parameter in operation.path_parameters
        for value in existing[parameter.name]
    ]
    plan.append((operation.as_strategy(GenerationMode.POSITIVE), EXAMPLES))
    if any(True for _ in operation.iter_parameters()) or len(operation.body) > 0:
        plan.append((operation.as_strategy(GenerationMode.NEGATIVE), EXAMPLES))
    return plan


def _check(operation: APIOperation, headers: dict[str, str], app: APIFlask) -> set[int]:
    """Send what :func:`_strategies` plans with ``headers``, check each answer against the
    document, and return the statuses."""
    client = app.test_client()
    statuses: set[int] = set()
    own_keys = _own_keys(app)

    def send(case: Case) -> None:
        if case.path_parameters and case.path_parameters.get("key_id") in own_keys:
            case.path_parameters["key_id"] = own_keys[case.path_parameters["key_id"]]
        checks = CHECKS
        if isinstance(case.body, dict) and case.body.get("skip_invalid") is True:
            # An import with skip_invalid takes its valid rows and lists the invalid ones in
            # "skipped" (201): an invalid row does not refuse the request.
            checks = [check for check in CHECKS if check is not negative_data_rejection]
        # Flask's test client, as the other tests use: it says it calls from 127.0.0.1.
        response = case.call_and_validate(session=client, headers=headers, checks=checks)
        statuses.add(response.status_code)

    for strategy, count in _strategies(operation, _existing(app)):
        settings(
            max_examples=count,
            # The same requests on every run, and nothing kept between runs.
            derandomize=True,
            database=None,
            # Timing is not what is tested, and a request may be large (an import of more
            # rows than allowed) or slow to generate.
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )(given(strategy)(send))()
    return statuses


@pytest.mark.parametrize("role", ROLES)
def test_every_answer_matches_the_document(
    role: str,
    operations: list[APIOperation],
    served: tuple[APIFlask, dict[str, dict[str, str]]],
    subtests: pytest.Subtests,
) -> None:
    app, keys = served
    for operation in operations:
        with subtests.test(operation.label):
            statuses = _check(operation, keys[role], app)
            # Each key got what the document says its role gets, wherever the path matched a
            # route (a generated path parameter that matches none is a 404 for anyone).
            allowed = _roles(operation)
            if allowed is None:
                assert not statuses & {401, 403}
            elif role == "none":
                assert 401 in statuses and statuses <= {401, 404}
            elif allowed and role not in allowed:
                assert 403 in statuses and statuses <= {403, 404}
            else:
                assert not statuses & {401, 403}


def test_every_rate_limited_operation_documents_429_with_retry_after(
    operations: list[APIOperation],
) -> None:
    # Every /v1 operation counts against its key's limits; the probes and /metrics never do
    # (webapp/limits.py).
    assert len(operations) == 25
    for operation in operations:
        responses = operation.definition.raw["responses"]
        if operation.path.startswith("/v1/"):
            assert responses["429"]["headers"]["Retry-After"]["required"] is True, operation.label
            assert responses["429"]["content"] == responses["401"]["content"], operation.label
        else:
            assert "429" not in responses, operation.label


def test_a_real_429_matches_the_document(data_dir: Path, encoder: Encoder) -> None:
    app = _app(data_dir, encoder, rate_limit="1/minute")
    client_key = _keys(app)["client"]
    models = next(op for op in _operations(app) if op.label == "GET /v1/models")
    client = app.test_client()
    answers = [
        models.Case().call_and_validate(session=client, headers=client_key, checks=CHECKS)
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 429]
    assert answers[1].json()["error"]["code"] == "rate_limited"
    assert 1 <= int(answers[1].headers["retry-after"][0]) <= 60
    app.extensions["replyguard"].db.dispose()


def test_the_document_states_the_bounds_the_settings_set(data_dir: Path, encoder: Encoder) -> None:
    app = _app(data_dir, encoder, max_k=4, max_examples_per_request=3)
    keys = _keys(app)
    client = app.test_client()
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    k = schemas["SuggestIn"]["properties"]["k"]
    assert (k["minimum"], k["maximum"]) == (1, 4)
    assert schemas["FeedbackIn"]["properties"]["suggestions"]["maxItems"] == 4
    examples = schemas["ExamplesIn"]["properties"]["examples"]
    assert (examples["minItems"], examples["maxItems"]) == (1, 3)
    assert schemas["SuggestIn"]["properties"]["message"]["maxLength"] == MESSAGE.max_chars
    assert schemas["CuratedIn"]["properties"]["reason"]["maxLength"] == REASON.max_chars

    # ... and the API enforces those very bounds.
    asked = {"message": "are we still on for lunch?", "force": True}
    served = client.post("/v1/suggestions", json={**asked, "k": 4}, headers=keys["client"])
    assert len(served.json["suggestions"]) == 4
    refused = client.post("/v1/suggestions", json={**asked, "k": 5}, headers=keys["client"])
    assert (refused.status_code, refused.json["error"]["message"]) == (
        422,
        "invalid input: k: k must be between 1 and 4",
    )
    rows = [{"message": f"m{i}", "reply": f"r{i}"} for i in range(4)]
    body = {"examples": rows, "provenance": "human"}
    too_many = client.post("/v1/examples", json=body, headers=keys["admin"])
    assert (too_many.status_code, too_many.json["error"]["message"]) == (
        413,
        "at most 3 examples per request; split the batch",
    )
    body["examples"] = rows[:3]
    assert client.post("/v1/examples", json=body, headers=keys["admin"]).status_code == 201
    app.extensions["replyguard"].db.dispose()
