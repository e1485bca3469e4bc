"""A generation, stage by stage:

    snapshot -> synthesize -> encode -> filter -> deduplicate -> mix -> train -> evaluate
             -> gate -> promote

Each stage reads what it needs from the database, records its progress, counts and timing on
the generation row, and is safe to run twice: a stage that finished is skipped, and a stage
that was interrupted starts again from its own beginning. Nothing reaches production except
through the last stage, and only when the gate said pass or warn. The Celery tasks
(``worker.tasks``), the command line and the collapse simulation all run these functions.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.actions import Conflict
from core.actions import Invalid
from core.actions import NotFound
from core.logs import log_context
from core.provenance import Provenance
from core.reservoir import member_ids
from core.schema import CandidateStatus
from core.schema import Example
from core.schema import Generation
from core.schema import GenerationStatus
from core.schema import IncomingMessage
from core.schema import ModelStatus
from core.schema import ModelVersion
from core.schema import ReservoirRole
from core.schema import SyntheticCandidate
from core.text import normalize
from core.text import pair_hash
from models.artifact import load_model
from models.curation import load_curation
from models.registry import artifact_dir
from models.registry import get_version
from models.registry import production
from models.registry import register
from models.training import TrainingExample
from safeguards.dedup import deduplicate
from safeguards.gate import Decision
from safeguards.gate import decide
from safeguards.metrics import Evaluation
from safeguards.mixing import mix_training_set
from safeguards.quality import default_rules
from safeguards.quality import filter_examples
from worker.baseline import baseline_version
from worker.baseline import training_metadata
from worker.context import PipelineContext
from worker.data import Row
from worker.data import example_pools
from worker.encoding import encode_chunk
from worker.encoding import plan_chunks
from worker.encoding import precomputed
from worker.evaluation import VersionEvaluator
from worker.faults import fault_point
from worker.notify import when_generation_ends
from worker.promotion import accept_generation
from worker.promotion import block_generation

log = logging.getLogger(__name__)

STAGES = (
    "snapshot",
    "synthesize",
    "encode",
    "filter",
    "deduplicate",
    "mix",
    "train",
    "evaluate",
    "gate",
    "promote",
)
# Progress is written at most this often, so a busy stage does not hammer the database.
PROGRESS_EVERY_SECONDS = 1.0

Progress = Callable[[float], None]


class GenerationError(Conflict):
    """A generation cannot start or go on; the message says why and what to do."""


class GenerationBusy(GenerationError):
    """Another generation is queued or running."""

    code = "generation_running"


class GenerationNotFound(NotFound, GenerationError):
    """No generation has the id given."""


# ---------------------------------------------------------------------------------------
# Starting, resuming, running


def start_generation(ctx: PipelineContext, actor: str) -> int:
    """Create the next generation (queued) and return its id; one at a time."""
    with ctx.db.session() as session:
        if production(session) is None:
            raise GenerationError(
                "no production model: train the clean baseline first "
                "(`replyguard models train-baseline`)"
            )
        running = _active(session)
        if running is not None:
            raise GenerationBusy(_busy_message(running))
        number = int(session.scalar(select(func.max(Generation.number))) or 0) + 1
    if baseline_version(ctx) is None:
        raise GenerationError(
            "no clean baseline (generation 0): `replyguard models train-baseline`"
        )
    try:
        with ctx.db.session() as session:
            generation = Generation(number=number, requested_by=actor, lock="active")
            session.add(generation)
            session.flush()
            return generation.id
    except IntegrityError:
        # Lost a race with another start: the unique lock column refused the second one.
        with ctx.db.session() as session:
            running = _active(session)
            raise GenerationBusy(
                _busy_message(running) if running else "another generation just started"
            ) from None


def resume_generation(ctx: PipelineContext, generation_id: int, actor: str) -> str | None:
    """Make a failed or interrupted generation runnable again; return the stage to run.

    Raises GenerationNotFound; GenerationError for a generation that finished;
    GenerationBusy when another generation is active, or when a live process is running a
    stage of this one (:func:`stage_guard`): it is not interrupted."""
    with ctx.db.session() as session:
        generation = _get(session, generation_id)
        status = GenerationStatus(generation.status)
        if status in (GenerationStatus.PASSED, GenerationStatus.WARNED, GenerationStatus.BLOCKED):
            raise GenerationError(f"generation {generation.number} finished ({status.value})")
        other = _active(session)
        if other is not None and other.id != generation.id:
            raise GenerationBusy(_busy_message(other))
        _refuse_while_running(ctx, generation, "resumed")
        generation.status = GenerationStatus.RUNNING.value
        generation.lock = "active"
        generation.error = ""
        generation.finished_at = None
        stages = dict(generation.stages)
        stage = next_stage(stages)
        if stage and stage in stages:
            stages[stage] = {**stages[stage], "status": "pending", "resumed_by": actor}
        generation.stages = stages
    return stage


def next_stage(stages: dict[str, Any]) -> str | None:
    for stage in STAGES:
        if stages.get(stage, {}).get("status") != "done":
            return stage
    return None


def run_generation(ctx: PipelineContext, generation_id: int) -> str:
    """Run every remaining stage in this process; return the final status.

    Raises GenerationBusy when another live process is running a stage of it."""
    while True:
        stage = run_next_stage(ctx, generation_id)
        if stage is None:
            break
    with ctx.db.session() as session:
        return _get(session, generation_id).status


def run_next_stage(ctx: PipelineContext, generation_id: int) -> str | None:
    """Run the next unfinished stage; return its name, or None when nothing is left.

    Raises GenerationBusy when another live process is running a stage of the generation."""
    with ctx.db.session() as session:
        generation = _get(session, generation_id)
        if not GenerationStatus(generation.status).active:
            return None
        stage = next_stage(generation.stages)
    if stage is None:
        return None
    if not run_stage(ctx, generation_id, stage):
        raise GenerationBusy(f"stage {stage} of generation id {generation_id} is running elsewhere")
    return stage


def run_stage(ctx: PipelineContext, generation_id: int, stage: str) -> bool:
    """Run one stage, recording it; a stage that is done already is skipped. Every line it
    logs carries the generation's id and the stage (core/logs.py).

    Returns False, having done nothing, when another live process is running a stage of
    this generation (a second delivery of a task, a resume of a generation that was not
    interrupted): the caller must not queue the next stage, the running one will. True
    otherwise (the stage ran, or there was nothing to do). Re-raises what the stage raised,
    after recording the generation failed."""
    with log_context(generation_id=generation_id, stage=stage):
        with stage_guard(ctx, generation_id) as free:
            if not free:
                log.warning(
                    "stage %s not started: another process is running this generation", stage
                )
                return False
            if not begin_stage(ctx, generation_id, stage):
                return True
            started = time.perf_counter()
            reporter = _ProgressReporter(ctx, generation_id, stage)
            try:
                counts = STAGE_FUNCTIONS[stage](ctx, generation_id, reporter)
            except BaseException as exc:
                fail_stage(ctx, generation_id, stage, exc)
                raise
            finish_stage(ctx, generation_id, stage, counts, time.perf_counter() - started)
        return True


@contextmanager
def stage_guard(ctx: PipelineContext, generation_id: int) -> Iterator[bool]:
    """The generation's stage lock, held while one of its stages runs: yields True when this
    process holds it, False when another live process does.

    An exclusive ``flock`` on ``<data folder>/generations/<id>/stage.lock``, which every
    worker shares with the data folder (artifacts and encode chunks live there too). The
    kernel releases it when its holder exits, however it exits (SIGKILL included), so
    "held" means "held by a live process" without heartbeats, and a task delivered again
    after its worker died takes the stage over. Raises OSError when the folder is not
    writable."""
    fd = os.open(generation_dir(ctx, generation_id) / "stage.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _refuse_while_running(ctx: PipelineContext, generation: Generation, action: str) -> None:
    """Raise GenerationBusy when a live process runs a stage of the generation: it was not
    interrupted, and ``action`` ("resumed", "marked failed") would race that process."""
    with stage_guard(ctx, generation.id) as free:
        if free:
            return
    worker = generation.stages.get(generation.stage, {}).get("worker", "?")
    raise GenerationBusy(
        f"generation {generation.number} (id {generation.id}) is running stage "
        f"{generation.stage} in a live worker ({worker}): it cannot be {action} while that "
        "worker runs it (a worker that hangs: stop it, which frees the generation)"
    )


def begin_stage(ctx: PipelineContext, generation_id: int, stage: str) -> bool:
    """Record that a stage starts; False when there is nothing to do (done, or finished).

    The caller holds :func:`stage_guard`. A stage found ``running`` was interrupted (its
    process died and released the guard): it starts again from its beginning, and its
    record counts the attempt."""
    with ctx.db.session() as session:
        generation = _get(session, generation_id)
        if not GenerationStatus(generation.status).active:
            return False
        previous = generation.stages.get(stage, {})
        if previous.get("status") == "done":
            return False
        generation.status = GenerationStatus.RUNNING.value
        generation.stage = stage
        record = {
            "status": "running",
            "started_at": _now(),
            "progress": 0.0,
            "attempts": int(previous.get("attempts", 0)) + 1,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
        }
        if "resumed_by" in previous:
            record["resumed_by"] = previous["resumed_by"]
        generation.stages = {**generation.stages, stage: record}
    log.info("stage %s started", stage)
    return True


def finish_stage(
    ctx: PipelineContext, generation_id: int, stage: str, counts: dict[str, Any], seconds: float
) -> None:
    with ctx.db.session() as session:
        _record_done(_get(session, generation_id), stage, counts, seconds)
    log.info("stage %s done", stage, extra={"duration_ms": round(seconds * 1000), "counts": counts})


def _record_done(
    generation: Generation, stage: str, counts: dict[str, Any], seconds: float
) -> None:
    record = dict(generation.stages.get(stage, {}))
    record.update(
        status="done",
        progress=1.0,
        finished_at=_now(),
        seconds=round(seconds, 3),
        counts=counts,
    )
    generation.stages = {**generation.stages, stage: record}


def mark_failed(ctx: PipelineContext, generation_id: int, reason: str) -> None:
    """Give up on a generation (for example after its worker died): production is untouched
    and its synthetic rows stay out of the training data.

    Raises Invalid without a reason, GenerationNotFound, GenerationError for a generation
    that finished, and GenerationBusy while a live process runs a stage of it (its promote
    stage could still end it otherwise)."""
    if not reason.strip():
        raise Invalid("marking a generation failed needs a reason")
    with ctx.db.session() as session:
        generation = _get(session, generation_id)
        when_generation_ends(session, ctx.settings, generation)
        if not GenerationStatus(generation.status).active and generation.status != "failed":
            raise GenerationError(f"generation {generation.number} finished ({generation.status})")
        _refuse_while_running(ctx, generation, "marked failed")
        generation.status = GenerationStatus.FAILED.value
        generation.lock = None
        generation.error = f"{generation.stage or 'queued'}: {reason}"
        generation.finished_at = dt.datetime.now(dt.UTC)


def fail_stage(ctx: PipelineContext, generation_id: int, stage: str, exc: BaseException) -> None:
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    log.error("generation %s failed in %s: %s", generation_id, stage, reason)
    with ctx.db.session() as session:
        generation = _get(session, generation_id)
        when_generation_ends(session, ctx.settings, generation)
        generation.status = GenerationStatus.FAILED.value
        generation.lock = None
        generation.error = f"{stage}: {reason}"
        generation.finished_at = dt.datetime.now(dt.UTC)
        record = {**generation.stages.get(stage, {}), "status": "failed", "error": reason}
        generation.stages = {**generation.stages, stage: record}


class _ProgressReporter:
    def __init__(self, ctx: PipelineContext, generation_id: int, stage: str) -> None:
        self.ctx, self.generation_id, self.stage = ctx, generation_id, stage
        self._written = 0.0

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self._written < PROGRESS_EVERY_SECONDS and fraction < 1.0:
            return
        self._written = now
        with self.ctx.db.session() as session:
            generation = _get(session, self.generation_id)
            record = {**generation.stages.get(self.stage, {}), "progress": round(fraction, 4)}
            generation.stages = {**generation.stages, self.stage: record}


# ---------------------------------------------------------------------------------------
# The stages. Each returns the counts recorded for it.


def snapshot(ctx: PipelineContext, generation_id: int, progress: Progress) -> dict[str, Any]:
    """Freeze the inputs: the production model, the data watermark and the prompt pool."""
    with ctx.db.session() as session:
        generation = _get(session, generation_id)
        parent = production(session)
        if parent is None:
            raise GenerationError("no production model")
        watermark = int(session.scalar(select(func.max(Example.id))) or 0)
        pools = example_pools(session, watermark)
        previous = _previous_watermark(session, generation.number)
        fresh_human = sum(1 for r in pools.human if r.id > previous)
        benchmark_messages = {normalize(r.message) for r in pools.benchmark}
        rng = np.random.default_rng([ctx.settings.seed, generation.number, _PROMPT_SAMPLE])
        prompts = _prompt_pool(
            session, benchmark_messages, ctx.settings.synthesize_max_prompts, rng
        )
        generation.parent_version = parent.version
        generation.stages = {
            **generation.stages,
            "snapshot": {
                **generation.stages.get("snapshot", {}),
                "data": {"watermark": watermark, "prompts": prompts},
            },
        }
    fault_point(ctx.settings.data_dir, "snapshot")
    return {
        "parent": parent.version,
        "watermark": watermark,
        "human": len(pools.human),
        "human_selected": len(pools.human_selected),
        "synthetic": len(pools.synthetic),
        "benchmark": len(pools.benchmark),
        "fresh_human": fresh_human,
        "prompts": len(prompts),
    }


# Salt of the prompt sample's random stream (synthesize's stream is [seed, number]).
_PROMPT_SAMPLE = 1


def _prompt_pool(
    session: Any, benchmark: set[str], limit: int, rng: np.random.Generator
) -> list[list[Any]]:
    """The prompts a generation labels: a uniform random sample of at most ``limit`` of
    the eligible messages, ``[kind, id]`` each, in the pool's order.

    Eligible: every incoming message (traffic) and the message of every feedback where the
    user picked a suggestion, one per distinct normalised text (its oldest row), never a
    benchmark message. A uniform sample, not the newest first: one import or one busy
    second gives thousands of messages the same time and order, and any order among them
    (ids follow the text when an import is sorted) would pick by text. Retention
    (``incoming_retention``) already keeps the pool to recent traffic. ``limit`` 0 labels
    nothing; ``rng`` is seeded per generation, so a rerun picks the same prompts.
    """
    pool: list[list[Any]] = []
    seen: set[str] = set()
    incoming = session.execute(
        select(IncomingMessage.id, IncomingMessage.message).order_by(IncomingMessage.id)
    )
    selected = session.execute(
        select(Example.id, Example.message)
        .where(Example.provenance == Provenance.HUMAN_SELECTED.value)
        .order_by(Example.id)
    )
    for kind, rows in (("incoming", incoming), ("feedback", selected)):
        for row_id, message in rows:
            key = normalize(message)
            if key in seen or key in benchmark:
                continue
            seen.add(key)
            pool.append([kind, int(row_id)])
    if len(pool) <= limit:
        return pool
    chosen = np.sort(rng.choice(len(pool), size=limit, replace=False))
    return [pool[i] for i in chosen]


def _previous_watermark(session: Any, number: int) -> int:
    previous = session.scalars(
        select(Generation).where(Generation.number < number).order_by(Generation.number.desc())
    ).first()
    if previous is None:
        return 0
    return int(previous.stages.get("snapshot", {}).get("data", {}).get("watermark", 0))


def synthesize(ctx: PipelineContext, generation_id: int, progress: Progress) -> dict[str, Any]:
    """The production model writes a reply for every prompt it is confident about (its
    triggering threshold), never a reply blocked since it was trained; staged, not yet
    examples. Labelling only what the model would answer is the usual confidence filter of
    self-training: a reply it would not show a user is no label to learn from."""
    with ctx.db.session() as session:
        generation = _get(session, generation_id)
        prompts = generation.stages["snapshot"]["data"]["prompts"]
        parent = get_version(session, generation.parent_version or "")
        path, checksum, version = (
            artifact_dir(ctx.settings, parent),
            parent.checksum,
            parent.version,
        )
        number = generation.number
        texts = _prompt_texts(session, prompts)
        curation = load_curation(session)
    model, _ = load_model(path, ctx.encoder, checksum)
    temperature = ctx.settings.synthesize_temperature
    rng = np.random.default_rng([ctx.settings.seed, number])
    rows: list[SyntheticCandidate] = []
    abstained = blocked = 0
    batch = 256
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        messages = [texts[(kind, i)][0] for kind, i in chunk]
        suggestions = model.suggest_many(messages, k=1 if temperature <= 0 else 5)
        for (kind, i), message, options in zip(chunk, messages, suggestions, strict=True):
            if not model.triggering.answers(options):
                abstained += 1
                continue
            choice = options[0] if temperature <= 0 else options[_sample(options, temperature, rng)]
            if curation.blocked(choice.text):
                blocked += 1
                continue
            niche = texts[(kind, i)][1] or model.bank.niches[choice.reply_id][0]
            rows.append(
                SyntheticCandidate(
                    generation_id=generation_id,
                    message=message,
                    reply=choice.text,
                    niche=niche,
                    prompt_source=f"{kind}:{i}",
                    model_version=version,
                    content_hash=pair_hash(message, choice.text),
                )
            )
        progress(min(1.0, (start + batch) / max(len(prompts), 1)))
    with ctx.db.session() as session:
        # Idempotent: a rerun replaces what an interrupted run staged.
        session.execute(
            delete(SyntheticCandidate).where(SyntheticCandidate.generation_id == generation_id)
        )
        session.add_all(rows)
    fault_point(ctx.settings.data_dir, "synthesize")
    return {
        "prompts": len(prompts),
        "written": len(rows),
        "abstained": abstained,
        "blocked": blocked,
    }


def _sample(options: list[Any], temperature: float, rng: np.random.Generator) -> int:
    scores = np.array([o.score for o in options], dtype=np.float64) / temperature
    weights = np.exp(scores - scores.max())
    return int(rng.choice(len(options), p=weights / weights.sum()))


def _prompt_texts(
    session: Any, prompts: list[list[Any]]
) -> dict[tuple[str, int], tuple[str, str | None]]:
    incoming_ids = [i for kind, i in prompts if kind == "incoming"]
    feedback_ids = [i for kind, i in prompts if kind == "feedback"]
    texts: dict[tuple[str, int], tuple[str, str | None]] = {}
    for start in range(0, len(incoming_ids), 500):
        chunk = incoming_ids[start : start + 500]
        for i, message, niche in session.execute(
            select(IncomingMessage.id, IncomingMessage.message, IncomingMessage.niche).where(
                IncomingMessage.id.in_(chunk)
            )
        ):
            texts[("incoming", i)] = (message, niche)
    for start in range(0, len(feedback_ids), 500):
        chunk = feedback_ids[start : start + 500]
        for i, message, niche in session.execute(
            select(Example.id, Example.message, Example.niche).where(Example.id.in_(chunk))
        ):
            texts[("feedback", i)] = (message, niche)
    missing = [p for p in prompts if (p[0], p[1]) not in texts]
    if missing:
        # Retention may have trimmed incoming messages since the snapshot: drop them.
        prompts[:] = [p for p in prompts if (p[0], p[1]) in texts]
    return texts


@dataclass(frozen=True)
class _Staged:
    id: int
    message: str
    reply: str


def _staged(session: Any, generation_id: int, passed_filter: bool = False) -> list[_Staged]:
    """The generation's synthetic replies in the order they were written; with
    ``passed_filter``, only those no quality rule removed (deduplication's input)."""
    query = select(
        SyntheticCandidate.id, SyntheticCandidate.message, SyntheticCandidate.reply
    ).where(SyntheticCandidate.generation_id == generation_id)
    if passed_filter:
        query = query.where(
            (SyntheticCandidate.status != CandidateStatus.REMOVED.value)
            | (SyntheticCandidate.removed_by == "duplicate")
        )
    return [_Staged(*row) for row in session.execute(query.order_by(SyntheticCandidate.id))]


def _reset(session: Any, staged: list[_Staged]) -> None:
    """Undo what an interrupted run of the stage marked on its input, in the transaction that
    writes the stage's own marks: a stage's marks are all its own run's, or none."""
    for start in range(0, len(staged), 500):
        session.execute(
            update(SyntheticCandidate)
            .where(SyntheticCandidate.id.in_([s.id for s in staged[start : start + 500]]))
            .values(
                status=CandidateStatus.PENDING.value,
                removed_by="",
                duplicate_of="",
                similarity=None,
            )
        )


def encode(ctx: PipelineContext, generation_id: int, progress: Progress) -> dict[str, Any]:
    """Embed every text the next stages compare, chunk by chunk (workers share the chunks
    through a Celery chord; run inline they go one after another)."""
    chunks = plan_chunks(ctx, generation_id)
    encoded = 0
    for index in range(chunks):
        encoded += encode_chunk(ctx, generation_id, index)
        progress((index + 1) / chunks)
    return {"chunks": chunks, "encoded": encoded}


def quality_filter(ctx: PipelineContext, generation_id: int, progress: Progress) -> dict[str, Any]:
    """Remove synthetic replies that break a quality rule (each rule counted apart).

    Its input is every reply the generation staged, whatever an interrupted run of this
    stage marked: a rerun judges and counts them all again."""
    with ctx.db.session() as session:
        staged = _staged(session, generation_id)
    rules = default_rules(ctx.settings.quality, precomputed(ctx, generation_id))
    result = filter_examples(staged, rules)
    removed = {rejected.example.id: rejected.rule for rejected in result.removed}
    with ctx.db.session() as session:
        _reset(session, staged)
        for row_id, rule in removed.items():
            row = session.get_one(SyntheticCandidate, row_id)
            row.status = CandidateStatus.REMOVED.value
            row.removed_by = rule
    fault_point(ctx.settings.data_dir, "filter")
    return {"checked": len(staged), "kept": result.kept_count, "removed": result.counts}


def dedup(ctx: PipelineContext, generation_id: int, progress: Progress) -> dict[str, Any]:
    """Remove near-duplicates among the synthetic replies and of the examples stored up to
    the snapshot's watermark (what the generation trains with).

    Its input is every reply the quality rules kept, whatever an interrupted run of this
    stage marked: a rerun decides and counts them all again."""
    with ctx.db.session() as session:
        watermark = _get(session, generation_id).stages["snapshot"]["data"]["watermark"]
        staged = _staged(session, generation_id, passed_filter=True)
        pools = example_pools(session, watermark)
    result = deduplicate(
        staged,
        pools.stored,
        precomputed(ctx, generation_id),
        ctx.settings.dedup,
    )
    with ctx.db.session() as session:
        _reset(session, staged)
        for duplicate in result.removed:
            row = session.get_one(SyntheticCandidate, staged[duplicate.index].id)
            row.status = CandidateStatus.REMOVED.value
            row.removed_by = "duplicate"
            if duplicate.against == "stored":
                row.duplicate_of = f"example:{duplicate.duplicate_of}"
            else:
                row.duplicate_of = f"candidate:{staged[duplicate.duplicate_of].id}"
            row.similarity = float(duplicate.similarity)
        for kept in result.kept:
            session.get_one(SyntheticCandidate, kept.id).status = CandidateStatus.KEPT.value
    fault_point(ctx.settings.data_dir, "deduplicate")
    return {"checked": len(staged), "kept": len(result.kept), "removed": result.counts}


@dataclass(frozen=True)
class _TrainingRow:
    """A training example: a stored example, or a kept synthetic candidate of this generation."""

    ref: str
    message: str
    reply: str
    niche: str
    provenance: Provenance
    conversation: str | None = None


def mix(ctx: PipelineContext, generation_id: int, progress: Progress) -> dict[str, Any]:
    """Accumulate: every human example plus capped model-influenced ones, tail-weighted."""
    with ctx.db.session() as session:
        generation = _get(session, generation_id)
        watermark = generation.stages["snapshot"]["data"]["watermark"]
        pools = example_pools(session, watermark)
        anchor = member_ids(session, ReservoirRole.ANCHOR)
        kept = session.execute(
            select(
                SyntheticCandidate.id,
                SyntheticCandidate.message,
                SyntheticCandidate.reply,
                SyntheticCandidate.niche,
            )
            .where(
                SyntheticCandidate.generation_id == generation_id,
                SyntheticCandidate.status == CandidateStatus.KEPT.value,
            )
            .order_by(SyntheticCandidate.id)
        ).all()

    def stored(rows: list[Row]) -> list[_TrainingRow]:
        return [
            _TrainingRow(
                f"example:{r.id}", r.message, r.reply, r.niche, r.provenance, r.conversation
            )
            for r in rows
        ]

    synthetic = stored(pools.synthetic) + [
        _TrainingRow(f"candidate:{i}", m, r, n, Provenance.SYNTHETIC) for i, m, r, n in kept
    ]
    result = mix_training_set(
        stored(pools.human),
        stored(pools.human_selected),
        synthetic,
        synthetic_cap=ctx.settings.synthetic_cap,
        seed=ctx.settings.seed,
    )
    training_set = [
        {"ref": row.ref, "weight": float(weight)}
        for row, weight in zip(result.examples, result.weights, strict=True)
    ]
    trained = {item["ref"] for item in training_set}
    missing = [i for i in anchor if i <= watermark and f"example:{i}" not in trained]
    if missing:
        # The reservoir's promise; a mixing change that breaks it must not train silently.
        raise GenerationError(f"{len(missing)} anchor example(s) left out of the training set")
    write_json(generation_dir(ctx, generation_id) / "training_set.json", training_set)
    fault_point(ctx.settings.data_dir, "mix")
    return {**result.counts.as_dict(), "anchor": len(anchor)}


def train(ctx: PipelineContext, generation_id: int, progress: Progress) -> dict[str, Any]:
    """Train the candidate from production's weights on the mixed set; write its artifact."""
    training_set = json.loads(
        (generation_dir(ctx, generation_id) / "training_set.json").read_text()
    )
    with ctx.db.session() as session:
        generation = _get(session, generation_id)
        parent = get_version(session, generation.parent_version or "")
        parent_path, parent_checksum = artifact_dir(ctx.settings, parent), parent.checksum
        number, parent_version = generation.number, parent.version
        rows = _resolve(session, [item["ref"] for item in training_set])
    parent_model, _ = load_model(parent_path, ctx.encoder, parent_checksum)
    examples = [
        TrainingExample(
            row.message,
            row.reply,
            row.niche,
            item["weight"],
            row.provenance is Provenance.HUMAN,
            row.conversation,
        )
        for row, item in zip(rows, training_set, strict=True)
    ]
    model, report = ctx.train(
        examples,
        start=parent_model.adapter,
        weights=parent_model.weights,
        inherited=parent_model.bank.texts,
    )
    metadata = training_metadata(
        [
            Row(0, r.message, r.reply, r.niche, r.provenance, pair_hash(r.message, r.reply))
            for r in rows
        ],
        report,
        generation_id=generation_id,
    )

    def record(session: Session, version: ModelVersion) -> None:
        generation = _get(session, generation_id)
        if generation.candidate_version is not None:
            # The candidate of a run of this stage that was killed before it recorded itself
            # done: superseded, so that nothing can promote it (the registry refuses failed).
            get_version(session, generation.candidate_version).status = ModelStatus.FAILED.value
        generation.candidate_version = version.version

    version = register(ctx.db, ctx.settings, model, number, parent_version, metadata, record)
    fault_point(ctx.settings.data_dir, "train")
    return {
        "examples": len(examples),
        "bank_size": report.bank_size,
        "candidate": version.version,
        "response_set_removed": report.response_set.removed,
        "triggering_threshold": report.triggering.threshold,
    }


def _resolve(session: Any, refs: list[str]) -> list[_TrainingRow]:
    example_ids = [int(r.split(":")[1]) for r in refs if r.startswith("example:")]
    candidate_ids = [int(r.split(":")[1]) for r in refs if r.startswith("candidate:")]
    found: dict[str, _TrainingRow] = {}
    for start in range(0, len(example_ids), 500):
        for e in session.scalars(
            select(Example).where(Example.id.in_(example_ids[start : start + 500]))
        ):
            found[f"example:{e.id}"] = _TrainingRow(
                "", e.message, e.reply, e.niche, Provenance(e.provenance), e.conversation
            )
    for start in range(0, len(candidate_ids), 500):
        for c in session.scalars(
            select(SyntheticCandidate).where(
                SyntheticCandidate.id.in_(candidate_ids[start : start + 500])
            )
        ):
            found[f"candidate:{c.id}"] = _TrainingRow(
                "", c.message, c.reply, c.niche, Provenance.SYNTHETIC
            )
    return [found[ref] for ref in refs]


def evaluate(ctx: PipelineContext, generation_id: int, progress: Progress) -> dict[str, Any]:
    """Evaluate candidate, production (the parent) and the clean baseline on the benchmark,
    with the rare niches as the examples up to the snapshot's watermark make them."""
    with ctx.db.session() as session:
        generation = _get(session, generation_id)
        candidate, parent = generation.candidate_version, generation.parent_version
        pools = example_pools(session, generation.stages["snapshot"]["data"]["watermark"])
    baseline = baseline_version(ctx)
    if candidate is None or parent is None or baseline is None:
        raise GenerationError("evaluate needs the candidate, the parent and the baseline")
    evaluate_version = VersionEvaluator(ctx, pools)
    evaluations = {
        "candidate": evaluate_version(candidate),
        "production": evaluate_version(parent),
        "baseline": evaluate_version(baseline),
    }
    with ctx.db.session() as session:
        _get(session, generation_id).metrics = {
            role: {"version": version, **ev.to_dict(include_suggestions=False)}
            for (role, ev), version in zip(
                evaluations.items(), (candidate, parent, baseline), strict=True
            )
        }
    fault_point(ctx.settings.data_dir, "evaluate")
    return {role: ev.value(ev.primary) for role, ev in evaluations.items()}


def gate(ctx: PipelineContext, generation_id: int, progress: Progress) -> dict[str, Any]:
    """The safeguards decide: pass, warn or block, with figures and reasons."""
    with ctx.db.session() as session:
        generation = _get(session, generation_id)
        metrics = generation.metrics
        fresh = int(generation.stages["snapshot"]["counts"]["fresh_human"])
        history = [
            Evaluation.from_dict(g.metrics["candidate"])
            for g in session.scalars(
                select(Generation)
                .where(
                    Generation.number < generation.number,
                    Generation.status.in_(
                        [GenerationStatus.PASSED.value, GenerationStatus.WARNED.value]
                    ),
                )
                .order_by(Generation.number)
            )
            if g.metrics.get("candidate")
        ]
    decision = decide(
        Evaluation.from_dict(metrics["candidate"]),
        Evaluation.from_dict(metrics["production"]),
        Evaluation.from_dict(metrics["baseline"]),
        history,
        ctx.settings.tolerances,
        fresh,
    )
    with ctx.db.session() as session:
        _get(session, generation_id).decision = decision.to_dict()
    fault_point(ctx.settings.data_dir, "gate")
    return {"verdict": decision.verdict, "reasons": len(decision.reasons)}


def promote_or_block(
    ctx: PipelineContext, generation_id: int, progress: Progress
) -> dict[str, Any]:
    """Pass or warn: promote the candidate and keep its synthetic rows, in one transaction.
    Block: production stays; the candidate and its synthetic rows wait for review. The same
    transaction ends the generation and records this stage done, so no kill can leave a
    finished generation with its last stage still running."""
    with ctx.db.session() as session:
        generation = _get(session, generation_id)
        when_generation_ends(session, ctx.settings, generation)
        decision = Decision.from_dict(generation.decision)
        current = production(session)
        if current is None or current.version != generation.parent_version:
            # Production moved (a rollback, an override) while this generation ran: its
            # comparison no longer holds.
            decision = _blocked_because(
                decision,
                f"production changed to {current.version if current else 'nothing'} "
                f"while this generation ran (it was compared with {generation.parent_version})",
            )
            generation.decision = decision.to_dict()
        counts: dict[str, Any]
        if decision.blocked:
            block_generation(session, generation)
            counts = {"verdict": "block", "promoted": None}
        else:
            added = accept_generation(
                session, ctx.settings, generation, "gate", "; ".join(decision.reasons)
            )
            counts = {
                "verdict": decision.verdict,
                "promoted": generation.candidate_version,
                "synthetic_added": added,
            }
        started = dt.datetime.fromisoformat(generation.stages["promote"]["started_at"])
        _record_done(
            generation, "promote", counts, (dt.datetime.now(dt.UTC) - started).total_seconds()
        )
        session.flush()
        fault_point(ctx.settings.data_dir, "promote")
    return counts


def _blocked_because(decision: Decision, reason: str) -> Decision:
    from dataclasses import replace

    return replace(decision, verdict="block", reasons=(reason, *decision.reasons))


STAGE_FUNCTIONS: dict[str, Callable[[PipelineContext, int, Progress], dict[str, Any]]] = {
    "snapshot": snapshot,
    "synthesize": synthesize,
    "encode": encode,
    "filter": quality_filter,
    "deduplicate": dedup,
    "mix": mix,
    "train": train,
    "evaluate": evaluate,
    "gate": gate,
    "promote": promote_or_block,
}


# ---------------------------------------------------------------------------------------
# Helpers


def _get(session: Any, generation_id: int) -> Generation:
    generation = session.get(Generation, generation_id)
    if generation is None:
        raise GenerationNotFound(f"no generation with id {generation_id}")
    return generation  # type: ignore[no-any-return]


def _active(session: Any) -> Generation | None:
    return session.scalars(select(Generation).where(Generation.lock == "active")).one_or_none()  # type: ignore[no-any-return]


def _busy_message(generation: Generation) -> str:
    where = f", stage {generation.stage}" if generation.stage else ""
    return (
        f"generation {generation.number} (id {generation.id}) is already {generation.status}"
        f"{where}: one generation runs at a time; wait for it, or `replyguard generation "
        f"show {generation.id}`"
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def generation_dir(ctx: PipelineContext, generation_id: int) -> Path:
    path = ctx.settings.data_dir / "generations" / str(generation_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: Path, data: Any) -> None:
    """Atomically: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
