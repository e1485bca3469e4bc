"""A generation run inline, stage by stage: idempotent stages, accumulate-only data, and
production that changes only through the gate (or an audited override or rollback)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from core.actions import Conflict
from core.actions import Invalid
from core.db import Database
from core.schema import AuditEntry
from core.schema import CandidateStatus
from core.schema import Example
from core.schema import Generation
from core.schema import IncomingMessage
from core.schema import ModelVersion
from core.schema import SyntheticCandidate
from models.encoder import Encoder
from models.registry import production
from models.registry import promote
from safeguards.metrics import default_tolerances
from worker.context import PipelineContext
from worker.pipeline import STAGES
from worker.pipeline import GenerationBusy
from worker.pipeline import begin_stage
from worker.pipeline import fail_stage
from worker.pipeline import finish_stage
from worker.pipeline import mark_failed
from worker.pipeline import resume_generation
from worker.pipeline import run_generation
from worker.pipeline import run_stage
from worker.pipeline import stage_guard
from worker.pipeline import start_generation
from worker.promotion import override
from worker.promotion import rollback
from worker.settings import Settings
from worker.stages import EncodeStage
from worker.stages import SynthesizeStage


@pytest.fixture
def ctx(settings: Settings, db: Database, encoder: Encoder) -> PipelineContext:
    return PipelineContext(settings, db, encoder)


def counts(db: Database) -> dict[str, int]:
    with db.session() as session:
        rows = session.execute(
            select(Example.provenance, func.count()).group_by(Example.provenance)
        )
        return {p: int(n) for p, n in rows}


def generation(db: Database, generation_id: int) -> Generation:
    with db.session() as session:
        return session.get_one(Generation, generation_id)


def test_a_generation_accumulates_and_promotes_through_the_gate(
    ctx: PipelineContext, db: Database
) -> None:
    before = counts(db)
    generation_id = start_generation(ctx, "tester")
    status = run_generation(ctx, generation_id)
    g = generation(db, generation_id)
    assert status in {"passed", "warned", "blocked"}
    assert [s for s in STAGES if g.stages[s]["status"] == "done"] == list(STAGES)
    assert g.number == 1
    assert g.parent_version == "v1"
    assert g.candidate_version == "v2"
    assert g.lock is None
    snapshot = g.stages["snapshot"]["counts"]
    assert snapshot["prompts"] > 100  # the demo's incoming traffic
    synth = g.stages["synthesize"]["counts"]["written"]
    removed_by_rules = sum(g.stages["filter"]["counts"]["removed"].values())
    removed_as_duplicates = sum(g.stages["deduplicate"]["counts"]["removed"].values())
    kept = g.stages["deduplicate"]["counts"]["kept"]
    assert synth == kept + removed_by_rules + removed_as_duplicates
    mix = g.stages["mix"]["counts"]
    # Accumulate: every human example trains, and the model's share respects the cap.
    assert mix["human"] == before["human"] - snapshot["benchmark"]
    assert mix["synthetic"] <= mix["human"]
    assert set(g.metrics) == {"candidate", "production", "baseline"}
    assert g.decision["verdict"] in {"pass", "warn", "block"}
    assert g.decision["reasons"]

    after = counts(db)
    assert after["human"] == before["human"]
    with db.session() as session:
        prod = production(session)
        assert prod is not None
        kept_rows = session.scalar(
            select(func.count(SyntheticCandidate.id)).where(
                SyntheticCandidate.generation_id == generation_id,
                SyntheticCandidate.status == CandidateStatus.KEPT.value,
            )
        )
        synthetic_rows = list(
            session.scalars(select(Example).where(Example.provenance == "synthetic"))
        )
    if status == "blocked":
        assert prod.version == "v1"
        assert synthetic_rows == []
    else:
        assert prod.version == "v2"
        # All of this generation's kept rows, each naming the model and generation that wrote it.
        assert len(synthetic_rows) == kept_rows == kept
        assert {(r.generation, r.model_version) for r in synthetic_rows} == {(1, "v1")}


def _snapshot_prompts(settings: Settings, db: Database, encoder: Encoder) -> list[str]:
    """The messages the snapshot stage picks as this generation's prompts."""
    ctx = PipelineContext(settings, db, encoder)
    generation_id = start_generation(ctx, "tester")
    run_stage(ctx, generation_id, "snapshot")
    prompts = generation(db, generation_id).stages["snapshot"]["data"]["prompts"]
    with db.session() as session:
        by_id = dict(session.execute(select(IncomingMessage.id, IncomingMessage.message)).all())
    return [by_id[i] for kind, i in prompts if kind == "incoming"]


