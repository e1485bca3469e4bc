"""Faults at every stage of a generation, on real Celery workers and a real redis-server.

- One generation, ten SIGKILLs: the worker running it is killed at the fault point of each
  stage in turn (worker/faults.py: where the stage has written part of its work and not yet
  recorded itself done), and each time a newly started worker resumes it. Every kill is
  checked as it happens (production untouched and gated, no human example lost, no synthetic
  row kept); at the end the generation is compared, decision, figures and every stage's
  counts, with the same generation run uninterrupted on another copy of the same data folder.
  One generation with ten kills rather than ten generations with one kill each: a case costs
  a worker start and an encoder load (10 to 15 s on the 2-core machine), and ten separate
  cases cost two of each plus a data folder, over 7 minutes against 1.5 to 2.
- A task delivered again (Redis's redelivery after the visibility timeout) while another
  worker runs its stage.
- Redis stopped and started again while a stage runs.

Generations here train one adapter epoch (the session's baseline keeps its eight). The
figures are compared exactly, not within a tolerance: a resumed stage makes the same
computations in the same order as the uninterrupted run (the same encoder batches, the
vectors of the killed attempt read back from the data folder's embedding cache, the same
seeds), on the same machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.db import Database
from core.schema import Example
from core.schema import Generation
from core.schema import ModelStatus
from core.schema import ModelVersion
from core.schema import SyntheticCandidate
from models.artifact import verify
from models.registry import production
from tests.helpers import FINAL
from tests.helpers import launch_worker
from tests.helpers import make_settings
from tests.helpers import wait_for
from tests.helpers import wait_for_worker
from webapp.launch import stop_server
from worker.broker import embedded_redis_url
from worker.broker import stop_embedded_redis
from worker.celery_app import TIME_LIMIT
from worker.celery_app import VISIBILITY_TIMEOUT
from worker.celery_app import sender
from worker.context import PipelineContext
from worker.data import example_pools
from worker.dispatch import queue_generation
from worker.dispatch import queue_resume
from worker.pipeline import STAGES
from worker.pipeline import GenerationBusy

pytestmark = pytest.mark.integration

# One adapter epoch: a generation trains in seconds. Replies sampled among the top
# suggestions (temperature 1) for 100 prompts of the traffic. The gate's verdict is not what
# this test is about, but a pass is the harder half of "synthetic rows all kept or all
# discarded" (promote keeps them); on this small data the candidate's Vendi and distinct
# share move by about their tolerances between code changes (7.1% against 7% once), so the
# gate gets tolerances this data always passes: 50% for every held metric.
LOOSE = dict.fromkeys(
    [
        "similarity@3",
        "coverage",
        "tail_similarity@3",
        "tail_accuracy@1",
        "tail_accuracy@3",
        "tail_mrr@10",
        "distinct_1",
        "distinct_2",
        "distinct_share",
        "entropy",
        "entropy_norm",
        "vendi",
        "pairwise_distance",
    ],
    0.5,
)
WORKER_ENV = {
    "REPLYGUARD_ADAPTER_EPOCHS": "1",
    "REPLYGUARD_SYNTHESIZE_TEMPERATURE": "1.0",
    "REPLYGUARD_SYNTHESIZE_MAX_PROMPTS": "100",
    "REPLYGUARD_GATE_TOLERANCES": json.dumps(LOOSE),
    # The gate's sensitive rule (one inappropriate suggestion for a sensitive everyday message
    # blocks) is not what this test is about either. The chatterbot baseline shows none (its
    # long one-off replies mostly have no intent; the chitchat demo's show one on 102 of 140),
    # but a candidate that picks up one "Yes" or "Hi" for a sensitive message would be blocked
    # whatever its tolerances, and the pass half would not run. tests/test_everyday.py tests it.
    "REPLYGUARD_GATE_SENSITIVE_RULE": "false",
}


@dataclass(frozen=True)
class Outcome:
    """What a finished generation decided and wrote. Model version names are left out: a
    train stage run twice registers its candidate under the next name."""

    status: str
    decision: dict[str, Any]
    # The evaluations of candidate, production and baseline, without their version names.
    metrics: dict[str, Any]
    # Each stage's counts, the candidate's name replaced by "<candidate>".
    counts: dict[str, Any]
    # (message, reply, status, removed_by) of every synthetic reply the generation staged.
    candidates: Counter[tuple[str, str, str, str]]
    # (message, reply, niche, generation, model_version) of every synthetic example.
    synthetic: Counter[tuple[str, str, str, int | None, str | None]]
    # Whether production is the generation's candidate.
    promoted: bool


def outcome(db: Database, generation_id: int) -> Outcome:
    with db.session() as session:
        generation = session.get_one(Generation, generation_id)
        candidate = generation.candidate_version
        prod = production(session)
        assert prod is not None
        staged = session.scalars(
            select(SyntheticCandidate).where(SyntheticCandidate.generation_id == generation_id)
        )
        synthetic = session.scalars(select(Example).where(Example.provenance == "synthetic"))

        def unnamed(counts: dict[str, Any]) -> dict[str, Any]:
            return {k: "<candidate>" if v == candidate else v for k, v in counts.items()}

        return Outcome(
            status=generation.status,
            decision=generation.decision,
            metrics={
                role: {k: v for k, v in figures.items() if k != "version"}
                for role, figures in generation.metrics.items()
            },
            counts={s: unnamed(generation.stages[s]["counts"]) for s in STAGES},
            candidates=Counter((c.message, c.reply, c.status, c.removed_by) for c in staged),
            synthetic=Counter(
                (e.message, e.reply, e.niche, e.generation, e.model_version) for e in synthetic
            ),
            promoted=prod.version == candidate,
        )


def human_examples(db: Database) -> Counter[tuple[int, str]]:
    """(id, content hash) of every human example: nothing lost, nothing counted twice."""
    with db.session() as session:
        rows = session.execute(
            select(Example.id, Example.content_hash).where(Example.provenance == "human")
        )
        return Counter((int(i), h) for i, h in rows)


def assert_production_is_gated(db: Database, data_dir: Path) -> None:
    """Production is the clean baseline or the candidate of a generation the gate passed,
    its artifact whole; every model a row offers is whole (no half-written artifact), and
    nothing but hidden staging folders lies beside them."""
    settings = make_settings(data_dir)
    with db.session() as session:
        prod = production(session)
        assert prod is not None
        owner = session.scalars(
            select(Generation).where(Generation.candidate_version == prod.version)
        ).one()
        assert owner.number == 0 or (
            owner.status in {"passed", "warned"} and owner.decision["verdict"] in {"pass", "warn"}
        ), (
            f"production {prod.version} is the candidate of generation {owner.number}, {owner.status}"
        )
        rows = list(session.scalars(select(ModelVersion)))
    assert all(row.status != ModelStatus.BUILDING.value for row in rows)
    for row in rows:
        if row.status != ModelStatus.FAILED.value:
            verify(data_dir / row.artifact_path, row.checksum)
    on_disk = {p.name for p in settings.models_dir.iterdir() if not p.name.startswith(".")}
    assert on_disk <= {row.version for row in rows}


def wait_for_pause(db: Database, generation_id: int, stage: str, timeout: float = 120) -> int:
    """Wait until a worker stops at the stage's fault point; return its process id. Fails at
    once, with the generation's error, if the generation ends first."""
    marker = db.settings.data_dir / "faults" / f"{stage}.paused"
    deadline = time.monotonic() + timeout
    while not marker.exists():
        with db.session() as session:
            generation = session.get_one(Generation, generation_id)
            assert generation.status not in FINAL, (
                f"generation {generation.status} before {stage}'s fault point: {generation.error}"
            )
        assert time.monotonic() < deadline, (
            f"no worker reached {stage}'s fault point in {timeout} s"
        )
        time.sleep(0.1)
    return int(marker.read_text())


