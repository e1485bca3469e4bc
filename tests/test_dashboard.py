"""The dashboard through the Flask test client: sign-in, sessions, CSRF, empty states, errors.

The pages with real generations, the charts and the actions are driven in a real browser in
tests/test_dashboard_browser.py.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import func
from sqlalchemy import select

from core.keys import create_key
from core.keys import revoke_key
from core.schema import AuditEntry
from core.schema import Generation
from core.schema import Role
from core.settings import SettingsError
from models.encoder import Encoder
from models.registry import production
from safeguards.metrics import Evaluation
from safeguards.metrics import Metric
from safeguards.metrics import metric_label
from tests.helpers import FAST_TRAINING
from tests.helpers import make_settings
from webapp.dashboard import overview
from webapp.dashboard.charts import build_charts
from webapp.dashboard.charts import charted
from webapp.dashboard.detail import response_set_report
from webapp.dashboard.overview import SHOWCASE
from webapp.dashboard.overview import showcase_messages
from webapp.dashboard.secret import secret_key
from worker.context import PipelineContext
from worker.pipeline import run_next_stage
from worker.pipeline import start_generation

PAGES = [
    "/dashboard/",
    "/dashboard/niches",
    "/dashboard/models",
    "/dashboard/audit",
    "/dashboard/generations/1",
    "/dashboard/generations/new",
    "/dashboard/models/v1/rollback",
]
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_token(app: APIFlask, role: Role, name: str = "") -> tuple[str, int]:
    """A new key: its token and its id (to revoke it)."""
    with app.extensions["replyguard"].db.session() as session:
        token, row = create_key(session, name or f"dash-{role.value}", role, "tester")
        return token, row.id


def csrf_from(client: FlaskClient, path: str) -> str:
    page = client.get(path)
    found = CSRF_FIELD.search(page.get_data(as_text=True))
    assert found, f"no CSRF field on {path}"
    return found.group(1)


def sign_in(client: FlaskClient, token: str, next_path: str = "") -> Any:
    csrf = csrf_from(client, "/dashboard/sign-in")
    return client.post(
        "/dashboard/sign-in", data={"api_key": token, "csrf_token": csrf, "next": next_path}
    )


def test_the_session_cookie_is_https_only_when_asked(
    app: APIFlask, client: FlaskClient, data_dir: Path, encoder: Encoder
) -> None:
    from webapp import create_app

    token, _ = make_token(app, Role.REVIEWER)
    plain = sign_in(client, token).headers["Set-Cookie"]
    assert "HttpOnly" in plain and "Secure" not in plain
    secure_app = create_app({"data_dir": str(data_dir), "secure_cookies": True}, encoder=encoder)
    secure = sign_in(secure_app.test_client(), token).headers["Set-Cookie"]
    assert "; Secure" in secure and "HttpOnly" in secure
    secure_app.extensions["replyguard"].db.dispose()


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


@pytest.fixture
def reviewer(app: APIFlask, client: FlaskClient) -> FlaskClient:
    """The test client, signed in with a reviewer key."""
    token, _ = make_token(app, Role.REVIEWER, "Robin")
    assert sign_in(client, token).status_code == 303
    return client


@pytest.fixture
def fresh_app(tmp_path: Path, encoder: Encoder) -> Iterator[APIFlask]:
    """An app on an empty data folder: no data, no model, no generation."""
    from webapp import create_app

    application = create_app({"data_dir": str(tmp_path / "fresh")}, encoder=encoder)
    application.config["TESTING"] = True
    yield application
    application.extensions["replyguard"].db.dispose()


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_sign_in(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 303
    assert response.location.startswith("/dashboard/sign-in?next=")
    assert path.rstrip("/") in response.location.replace("%2F", "/")


def test_progress_poll_needs_sign_in_and_answers_json(client: FlaskClient) -> None:
    response = client.get("/dashboard/generations/1/progress.json")
    assert response.status_code == 401
    assert response.is_json


def test_client_key_cannot_sign_in(app: APIFlask, client: FlaskClient) -> None:
    token, _ = make_token(app, Role.CLIENT)
    response = sign_in(client, token)
    assert response.status_code == 403
    assert "Client keys" in text(response)
    assert "reviewer or admin key" in text(response)
    assert client.get("/dashboard/").status_code == 303


@pytest.mark.parametrize(
    ("token", "status", "fragment"),
    [
        ("rg_not-a-real-key", 401, "unknown or has been revoked"),
        ("", 400, "Paste your API key"),
    ],
)
def test_bad_keys_cannot_sign_in(
    client: FlaskClient, token: str, status: int, fragment: str
) -> None:
    response = sign_in(client, token)
    assert response.status_code == status
    assert fragment in text(response)


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.ADMIN])
def test_staff_sign_in_sets_a_strict_session_cookie_and_signs_out(
    app: APIFlask, client: FlaskClient, role: Role
) -> None:
    token, _ = make_token(app, role, "Sam")
    response = sign_in(client, token, next_path="/dashboard/models")
    assert response.status_code == 303
    assert response.location == "/dashboard/models"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/dashboard" in cookie
    # The key itself is never in the cookie (signed, not encrypted).
    assert token not in cookie
    page = client.get("/dashboard/")
    assert page.status_code == 200
    assert f"Sam <small>({role.value})</small>" in text(page)

    csrf = CSRF_FIELD.search(text(page))
    assert csrf
    out = client.post("/dashboard/sign-out", data={"csrf_token": csrf.group(1)})
    assert out.status_code == 303
    assert client.get("/dashboard/").status_code == 303
    assert "You are signed out" in text(client.get("/dashboard/sign-in"))


def test_sign_in_only_returns_into_the_dashboard(app: APIFlask, client: FlaskClient) -> None:
    token, _ = make_token(app, Role.REVIEWER)
    response = sign_in(client, token, next_path="https://elsewhere.example/phish")
    assert response.location == "/dashboard/"


def test_a_revoked_key_is_signed_out_on_its_next_request(
    app: APIFlask, client: FlaskClient
) -> None:
    token, key_id = make_token(app, Role.REVIEWER)
    sign_in(client, token)
    assert client.get("/dashboard/").status_code == 200
    with app.extensions["replyguard"].db.session() as session:
        revoke_key(session, key_id, "tester", "left the team")
    assert client.get("/dashboard/").status_code == 303


def audit_count(app: APIFlask) -> int:
    with app.extensions["replyguard"].db.session() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_actions_without_the_csrf_token_are_refused(
    app: APIFlask, reviewer: FlaskClient, token: str | None
) -> None:
    before = audit_count(app)
    data = {"reason": "testing"} | ({} if token is None else {"csrf_token": token})
    for path in (
        "/dashboard/generations/new",
        "/dashboard/models/v1/promote",
        "/dashboard/sign-out",
    ):
        response = reviewer.post(path, data=data)
        assert response.status_code == 400, path
        assert "security token (CSRF) was missing or out of date" in text(response)
        assert "nothing was done" in text(response)
    assert audit_count(app) == before
    # Still signed in: sign-out without a token did nothing either.
    assert reviewer.get("/dashboard/").status_code == 200


def test_sign_in_without_the_csrf_token_is_refused(app: APIFlask, client: FlaskClient) -> None:
    token, _ = make_token(app, Role.REVIEWER)
    response = client.post("/dashboard/sign-in", data={"api_key": token})
    assert response.status_code == 400
    assert client.get("/dashboard/").status_code == 303


def test_fresh_data_folder_says_what_to_do(fresh_app: APIFlask) -> None:
    client = fresh_app.test_client()
    token, _ = make_token(fresh_app, Role.ADMIN)
    sign_in(client, token)
    overview = text(client.get("/dashboard/"))
    assert "No generation yet: start one." in overview
    assert "replyguard models train-baseline" in overview
    assert 'id="chart-data"' not in overview
    assert "No examples yet" in text(client.get("/dashboard/niches"))
    assert "No model yet" in text(client.get("/dashboard/models"))
    # The only entry: the creation of the key that signed in (keys are audited).
    audit = text(client.get("/dashboard/audit"))
    assert "create_key" in audit and "key 1" in audit
    start = client.get("/dashboard/generations/new")
    assert "train the clean baseline first" in text(start)
    assert "Yes, start a generation" not in text(start)


def test_with_only_the_baseline_the_overview_invites_a_first_generation(
    reviewer: FlaskClient,
) -> None:
    page = text(reviewer.get("/dashboard/"))
    assert "No generation yet: start one." in page
    assert "Only the clean baseline so far" in page
    assert 'href="/dashboard/generations/new"' in page
    data = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', page)
    assert data
    charts = json.loads(data.group(1))
    assert charts["labels"] == ["G0"]
    assert {c["kind"] for c in charts["charts"]} == {"relevance", "tail", "diversity"}
    assert all(len(c["values"]) == 1 for c in charts["charts"])


def test_pages_render_for_the_baseline(reviewer: FlaskClient) -> None:
    niches = text(reviewer.get("/dashboard/niches"))
    assert '<table class="heatmap">' in niches
    # The gate's primary metric, measured per niche, is what the heat map shows first.
    assert "Coverage (similarity@3)" in niches
    assert "rare</span>" in niches
    models = text(reviewer.get("/dashboard/models"))
    assert "v1" in models and "production" in models
    audit = text(reviewer.get("/dashboard/audit"))
    assert "first model: the clean baseline" in audit
    with_metric = reviewer.get("/dashboard/niches?metric=mrr@10")
    assert "Coverage (mrr@10)" in text(with_metric)


def test_the_generation_page_shows_1_of_100_beside_the_plain_encoder(
    app: APIFlask, reviewer: FlaskClient
) -> None:
    with app.extensions["replyguard"].db.session() as session:
        row = production(session)
        assert row is not None
        stored = Evaluation.from_dict(row.evaluation["evaluation"])
    page = text(reviewer.get("/dashboard/generations/1"))
    table = re.search(r'<table class="metrics" id="ranking">(.*?)</table>', page, re.S)
    assert table, "no 1-of-100 table on the generation page"
    rows = re.findall(
        r'<th scope="row">([^<]*)</th><td class="num"[^>]*>([^<]*)</td>'
        r'<td class="num"[^>]*>([^<]*)</td>',
        table.group(1),
    )
    shown = {where.split(" (")[0]: (model, plain) for where, model, plain in rows}
    for where, mine, plain in (
        ("Held-out training messages", "held_out_one_of_100", "held_out_plain_one_of_100"),
        ("Benchmark", "one_of_100", "plain_one_of_100"),
    ):
        assert shown[where] == (
            f"{stored.value(mine):.3g}",
            f"{stored.value(plain):.3g}",
        )
    assert "Chosen at training:" in page and "epoch(s) of the adapter" in page


def test_a_generation_stored_before_metric_schema_2_shows_under_the_current_names(
    app: APIFlask, reviewer: FlaskClient
) -> None:
    stored = json.loads(
        (Path(__file__).parent / "data" / "stored-before-schema-2.json").read_text()
    )
    old = stored["evaluation"]
    with app.extensions["replyguard"].db.session() as session:
        row = Generation(
            number=1,
            status="blocked",
            stage="done",
            parent_version="v1",
            # A version the registry does not have: the page still shows the evaluations.
            candidate_version="v2",
            metrics={
                role: {"version": "v1", **old} for role in ("candidate", "production", "baseline")
            },
            decision=stored["decision"],
        )
        session.add(row)
        session.flush()
        generation_id = row.id
    page = text(reviewer.get(f"/dashboard/generations/{generation_id}"))
    assert "The gate's metrics" in page
    assert "A top-3 suggestion matches the real reply (accuracy@3)" in page
    assert (
        "Rare niches: how high the first matching suggestion ranks in the top 10 (MRR@10)" in page
    )
    assert "recall@" not in page
    overview = text(reviewer.get("/dashboard/"))
    assert "Generation 1" in overview and "fell 18% below the clean baseline" in overview
    niches = text(reviewer.get("/dashboard/niches?metric=accuracy@3"))
    assert "Coverage (accuracy@3)" in niches
    assert '<option value="mrr@10">' in niches
    token, _ = make_token(app, Role.REVIEWER, "api")
    api = reviewer.get(
        f"/v1/generations/{generation_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert {"accuracy@3", "tail_mrr@10"} <= {
        m["name"] for m in api.json["metrics"]["candidate"]["metrics"]
    }
    assert [m["name"] for m in api.json["decision"]["metrics"]] == [
        "accuracy@3",
        "tail_mrr@10",
        "distinct_share",
    ]


def test_starting_a_generation_without_the_queue_shows_an_error(
    data_dir: Path, encoder: Encoder
) -> None:
    from webapp import create_app

    # Nothing listens on port 9: the broker is unreachable.
    app = create_app(
        {"data_dir": str(data_dir), **FAST_TRAINING, "redis_url": "redis://127.0.0.1:9/0"},
        encoder=encoder,
    )
    client = app.test_client()
    token, _ = make_token(app, Role.REVIEWER)
    sign_in(client, token)
    csrf = csrf_from(client, "/dashboard/generations/new")
    response = client.post("/dashboard/generations/new", data={"csrf_token": csrf})
    assert response.status_code == 503
    assert "task queue (Redis) is unreachable" in text(response)
    with app.extensions["replyguard"].db.session() as session:
        assert session.scalar(select(func.count()).select_from(Generation)) == 1  # only G0
    app.extensions["replyguard"].db.dispose()


def test_actions_refuse_versions_they_do_not_apply_to(reviewer: FlaskClient) -> None:
    rollback = reviewer.get("/dashboard/models/v1/rollback")
    assert rollback.status_code == 409
    assert "v1 is production" in text(rollback)
    promote = reviewer.get("/dashboard/models/v1/promote")
    assert promote.status_code == 409
    missing = reviewer.get("/dashboard/models/v99/promote")
    assert missing.status_code == 404
    assert "There is no model version &#39;v99&#39;" in text(missing)
    assert reviewer.get("/dashboard/generations/999").status_code == 404


def test_dashboard_answers_html_errors_and_security_headers(reviewer: FlaskClient) -> None:
    response = reviewer.get("/dashboard/generations/999")
    assert response.mimetype == "text/html"
    assert "No such generation" in text(response)
    page = reviewer.get("/dashboard/")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"


def test_dashboard_stays_out_of_the_api_spec(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec is not None
    assert not [path for path in spec["paths"] if path.startswith("/dashboard")]


def test_static_files_ship_with_the_package(client: FlaskClient) -> None:
    chart = client.get("/dashboard/static/chart.umd.min.js")
    assert chart.status_code == 200
    assert chart.get_data().startswith(b"/*!\n * Chart.js v4.")
    chart.close()
    css = client.get("/dashboard/static/dashboard.css")
    assert css.status_code == 200
    css.close()


def test_secret_key_is_created_once_private_and_shared(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    first = secret_key(settings)
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_key(settings) == first
    assert len(first) >= 32
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".secret_key")] == []


def test_workers_starting_together_share_one_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    settings = make_settings(tmp_path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: secret_key(settings), range(16)))
    assert len(keys) == 1
    assert (tmp_path / "secret_key").read_text() == keys.pop()


def test_secret_key_from_settings_wins_and_must_be_long(tmp_path: Path) -> None:
    configured = "k" * 40
    assert secret_key(make_settings(tmp_path, secret_key=configured)) == configured
    assert not (tmp_path / "secret_key").exists()
    with pytest.raises(SettingsError, match="at least 32 characters"):
        secret_key(make_settings(tmp_path, secret_key="short"))
    assert "kkkk" not in repr(make_settings(tmp_path, secret_key=configured))


def _generation(number: int, status: str, values: dict[str, float]) -> Generation:
    measured = [
        Metric("accuracy@3", values["accuracy@3"], "relevance", support=100),
        Metric("tail_accuracy@3", values["tail_accuracy@3"], "tail", support=10),
        Metric("vendi", values["vendi"], "diversity", support=300),
    ]
    evaluation = Evaluation.of(measured, "accuracy@3").to_dict()
    metrics: dict[str, Any] = {"candidate": evaluation}
    if number:
        metrics["baseline"] = Evaluation.of(
            [
                Metric("accuracy@3", 0.5, "relevance", support=100),
                Metric("tail_accuracy@3", 0.4, "tail", support=10),
                Metric("vendi", 50.0, "diversity", support=300),
            ],
            "accuracy@3",
        ).to_dict()
    decision = {"verdict": "block"} if status == "blocked" else {}
    return Generation(
        id=number + 1,
        number=number,
        status=status,
        metrics=metrics,
        decision=decision,
        created_at=dt.datetime.now(dt.UTC),
    )


def test_charts_draw_the_baseline_and_the_gates_tolerance_band() -> None:
    generations = [
        _generation(0, "passed", {"accuracy@3": 0.5, "tail_accuracy@3": 0.4, "vendi": 50.0}),
        _generation(1, "passed", {"accuracy@3": 0.52, "tail_accuracy@3": 0.4, "vendi": 49.0}),
        _generation(2, "blocked", {"accuracy@3": 0.51, "tail_accuracy@3": 0.2, "vendi": 40.0}),
        Generation(id=9, number=3, status="failed", metrics={}, decision={}),
    ]
    data = build_charts(charted(generations, lambda g: f"/g/{g.id}"))
    assert data["labels"] == ["G0", "G1", "G2"]  # the failed one has nothing to draw
    assert data["statuses"] == ["passed", "passed", "blocked"]
    charts = {c["name"]: c for c in data["charts"]}
    assert list(charts) == ["accuracy@3", "tail_accuracy@3", "vendi"]
    vendi = charts["vendi"]
    assert vendi["values"] == [50.0, 49.0, 40.0]
    assert vendi["baseline"] == [50.0, 50.0, 50.0]
    # Vendi may fall 7% (its own tolerance) below the baseline.
    assert vendi["band_low"] == pytest.approx([46.5] * 3)
    assert vendi["band_high"] == [50.0] * 3
    # A tail metric may always move by one benchmark example: 1/10 beats 10% of 0.4.
    assert charts["tail_accuracy@3"]["band_low"] == pytest.approx([0.3] * 3)
    assert "Blocked: G2." in vendi["description"]


@pytest.mark.integration
def test_a_running_generation_is_followed_and_its_candidate_not_overridden(
    app: APIFlask, reviewer: FlaskClient, encoder: Encoder
) -> None:
    svc = app.extensions["replyguard"]
    ctx = PipelineContext(svc.settings, svc.db, encoder)
    generation_id = start_generation(ctx, "tests")
    while run_next_stage(ctx, generation_id) != "train":
        pass
    with svc.db.session() as session:
        candidate = session.get_one(Generation, generation_id).candidate_version
    assert candidate

    page = text(reviewer.get(f"/dashboard/generations/{generation_id}"))
    assert 'data-active="true"' in page
    assert "Live: this page checks every two seconds." in page
    poll = reviewer.get(f"/dashboard/generations/{generation_id}/progress.json")
    assert poll.is_json
    body = poll.get_json()
    assert body["status"] == "running"
    assert body["stages"]["train"]["status"] == "done"
    assert "data" not in body["stages"]["snapshot"]

    assert "awaiting the gate" in text(reviewer.get("/dashboard/models"))
    refused = reviewer.get(f"/dashboard/models/{candidate}/promote")
    assert refused.status_code == 409
    assert "wait for the gate" in text(refused)
    assert "Generation 1 is running" in text(reviewer.get("/dashboard/"))


@pytest.mark.parametrize(
    ("reason", "fragment"),
    [
        ("why\x00not", "reason has a control character U+0000 at character 3"),
        ("\u200b \u200b", "reason is empty or only whitespace and invisible characters"),
        ("r" * 2001, "reason is longer than 2000 characters (it has 2001)"),
    ],
)
def test_a_reason_goes_through_the_same_text_validation_as_the_api(
    app: APIFlask, reviewer: FlaskClient, reason: str, fragment: str
) -> None:
    from tests.test_serving import new_candidate

    version = new_candidate(app).version
    path = f"/dashboard/models/{version}/promote"
    before = audit_count(app)
    form = reviewer.get(path)
    assert 'maxlength="2000"' in text(form)
    response = reviewer.post(path, data={"reason": reason, "csrf_token": csrf_from(reviewer, path)})
    assert response.status_code == 400
    assert fragment in text(response)
    assert audit_count(app) == before
    with app.extensions["replyguard"].db.session() as session:
        assert production(session).version == "v1"


def _figure_rows(page: str) -> dict[str, list[str]]:
    """The overview's figures table: each row's label and its cells."""
    table = re.search(r'<table class="metrics" id="figures">(.*?)</table>', page, re.S)
    assert table, "no figures table on the overview"
    return {
        html.unescape(label): [
            html.unescape(c) for c in re.findall(r'<td class="num">([^<]*)</td>', cells)
        ]
        for label, cells in re.findall(
            r'<th scope="row">([^<]*)</th>(.*?)</tr>', table.group(1), re.S
        )
    }


def test_the_overview_shows_productions_figures_from_its_stored_evaluation(
    app: APIFlask, reviewer: FlaskClient
) -> None:
    with app.extensions["replyguard"].db.session() as session:
        row = production(session)
        assert row is not None
        stored = Evaluation.from_dict(row.evaluation["evaluation"])
        report = response_set_report(app.extensions["replyguard"].settings, row)
    rows = _figure_rows(text(reviewer.get("/dashboard/")))
    tappable = metric_label("tappable@3")
    assert (
        tappable
        == "A top-3 suggestion shown is one a person would tap, everyday messages (tappable@3)"
    )
    assert rows[tappable] == [f"{100 * stored.value('tappable@3'):.1f}%"]
    for name in ("inappropriate@3", "sensitive_inappropriate@3", "one_of_100", "plain_one_of_100"):
        assert re.fullmatch(r"\d{1,3}\.\d%", rows[metric_label(name)][0]), (name, rows)
    assert rows["Replies the model can suggest (response set size)"] == [f"{report['served']:,}"]
    assert report["served"] == report["catalogue"] + report["mined"] + report["curated"]
    assert "None" not in str(rows) and "" not in [cell for cells in rows.values() for cell in cells]


def test_a_model_measured_before_the_everyday_metrics_shows_not_measured(
    app: APIFlask, reviewer: FlaskClient
) -> None:
    missing = {"tappable@3", "inappropriate@3", "sensitive_tappable@3", "sensitive_inappropriate@3"}
    missing |= {"one_of_100", "plain_one_of_100"}
    with app.extensions["replyguard"].db.session() as session:
        row = production(session)
        assert row is not None
        stored = Evaluation.from_dict(row.evaluation["evaluation"])
        older = Evaluation.of(
            [m for name, m in stored.metrics.items() if name not in missing],
            stored.primary,
            stored.suggestions,
            stored.details,
        )
        row.evaluation = {"evaluation": older.to_dict()}
    rows = _figure_rows(text(reviewer.get("/dashboard/")))
    for name in missing:
        assert rows[metric_label(name)] == ["not measured"], name
    # What the artifact's manifest holds is still shown.
    assert rows["Replies the model can suggest (response set size)"] != ["not measured"]


def test_the_overview_shows_what_production_suggests_for_the_everyday_messages(
    app: APIFlask, reviewer: FlaskClient
) -> None:
    messages = showcase_messages()
    assert [m.text for m in messages] == list(SHOWCASE)
    assert 8 <= len(SHOWCASE) <= 12 and any(m.sensitive for m in messages)
    model = app.extensions["replyguard"].holder.get().model
    expected = [
        [s.text for s in model.triggering.shown(row)][:3]
        for row in model.suggest_many(list(SHOWCASE), k=3)
    ]
    page = text(reviewer.get("/dashboard/"))
    table = re.search(r'<table class="metrics" id="showcase">(.*?)</table>', page, re.S)
    assert table, "no everyday messages on the overview"
    rows = re.findall(
        r"<tr>\s*<th scope=\"row\">“([^”]*)”.*?</th>\s*<td>(.*?)</td>", table.group(1), re.S
    )
    assert [html.unescape(message) for message, _ in rows] == list(SHOWCASE)
    for (message, cell), texts in zip(rows, expected, strict=True):
        shown = [html.unescape(t).strip() for t in re.findall(r"<li[^>]*>([^<]*)<small", cell)]
        assert shown == texts, message
        if not texts:
            assert "silent: " in cell, message
    # Each suggestion is shown with its intent.
    assert any(expected) and 'class="intent"' in table.group(1)


def test_a_silent_model_says_why_on_the_overview(
    app: APIFlask, reviewer: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An everyday message that may be sad news: the model suggests nothing for it.
    monkeypatch.setattr(overview, "SHOWCASE", (*SHOWCASE, "my marriage is over"))
    model = app.extensions["replyguard"].holder.get().model
    silences = [model.triggering.silence(row) for row in model.suggest_many(overview.SHOWCASE)]
    page = text(reviewer.get("/dashboard/"))
    table = re.search(r'<table class="metrics" id="showcase">(.*?)</table>', page, re.S)
    assert table, "no everyday messages on the overview"
    cells = re.findall(r"</th>\s*<td>(.*?)</td>", table.group(1), re.S)
    assert len(cells) == len(overview.SHOWCASE)
    for message, cell, silence in zip(overview.SHOWCASE, cells, silences, strict=True):
        said = html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
        assert said.startswith("silent: ") == (silence is not None), (message, said)
        if silence is not None:
            assert said == f"silent: {silence}", message
    assert (
        html.unescape(cells[-1]).count(
            "silent: no reply fits this message: sad news gets sympathetic replies or none"
        )
        == 1
    )


def test_the_showcase_refuses_a_message_the_everyday_benchmark_does_not_have(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(overview, "SHOWCASE", (*SHOWCASE, "not an everyday message"))
    with pytest.raises(KeyError, match="not an everyday message"):
        overview.showcase_messages()
