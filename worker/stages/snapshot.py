"""Stage 1, snapshot: freeze the inputs (the production model, the data watermark, the
prompts to label), so that a generation decides on the data as it was when it started."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.generations import GenerationError
from core.generations import previous_generation
from core.generations import stage_run
from core.provenance import Provenance
from core.references import PromptRef
from core.schema import Example
from core.schema import IncomingMessage
from core.text import normalize
from models.registry import production
from worker.stages.base import Counts
from worker.stages.base import GenerationRun
from worker.stages.records import SNAPSHOT
from worker.stages.records import Snapshot

# Salt of the prompt sample's random stream (synthesize's stream is [seed, number]).
PROMPT_SAMPLE = 1


@dataclass(frozen=True)
class SnapshotCounts(Counts):
    parent: str
    watermark: int
    human: int
    human_selected: int
    synthetic: int
    benchmark: int
    # Human examples that arrived since the previous generation's snapshot.
    fresh_human: int
    prompts: int


class SnapshotStage:
    name = SNAPSHOT
    label = "Snapshot of the data and prompts"

    def run(self, run: GenerationRun) -> SnapshotCounts:
        """Record the parent (production now), the watermark (the newest example's id) and
        the prompts (:func:`prompt_pool`) on the generation. Raises GenerationError when
        there is no production model."""
        settings = run.ctx.settings
        with run.ctx.db.session() as session:
            parent = production(session)
            if parent is None:
                raise GenerationError("no production model")
            watermark = int(session.scalar(select(func.max(Example.id))) or 0)
            pools = run.examples(watermark)
            previous = _previous_watermark(session, run.number)
            benchmark_messages = {normalize(r.message) for r in pools.benchmark}
            rng = np.random.default_rng([settings.seed, run.number, PROMPT_SAMPLE])
            prompts = prompt_pool(session, benchmark_messages, settings.synthesize_max_prompts, rng)
            generation = run.generation(session)
            generation.parent_version = parent.version
            stage_run(generation, SNAPSHOT).data = Snapshot(watermark, tuple(prompts)).to_data()
        return SnapshotCounts(
            parent=parent.version,
            watermark=watermark,
            human=len(pools.human),
            human_selected=len(pools.human_selected),
            synthetic=len(pools.synthetic),
            benchmark=len(pools.benchmark),
            fresh_human=sum(1 for r in pools.human if r.id > previous),
            prompts=len(prompts),
        )


def prompt_pool(
    session: Session, benchmark: set[str], limit: int, rng: np.random.Generator
) -> list[PromptRef]:
    """The prompts a generation labels: a uniform random sample of at most ``limit`` of
    the eligible messages, in the pool's order.

    Eligible: every incoming message (traffic) and the message of every feedback where the
    user picked a suggestion, one per distinct normalised text (its oldest row), never a
    benchmark message. A uniform sample, not the newest first: one import or one busy
    second gives thousands of messages the same time and order, and any order among them
    (ids follow the text when an import is sorted) would pick by text. Retention
    (``incoming_retention``) already keeps the pool to recent traffic. ``limit`` 0 labels
    nothing; ``rng`` is seeded per generation, so a rerun picks the same prompts.
    """
    pool: list[PromptRef] = []
    seen: set[str] = set()
    incoming = session.execute(
        select(IncomingMessage.id, IncomingMessage.message).order_by(IncomingMessage.id)
    )
    selected = session.execute(
        select(Example.id, Example.message)
        .where(Example.provenance == Provenance.HUMAN_SELECTED.value)
        .order_by(Example.id)
    )
    sources: tuple[tuple[Any, Any], ...] = (("incoming", incoming), ("feedback", selected))
    for kind, rows in sources:
        for row_id, message in rows:
            key = normalize(message)
            if key in seen or key in benchmark:
                continue
            seen.add(key)
            pool.append(PromptRef(kind, int(row_id)))
    if len(pool) <= limit:
        return pool
    chosen = np.sort(rng.choice(len(pool), size=limit, replace=False))
    return [pool[i] for i in chosen]


def _previous_watermark(session: Session, number: int) -> int:
    """The watermark of the generation before ``number``; 0 when that is the clean baseline
    (generation 0), whose snapshot only sets its training data aside: the first generation
    counts every human example as fresh, so its gate does not warn that none arrived."""
    previous = previous_generation(session, number)
    if previous is None or previous.number == 0:
        return 0
    run = previous.stage_runs.get(SNAPSHOT)
    return int(run.data.get("watermark", 0)) if run is not None else 0