def test_prompts_are_a_uniform_sample_not_the_alphabetically_last(
    settings: Settings, db: Database, encoder: Encoder
) -> None:
    # One import: the demo's traffic went in sorted by text (core.demo.load_with_traffic), so
    # its ids follow the alphabet. Newest-first took the 50 alphabetically last messages.
    with db.session() as session:
        traffic = sorted(session.scalars(select(IncomingMessage.message)))
    assert len(traffic) > 200
    picked = _snapshot_prompts(settings.with_overrides(synthesize_max_prompts=50), db, encoder)
    assert len(picked) == 50
    rank = {message: i / (len(traffic) - 1) for i, message in enumerate(traffic)}
    mean_rank = sum(rank[m] for m in picked) / len(picked)
    # A uniform sample of 50 has a mean rank of 0.5 with a standard deviation of about 0.04;
    # the alphabetically last 50 have about 0.89.
    assert 0.38 < mean_rank < 0.62
    assert sum(rank[m] < 0.5 for m in picked) >= 15


def test_zero_max_prompts_labels_no_prompt(
    settings: Settings, db: Database, encoder: Encoder
) -> None:
    ctx = PipelineContext(settings.with_overrides(synthesize_max_prompts=0), db, encoder)
    generation_id = start_generation(ctx, "tester")
    run_stage(ctx, generation_id, "snapshot")
    run_stage(ctx, generation_id, "synthesize")
    g = generation(db, generation_id)
    assert g.stages["snapshot"]["counts"]["prompts"] == 0
    assert g.stages["synthesize"]["counts"]["written"] == 0


def test_one_generation_at_a_time(ctx: PipelineContext) -> None:
    first = start_generation(ctx, "tester")
    with pytest.raises(GenerationBusy, match=f"generation 1 \\(id {first}\\) is already queued"):
        start_generation(ctx, "tester")


def test_stages_are_idempotent(ctx: PipelineContext, db: Database) -> None:
    generation_id = start_generation(ctx, "tester")
    run_stage(ctx, generation_id, "snapshot")
    run_stage(ctx, generation_id, "synthesize")
    written = generation(db, generation_id).stages["synthesize"]["counts"]["written"]

    # A worker died mid-stage: the stage is marked unfinished and runs again from its start.
    with db.session() as session:
        g = session.get_one(Generation, generation_id)
        g.stage_runs["synthesize"].status = "running"
    run_stage(ctx, generation_id, "synthesize")
    run_stage(ctx, generation_id, "synthesize")  # done: a no-op
    with db.session() as session:
        staged = session.scalar(
            select(func.count(SyntheticCandidate.id)).where(
                SyntheticCandidate.generation_id == generation_id
            )
        )
    assert staged == written
    assert generation(db, generation_id).stages["synthesize"]["status"] == "done"