@pytest.fixture(scope="module")
def reference(trained_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """Generation 1 run uninterrupted on a worker, on its own copy of the trained data (its
    worker and Redis stopped before the cases start theirs)."""
    data_dir = tmp_path_factory.mktemp("reference") / "data"
    shutil.copytree(trained_dir, data_dir)
    settings = make_settings(data_dir)
    url = embedded_redis_url(settings)
    worker = launch_worker(data_dir, url, data_dir / "worker.log", **WORKER_ENV)
    ctx = PipelineContext.from_settings(settings.with_overrides(redis_url=url))
    try:
        wait_for_worker(url, worker)
        generation_id = queue_generation(sender(ctx.settings), ctx, "reference")
        final = wait_for(ctx.db, generation_id, lambda g: g.status in FINAL)
        assert final.status != "failed", final.error
        return outcome(ctx.db, generation_id)
    finally:
        stop_server(worker)
        stop_embedded_redis()
        ctx.db.dispose()


def test_a_worker_killed_in_every_stage_in_turn_resumes_to_the_same_decision(
    api: Any,
    db: Database,
    data_dir: Path,
    start_worker: Any,
    reference: Outcome,
) -> None:
    """One generation, ten kills: the worker running it is SIGKILLed at the fault point of
    each stage in turn, and a newly started worker resumes it (`queue_resume`, what
    `replyguard generation resume` runs). Each kill is checked as it happens; the generation
    they leave is compared, stage by stage, with the uninterrupted reference."""
    client, reviewer, client_key = api
    app = client.application
    humans = human_examples(db)
    assert reference.status == "passed", reference.decision["reasons"]

    def worker_pausing_in(stage: str, wait: bool = True) -> Any:
        return start_worker(wait, **WORKER_ENV, REPLYGUARD_FAULT_PAUSE_STAGE=stage)

    worker = worker_pausing_in(STAGES[0])
    generation_id = client.post("/v1/generations", headers=reviewer).json["generation_id"]
    for number, stage in enumerate(STAGES):
        assert wait_for_pause(db, generation_id, stage) == worker.pid
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)

        with db.session() as session:
            generation = session.get_one(Generation, generation_id)
            assert (generation.status, generation.stage) == ("running", stage)
            assert generation.stages[stage]["status"] == "running"
            assert production(session).version == "v1"  # type: ignore[union-attr]
            assert not session.scalars(
                select(Example).where(Example.provenance == "synthetic")
            ).all()
        assert_production_is_gated(db, data_dir)
        assert human_examples(db) == humans
        if number == 0:
            # Unfinished is not over: a second generation is refused until it is resumed
            # (or marked failed).
            assert client.post("/v1/generations", headers=reviewer).status_code == 409
        else:
            # People go on using the app while the generation is down: a reply in a niche
            # of its own, the rarest of all. It changes nothing the generation decides,
            # since every stage reads the examples up to its snapshot. (Snapshot itself, run
            # again, takes a new snapshot, as it would have had it started later: so the
            # first reply arrives once the snapshot is done.)
            humans += feedback(client, client_key, number, stage)
        if stage == "synthesize":
            # And the team imports a batch of examples that makes the rarest niche common.
            humans += import_into_the_tail(client, reviewer, db, reference)

        # Resumed before the next worker starts: a worker started first can take the killed
        # one's encode chunks from the queue (redelivered, as they were never acknowledged),
        # and a generation whose stage live workers run is rightly not resumed
        # (GenerationBusy): the test then failed on a loaded machine. The worker is not
        # waited for: it takes the resumed stage at once, and the next round (or the end)
        # waits for what it does.
        resumed = queue_resume(
            app.extensions["celery"], app.extensions["replyguard"].pipeline, generation_id, "tester"
        )
        assert resumed == stage
        following = STAGES[number + 1] if number + 1 < len(STAGES) else ""
        worker = worker_pausing_in(following, wait=False)

    final = wait_for(db, generation_id, lambda g: g.status in FINAL)
    assert final.status != "failed", final.error
    assert outcome(db, generation_id) == reference
    # Each stage ran twice (killed once, then resumed), never more.
    assert {s: final.stages[s]["attempts"] for s in STAGES} == dict.fromkeys(STAGES, 2)
    assert all(final.stages[s]["resumed_by"] == "tester" for s in STAGES)
    assert human_examples(db) == humans
    assert_production_is_gated(db, data_dir)
    with db.session() as session:
        statuses = {v.version: v.status for v in session.scalars(select(ModelVersion))}
    # The candidate of the killed training run is superseded, never left promotable.
    assert statuses == {"v1": "archived", "v2": "failed", "v3": "production"}


