"""The web process follows production: hot swap without a restart, and a corrupt model never
replaces a working one."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core.schema import ModelVersion
from models.artifact import load_model
from models.registry import artifact_dir
from models.registry import production
from models.registry import promote
from models.registry import register


def new_candidate(app) -> ModelVersion:  # type: ignore[no-untyped-def]
    svc = app.extensions["replyguard"]
    with svc.db.session() as session:
        row = production(session)
    model, _ = load_model(artifact_dir(svc.settings, row), svc.encoder, row.checksum)
    # A visibly different model: only its top reply changes.
    model.bank.texts = [f"[new] {t}" for t in model.bank.texts]
    return register(svc.db, svc.settings, model, generation=1, parent=row.version, metadata={})


def suggest(client, headers) -> dict:  # type: ignore[no-untyped-def]
    response = client.post("/v1/suggestions", json={"message": "Hello"}, headers=headers)
    assert response.status_code == 200
    return response.json  # type: ignore[no-any-return]


def test_promotion_is_picked_up_without_restart(app, client, client_headers) -> None:  # type: ignore[no-untyped-def]
    svc = app.extensions["replyguard"]
    assert suggest(client, client_headers)["model_version"] == "v1"
    candidate = new_candidate(app)
    with svc.db.session() as session:
        promote(session, svc.settings, candidate.version, "tester", "hot swap")

    # Requests keep being answered (by the old model) while the new one loads in the background.
    seen = [suggest(client, client_headers)["model_version"]]
    svc.holder.wait_for_load()
    after = suggest(client, client_headers)
    seen.append(after["model_version"])
    assert seen[0] in {"v1", candidate.version}
    assert after["model_version"] == candidate.version
    assert all(s["text"].startswith("[new] ") for s in after["suggestions"])


def test_requests_in_flight_survive_a_swap(app, client_headers) -> None:  # type: ignore[no-untyped-def]
    svc = app.extensions["replyguard"]
    candidate = new_candidate(app)
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        client = app.test_client()
        while not stop.is_set() and len(statuses) < 400:
            r = client.post("/v1/suggestions", json={"message": "Hi there"}, headers=client_headers)
            statuses.append(r.status_code)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    with svc.db.session() as session:
        promote(session, svc.settings, candidate.version, "tester", "swap under load")
    svc.holder.wait_for_load()
    for _ in range(50):
        if svc.holder.current.version == candidate.version:
            break
        svc.holder.refresh()
    stop.set()
    for t in threads:
        t.join(30)
    assert statuses
    assert set(statuses) == {200}
    assert svc.holder.current.version == candidate.version


def test_corrupt_production_is_refused_and_previous_keeps_serving(
    app, client, client_headers
) -> None:  # type: ignore[no-untyped-def]
    svc = app.extensions["replyguard"]
    candidate = new_candidate(app)
    with svc.db.session() as session:
        promote(session, svc.settings, candidate.version, "tester", "about to break")
    # The artifact is damaged after promotion (disk fault, bad copy): loading must refuse it.
    path = artifact_dir(svc.settings, candidate) / "bank_embeddings.npy"
    path.write_bytes(np.zeros(10, np.float32).tobytes())
    svc.holder.refresh()
    body = suggest(client, client_headers)
    assert body["model_version"] == "v1"
    assert not body["suggestions"][0]["text"].startswith("[new]")
    ready = client.get("/readyz").json
    assert ready["checks"]["model"] == "v1"
    assert "refused" in svc.holder.last_error and "corrupt" in svc.holder.last_error


def test_a_load_that_raises_is_logged_and_the_current_model_keeps_serving(
    app, client, client_headers, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    svc = app.extensions["replyguard"]
    candidate = new_candidate(app)

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the disk went away")

    monkeypatch.setattr("webapp.serving.load_model", broken)
    with svc.db.session() as session:
        promote(session, svc.settings, candidate.version, "tester", "about to fail to load")
    suggest(client, client_headers)  # finds production changed: loads it in the background
    svc.holder.wait_for_load()
    assert suggest(client, client_headers)["model_version"] == "v1"
    assert "loading the production model failed: the disk went away" in caplog.text


@pytest.mark.integration
def test_an_idle_web_process_swaps_before_its_next_request(app, client_headers) -> None:  # type: ignore[no-untyped-def]
    """A real gunicorn worker that gets no suggestion request after v2 becomes production:
    its timer loads v2 (before: it checked only when a request came, so 16 answers came from
    the archived v1 two minutes later, and /readyz and /v1/models, which never check, said
    "serving v1"); /readyz and /v1/models say v2 within a few intervals, and the first
    suggestion after comes from v2 (faults item 10)."""
    import json
    import time
    import urllib.request

    from webapp.launch import free_port
    from webapp.launch import start_server
    from webapp.launch import stop_server

    svc = app.extensions["replyguard"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def get(path: str, headers: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
        request = urllib.request.Request(base + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)  # type: ignore[no-any-return]

    server = start_server(svc.settings.data_dir, port)
    try:
        assert get("/readyz")["checks"]["model"] == "v1"
        candidate = new_candidate(app)
        with svc.db.session() as session:
            promote(session, svc.settings, candidate.version, "tester", "while idle")
        # Only probes that never check production: what changes them is the timer.
        deadline = time.monotonic() + 20
        while get("/readyz")["checks"]["model"] != candidate.version:
            assert time.monotonic() < deadline, "the idle worker still serves v1 after 20 s"
            time.sleep(0.25)
        assert get("/v1/models", client_headers)["serving"] == candidate.version
        request = urllib.request.Request(
            base + "/v1/suggestions",
            data=json.dumps({"message": "Hello"}).encode(),
            headers={**client_headers, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.load(answer)["model_version"] == candidate.version
    finally:
        stop_server(server)