def test_a_failing_stage_marks_the_generation_failed_and_releases_the_lock(
    ctx: PipelineContext, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> dict[str, Any]:
        raise OSError("disk full")

    monkeypatch.setattr(SynthesizeStage, "run", broken)
    generation_id = start_generation(ctx, "tester")
    with pytest.raises(OSError, match="disk full"):
        run_generation(ctx, generation_id)
    g = generation(db, generation_id)
    assert (g.status, g.stage, g.lock) == ("failed", "synthesize", None)
    assert g.error == "synthesize: OSError: disk full"
    with db.session() as session:
        assert production(session).version == "v1"  # type: ignore[union-attr]
    # The lock is free again.
    assert start_generation(ctx, "tester") != generation_id


def promote_a_copy_of_production(ctx: PipelineContext) -> str:
    """Another legitimate production change: a copy of the current model, promoted by hand."""
    from models.artifact import load_model
    from models.registry import artifact_dir
    from models.registry import register

    with ctx.db.session() as session:
        row = production(session)
        assert row is not None
        path, checksum = artifact_dir(ctx.settings, row), row.checksum
    model, _ = load_model(path, ctx.encoder, checksum)
    copy = register(ctx.db, ctx.settings, model, generation=0, parent=row.version, metadata={})
    with ctx.db.session() as session:
        promote(session, ctx.settings, copy.version, "someone", "hotfix")
    return copy.version


def blocked_generation(ctx: PipelineContext) -> int:
    """Production changes while the generation runs, so the gate's comparison is void."""
    generation_id = start_generation(ctx, "tester")
    for stage in STAGES[:-1]:
        run_stage(ctx, generation_id, stage)
    promote_a_copy_of_production(ctx)
    run_stage(ctx, generation_id, "promote")
    return generation_id


def test_production_changing_mid_generation_blocks_it(ctx: PipelineContext, db: Database) -> None:
    before = counts(db)
    generation_id = blocked_generation(ctx)
    g = generation(db, generation_id)
    assert (g.status, g.decision["verdict"], g.lock) == ("blocked", "block", None)
    assert "production changed" in g.decision["reasons"][0]
    assert counts(db) == before  # no synthetic row entered the training data
    with db.session() as session:
        assert production(session).version != g.candidate_version  # type: ignore[union-attr]
        candidate = session.scalars(
            select(ModelVersion).where(ModelVersion.version == g.candidate_version)
        ).one()
    assert candidate.status == "blocked"


def test_override_needs_a_reason_and_keeps_the_generations_data(
    ctx: PipelineContext, db: Database
) -> None:
    generation_id = blocked_generation(ctx)
    g = generation(db, generation_id)
    with pytest.raises(Invalid, match="needs a reason"), db.session() as session:
        override(session, ctx.settings, g.candidate_version or "", "reviewer", "   ")
    with db.session() as session:
        override(session, ctx.settings, g.candidate_version or "", "reviewer", "spot-checked: fine")
    g = generation(db, generation_id)
    assert g.status == "passed"
    assert g.decision["override_reason"] == "spot-checked: fine"
    assert counts(db).get("synthetic", 0) == g.stages["deduplicate"]["counts"]["kept"]
    with db.session() as session:
        assert production(session).version == g.candidate_version  # type: ignore[union-attr]
        audit = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert audit is not None
    assert (audit.action, audit.actor, audit.reason) == (
        "model.override",
        "reviewer",
        "spot-checked: fine",
    )


def test_rollback_returns_to_an_archived_version_only(ctx: PipelineContext, db: Database) -> None:
    copy = promote_a_copy_of_production(ctx)
    with pytest.raises(Conflict, match="production already"), db.session() as session:
        rollback(session, ctx.settings, copy, "reviewer", "why")
    with db.session() as session:
        rollback(session, ctx.settings, "v1", "reviewer", "the copy feels bland")
    with db.session() as session:
        assert production(session).version == "v1"  # type: ignore[union-attr]
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry is not None
    assert (entry.action, entry.target, entry.reason) == (
        "model.rollback",
        "v1",
        "the copy feels bland",
    )
    with pytest.raises(Invalid, match="needs a reason"), db.session() as session:
        rollback(session, ctx.settings, copy, "reviewer", "")


def test_a_crash_while_recording_the_candidate_leaves_no_orphan_candidate(
    ctx: PipelineContext, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.stages.train as train

    generation_id = start_generation(ctx, "tester")
    number = generation(db, generation_id).number
    for stage in STAGES[: STAGES.index("train")]:
        run_stage(ctx, generation_id, stage)
    real_get = train.get_generation

    def versions_of_this_generation(session: Any) -> list[ModelVersion]:
        return list(session.scalars(select(ModelVersion).where(ModelVersion.generation == number)))

    def crash_while_recording(session: Any, gid: int) -> Generation:
        # The process dies just as the new candidate is recorded on its generation.
        if any(r.status == "candidate" for r in versions_of_this_generation(session)):
            raise OSError("killed")
        return real_get(session, gid)

    monkeypatch.setattr(train, "get_generation", crash_while_recording)
    with pytest.raises(OSError, match="killed"):
        run_stage(ctx, generation_id, "train")
    monkeypatch.setattr(train, "get_generation", real_get)
    with db.session() as session:
        statuses = [r.status for r in versions_of_this_generation(session)]
    assert statuses == ["building"], "the candidate must not outlive the crash on its own"

    # Resumed: the leftover row is marked failed, and the one candidate is the generation's.
    assert resume_generation(ctx, generation_id, "tester") == "train"
    run_stage(ctx, generation_id, "train")
    with db.session() as session:
        rows = versions_of_this_generation(session)
    assert sorted(r.status for r in rows) == ["candidate", "failed"]
    candidate = next(r for r in rows if r.status == "candidate")
    assert generation(db, generation_id).candidate_version == candidate.version


class Killed(BaseException):
    """The process died here (an injected fault): nothing after it runs."""


def test_a_kill_after_the_promotion_commits_leaves_no_stage_running(
    settings: Settings, db: Database, encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.pipeline as pipeline

    ctx = PipelineContext(settings.with_overrides(adapter={"epochs": 1}), db, encoder)
    generation_id = start_generation(ctx, "tester")
    for stage in STAGES[:-1]:
        run_stage(ctx, generation_id, stage)

    def killed(*_: Any, **__: Any) -> None:
        raise Killed

    # The worker dies after the promote stage's transaction, before its own bookkeeping.
    monkeypatch.setattr(pipeline, "finish_stage", killed)
    with pytest.raises(Killed):
        run_stage(ctx, generation_id, "promote")
    g = generation(db, generation_id)
    assert g.status in {"passed", "warned", "blocked"}
    assert g.lock is None
    # The generation is over, so nothing would ever resume it: its last stage is done too.
    assert g.stages["promote"]["status"] == "done"
    assert g.stages["promote"]["counts"]["verdict"] == g.decision["verdict"]


def test_no_stage_starts_while_another_process_runs_the_generation(
    ctx: PipelineContext, db: Database
) -> None:
    generation_id = start_generation(ctx, "tester")
    # Another process holds the generation's stage lock (here: another open file of it,
    # which flock treats as another holder).
    with stage_guard(ctx, generation_id) as held:
        assert held
        assert run_stage(ctx, generation_id, "snapshot") is False
        with pytest.raises(GenerationBusy, match="running elsewhere"):
            run_generation(ctx, generation_id)
        with pytest.raises(GenerationBusy, match="cannot be resumed while that worker runs"):
            resume_generation(ctx, generation_id, "tester")
        with pytest.raises(GenerationBusy, match="cannot be marked failed while"):
            mark_failed(ctx, generation_id, "its worker looks dead")
    assert generation(db, generation_id).stages == {}
    assert generation(db, generation_id).status == "queued"
    # Free again (as when its holder exits, even by SIGKILL): the stage runs, once.
    assert run_stage(ctx, generation_id, "snapshot") is True
    assert generation(db, generation_id).stages["snapshot"]["attempts"] == 1


def test_the_gate_decides_with_the_tolerances_of_the_settings(
    ctx: PipelineContext, db: Database
) -> None:
    # REPLYGUARD_GATE__PER_METRIC reaches the gate stage: the decision is made, and stored,
    # with Vendi's tolerance from the settings and every other one from safeguards.gate.
    settings = ctx.settings.with_overrides(gate={"per_metric": {"vendi": 0.5}})
    loose = PipelineContext(settings, db, ctx.encoder)
    generation_id = start_generation(loose, "tester")
    for stage in STAGES[: STAGES.index("gate") + 1]:
        run_stage(loose, generation_id, stage)
    decision = generation(db, generation_id).decision
    assert decision["tolerances"]["per_metric"] == {**default_tolerances(), "vendi": 0.5}
    tolerance = {m["name"]: m["tolerance"] for m in decision["metrics"]}
    assert tolerance["vendi"] == 0.5
    assert tolerance["distinct_2"] == default_tolerances()["distinct_2"]


def test_generation_show_reads_like_a_report_and_defaults_to_the_latest(
    ctx: PipelineContext, db: Database
) -> None:
    from click.testing import CliRunner

    from webapp.cli import main

    generation_id = start_generation(ctx, "tester")
    run_generation(ctx, generation_id)
    latest = generation(db, generation_id)
    cli = CliRunner()
    data_dir = str(ctx.settings.data_dir)
    by_id = cli.invoke(main, ["--data-dir", data_dir, "generation", "show", str(generation_id)])
    default = cli.invoke(main, ["--data-dir", data_dir, "generation", "show"])
    assert by_id.exit_code == default.exit_code == 0, default.output
    assert default.output == by_id.output
    assert default.output.startswith(f"generation {latest.number} (id {generation_id}): ")
    # Counts as a person reads them: no Python None, no float printed to 16 digits (four
    # significant digits: 0.8314 and 0.07281 are both right, 0.8314035916824196 is not).
    stages = default.output.split("  stages:")[1].split("  metrics")[0]
    assert "None" not in stages
    assert not re.search(r"\d\.0*[1-9]\d{4,}", stages), stages
    assert not re.search(r"\d\.0*[1-9]\d{4,}", "triggering_threshold 0.07281, share 0.8314")
    assert re.search(r"\d\.0*[1-9]\d{4,}", "share 0.8314035916824196")
    missing = cli.invoke(main, ["--data-dir", data_dir, "generation", "show", "999"])
    assert missing.exit_code == 1
    assert "no generation with id 999; `replyguard generation list` shows them" in missing.output


def test_the_clean_baselines_generation_is_created_before_it_finishes(db: Database) -> None:
    # Its row spans the training (it said finished a few microseconds before it was created).
    with db.session() as session:
        baseline = session.scalars(select(Generation).where(Generation.number == 0)).one()
        assert baseline.finished_at is not None
        assert baseline.created_at < baseline.finished_at


def test_resume_and_fail_are_refused_while_encode_chunks_hold_the_lock_shared(
    ctx: PipelineContext, db: Database
) -> None:
    """The encode stage's chunks run on any workers after the planning task let go of the
    exclusive lock; each holds it shared, and while any does, `generation resume` and
    `generation fail` are refused with what to do (faults item 7)."""
    generation_id = start_generation(ctx, "tester")
    for stage in STAGES[: STAGES.index("encode")]:
        run_stage(ctx, generation_id, stage)
    with stage_guard(ctx, generation_id) as free:
        assert free
        run = begin_stage(ctx, generation_id, "encode")
        assert run is not None and run.attempt == 1
    with (
        stage_guard(ctx, generation_id, shared=True) as chunk_0,
        stage_guard(ctx, generation_id, shared=True) as chunk_1,
    ):
        assert chunk_0 and chunk_1, "chunks on two workers hold it together"
        for _ in range(3):
            with pytest.raises(GenerationBusy) as refused:
                resume_generation(ctx, generation_id, "tester")
            assert "running stage encode in live workers" in str(refused.value)
            assert f"replyguard generation show {generation_id}" in str(refused.value)
        with pytest.raises(GenerationBusy, match="cannot be marked failed while they run it"):
            mark_failed(ctx, generation_id, "looks stuck")
        # No stage runner gets in beside them either.
        assert run_stage(ctx, generation_id, "encode") is False
    record = generation(db, generation_id).stages["encode"]
    assert (record["status"], record["attempts"]) == ("running", 1)
    assert generation(db, generation_id).status == "running"


def test_a_late_completion_of_a_superseded_stage_run_records_nothing(
    ctx: PipelineContext, db: Database
) -> None:
    """Attempt 1 of encode is interrupted and the generation resumed (attempt 2); attempt
    1's chunks and its chord's callback then come in late, one after attempt 2 finished and
    the generation moved on: none of them encodes, records, fails or moves anything (on the
    code before, each re-recorded encode done after filter). Through the Celery tasks."""
    from flask import Flask

    from worker.celery_app import EXTENSION
    from worker.stages.encode import chunk_dir
    from worker.tasks import encode_chunk_task
    from worker.tasks import encode_done

    app = Flask("test")
    app.extensions[EXTENSION] = ctx
    generation_id = start_generation(ctx, "tester")
    for stage in STAGES[: STAGES.index("encode")]:
        run_stage(ctx, generation_id, stage)
    with stage_guard(ctx, generation_id) as free:
        assert free
        run = begin_stage(ctx, generation_id, "encode")
        assert run is not None
        first, counts = run.attempt, EncodeStage().plan(run).as_counts()
    # The worker of attempt 1 died; the generation is resumed and encode starts again.
    assert resume_generation(ctx, generation_id, "tester") == "encode"
    with stage_guard(ctx, generation_id) as free:
        rerun = begin_stage(ctx, generation_id, "encode")
    assert rerun is not None
    second = rerun.attempt
    assert (first, second) == (1, 2)

    with app.app_context():
        # Attempt 1's chunk arrives: it encodes nothing.
        assert encode_chunk_task.run(generation_id, 0, first) == 0
        assert not (chunk_dir(ctx, generation_id) / "00000.npy").exists()
        # Attempt 1's callback arrives before attempt 2 is done: nothing recorded.
        assert encode_done.run(generation_id, counts, time.time() - 5, first) is None
        assert generation(db, generation_id).stages["encode"]["status"] == "running"
        # Attempt 2 runs its chunks and finishes (its callback queues filter: Redis is up).
        for index in range(counts["chunks"]):
            assert encode_chunk_task.run(generation_id, index, second) > 0
        assert finish_stage(ctx, generation_id, "encode", counts, 1.0, second)
        assert run_stage(ctx, generation_id, "filter")
        encode_record = generation(db, generation_id).stages["encode"]
        # Late: attempt 1's and attempt 2's callbacks again, and a failure of attempt 1.
        assert encode_done.run(generation_id, counts, time.time() - 9, first) is None
        assert encode_done.run(generation_id, counts, time.time() - 9, second) is None
        fail_stage(ctx, generation_id, "encode", RuntimeError("late chunk"), first)
    after = generation(db, generation_id)
    assert after.status == "running" and after.stage == "filter"
    assert after.stages["encode"] == encode_record
    assert after.stages["filter"]["status"] == "done"