def import_into_the_tail(
    client: Any, headers: dict[str, str], db: Database, reference: Outcome
) -> Counter[tuple[int, str]]:
    """Import (POST /v1/examples) just enough human examples in the rarest niche of the
    reference's evaluation to make it no longer rare, had the evaluation counted them;
    return what :func:`human_examples` gains."""
    tail = reference.metrics["candidate"]["details"]["tail_niches"]
    with db.session() as session:
        pools = example_pools(session)
    counts = pools.human_counts()
    common = {r.niche for r in pools.benchmark} - set(tail)
    rarest = tail[0]
    needed = min(counts[n] for n in common) - counts[rarest] + 1
    before = human_examples(db)
    answer = client.post(
        "/v1/examples",
        json={
            "examples": [
                {
                    "message": f"{i}. a question about {rarest}",
                    "reply": f"{i}. an answer about {rarest}",
                    "niche": rarest,
                }
                for i in range(needed)
            ],
            "provenance": "human",
        },
        headers=headers,
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["added"] == needed
    return human_examples(db) - before


def feedback(
    client: Any, headers: dict[str, str], number: int, stage: str
) -> Counter[tuple[int, str]]:
    """A person's own reply, sent as feedback in a niche of its own; returns it as
    :func:`human_examples` counts it. Its texts start with a digit, so they sort before the
    demo's texts: into the first chunk of the encode stage's plan, which a plan that took
    them in would shift under the chunks already encoded."""
    answer = client.post(
        "/v1/feedback",
        json={
            "message": f"{number}. is the {stage} stage done yet?",
            "suggestions": [],
            "typed": f"{number}. not yet, {stage} was interrupted",
            "niche": f"faults-{stage}",
        },
        headers=headers,
    )
    assert answer.status_code == 201, answer.json
    with client.application.extensions["replyguard"].db.session() as session:
        row = session.get_one(Example, answer.json["example_id"])
        return Counter({(row.id, row.content_hash): 1})


def unacked_tags(celery: Any) -> dict[str, float]:
    """The tasks Redis holds as delivered and not acknowledged: delivery tag to the time
    (seconds since the epoch) it was delivered (kombu's Redis transport keeps them so)."""
    with celery.connection_for_write() as connection:
        client = connection.default_channel.client
        return {
            tag.decode(): score
            for tag, score in client.zrange("unacked_index", 0, -1, withscores=True)
        }


def restore_unacked(celery: Any, seconds_later: float) -> None:
    """Run what every worker's poll loop runs now and then, kombu's ``restore_visible``, with
    the clock ``seconds_later`` ahead: it puts back in the queue each task delivered longer
    ago than the visibility timeout (broker_transport_options)."""
    from kombu.transport import redis as transport

    now = time.time() + seconds_later
    with celery.connection_for_write() as connection:
        qos = connection.default_channel.qos
        assert qos.visibility_timeout == VISIBILITY_TIMEOUT
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(transport, "time", lambda: now)
            qos.restore_visible()


def test_a_task_redelivered_while_its_stage_runs_does_not_run_it_twice(
    api: Any, db: Database, data_dir: Path, start_worker: Any
) -> None:
    """Redis gives an unacknowledged task to another worker after the visibility timeout;
    the worker that has it may still be running it (the solo pool enforces no time limit).
    The second delivery must not run the stage a second time beside the first."""
    client, reviewer, _ = api
    app = client.application
    celery = app.extensions["celery"]
    env = {
        **WORKER_ENV,
        "REPLYGUARD_FAULT_PAUSE_STAGE": "train",
    }
    workers = [start_worker(**env), start_worker(**env)]
    generation_id = client.post("/v1/generations", headers=reviewer).json["generation_id"]
    pid = wait_for_pause(db, generation_id, "train")
    [other] = [w for w in workers if w.pid != pid]
    [(tag, delivered)] = unacked_tags(celery).items()

    # Nothing was interrupted, so there is nothing to resume.
    with pytest.raises(GenerationBusy, match="running stage train in a live worker"):
        queue_resume(celery, app.extensions["replyguard"].pipeline, generation_id, "tester")

    # At the longest time limit a task may run, Redis has not given it to anyone else...
    assert VISIBILITY_TIMEOUT > TIME_LIMIT
    restore_unacked(celery, seconds_later=TIME_LIMIT)
    assert unacked_tags(celery) == {tag: delivered}
    # ...past the visibility timeout it has: the other worker gets it and leaves it alone.
    restore_unacked(celery, seconds_later=VISIBILITY_TIMEOUT + 1)
    log = data_dir / f"worker-{workers.index(other)}.log"
    deadline = time.monotonic() + 60
    while "stage train not started: another process" not in log.read_text():
        assert time.monotonic() < deadline, "the second delivery was not refused"
        time.sleep(0.1)
    with db.session() as session:
        record = session.get_one(Generation, generation_id).stages["train"]
        assert (record["status"], record["attempts"]) == ("running", 1)
        assert record["worker"].endswith(f":{pid}")

    (data_dir / "faults" / "train.release").touch()
    final = wait_for(db, generation_id, lambda g: g.status in FINAL)
    assert final.status != "failed", final.error
    assert {s: final.stages[s]["attempts"] for s in STAGES} == dict.fromkeys(STAGES, 1)
    # No stage began twice in any worker: the refused delivery did not move the generation on.
    lines = [
        json.loads(line)
        for path in data_dir.glob("worker-*.log")
        for line in path.read_text().splitlines()
        if line.startswith("{")  # Celery's banner is plain text
    ]
    begun = Counter(
        line["stage"]
        for line in lines
        if line.get("generation_id") == generation_id and line["message"].endswith(" started")
    )
    assert begun == Counter(STAGES)


def test_redis_restarted_mid_generation_the_generation_goes_on_and_suggestions_never_stop(
    api: Any,
    db: Database,
    settings: Any,
    data_dir: Path,
    redis_url: str,
    start_worker: Any,
) -> None:
    client, reviewer, client_key = api

    def suggestions_answer() -> None:
        for message in ("Hello", "How are you?", "Tell me a joke", "What is AI?", "Bye"):
            answer = client.post("/v1/suggestions", json={"message": message}, headers=client_key)
            assert answer.status_code == 200, answer.json

    start_worker(
        **WORKER_ENV,
        REPLYGUARD_FAULT_PAUSE_STAGE="deduplicate",
    )
    generation_id = client.post("/v1/generations", headers=reviewer).json["generation_id"]
    wait_for_pause(db, generation_id, "deduplicate")
    stop_embedded_redis()
    suggestions_answer()
    # The stage goes on and ends while Redis is away; its worker then waits to queue the next.
    (data_dir / "faults" / "deduplicate.release").touch()
    wait_for(db, generation_id, lambda g: g.stages["deduplicate"]["status"] == "done")
    suggestions_answer()
    assert embedded_redis_url(settings) == redis_url  # started again, at the same address
    final = wait_for(db, generation_id, lambda g: g.status in FINAL)
    assert final.status != "failed", final.error
    assert {s: final.stages[s]["attempts"] for s in STAGES} == dict.fromkeys(STAGES, 1)
    suggestions_answer()


def test_resuming_a_generation_while_its_encode_chunks_run_is_refused_every_time(
    api: Any, db: Database, data_dir: Path, redis_url: str, start_worker: Any
) -> None:
    """`replyguard generation resume` three times while a worker encodes a chunk (faults
    item 7; before: accepted each time, four encode chords ran, and late completions
    re-recorded encode after filter had finished): refused each time, exit 1, saying what to
    do; the generation then runs every stage once."""
    from click.testing import CliRunner

    from webapp.cli import main

    client, reviewer, _ = api
    start_worker(**WORKER_ENV, REPLYGUARD_FAULT_PAUSE_STAGE="encode")
    generation_id = client.post("/v1/generations", headers=reviewer).json["generation_id"]
    wait_for_pause(db, generation_id, "encode")
    runner = CliRunner()
    args = ["--data-dir", str(data_dir), "generation", "resume", str(generation_id)]
    for _ in range(3):
        result = runner.invoke(main, args, env={"REDIS_URL": redis_url})
        assert result.exit_code == 1, result.output
        assert "running stage encode in live workers" in result.output
        assert "nothing was interrupted" in result.output
        assert f"replyguard generation show {generation_id}" in result.output
    failed = runner.invoke(
        main,
        ["--data-dir", str(data_dir), "generation", "fail", str(generation_id), "--reason", "x"],
        env={"REDIS_URL": redis_url},
    )
    assert failed.exit_code == 1 and "cannot be marked failed" in failed.output

    (data_dir / "faults" / "encode.release").touch()
    # The rest of the generation takes its time on a shared machine (train at load 16: over
    # 4 minutes); what matters is that it ends, each stage run once.
    final = wait_for(db, generation_id, lambda g: g.status in FINAL, timeout=900)
    assert final.status != "failed", final.error
    assert {s: final.stages[s]["attempts"] for s in STAGES} == dict.fromkeys(STAGES, 1)
    assert not final.stages["encode"].get("resumed_by"), "nobody resumed it"
    lines = [
        json.loads(line)
        for line in (data_dir / "worker-0.log").read_text().splitlines()
        if line.startswith("{")
    ]
    done = [
        line
        for line in lines
        if line.get("generation_id") == generation_id and line["message"] == "stage encode done"
    ]
    assert len(done) == 1, "encode recorded done once"
