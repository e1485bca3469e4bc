"""Stage 2, synthesize: the production model writes a reply for each prompt of the snapshot,
staged in synthetic_candidates (not yet examples)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.references import PromptRef
from core.schema import Example
from core.schema import IncomingMessage
from core.schema import SyntheticCandidate
from core.text import pair_hash
from models.curation import load_curation
from worker.stages.base import Counts
from worker.stages.base import GenerationRun
from worker.stages.records import BATCH

# Prompts suggested for in one call of the model.
PROMPTS_PER_CALL = 256


@dataclass(frozen=True)
class SynthesizeCounts(Counts):
    prompts: int
    written: int
    # Prompts the model would not answer (below its triggering threshold).
    abstained: int
    # Replies the team blocked since the model was trained.
    blocked: int


class SynthesizeStage:
    name = "synthesize"
    label = "Production writes synthetic replies"

    def run(self, run: GenerationRun) -> SynthesizeCounts:
        """The production model writes a reply for every prompt it is confident about (its
        triggering threshold), never a reply blocked since it was trained; staged, not yet
        examples. Labelling only what the model would answer is the usual confidence filter
        of self-training: a reply it would not show a user is no label to learn from.

        Idempotent: a rerun replaces what an interrupted run staged, with the same seeded
        sampling."""
        ctx, generation_id, snapshot = run.ctx, run.generation_id, run.snapshot
        with ctx.db.session() as session:
            texts = _prompt_texts(session, snapshot.prompts)
            curation = load_curation(session)
        # Retention may have trimmed incoming messages since the snapshot: they are dropped.
        prompts = [p for p in snapshot.prompts if p in texts]
        model = run.parent_model()
        temperature = ctx.settings.synthesize_temperature
        rng = np.random.default_rng([ctx.settings.seed, run.number])
        rows: list[SyntheticCandidate] = []
        abstained = blocked = 0
        for start in range(0, len(prompts), PROMPTS_PER_CALL):
            chunk = prompts[start : start + PROMPTS_PER_CALL]
            messages = [texts[prompt][0] for prompt in chunk]
            suggestions = model.suggest_many(messages, k=1 if temperature <= 0 else 5)
            for prompt, message, listed in zip(chunk, messages, suggestions, strict=True):
                # Only what a client would be shown: every option reaches the threshold.
                options = model.triggering.shown(listed)
                if not options:
                    abstained += 1
                    continue
                choice = (
                    options[0] if temperature <= 0 else options[_sample(options, temperature, rng)]
                )
                if curation.blocked(choice.text):
                    blocked += 1
                    continue
                niche = texts[prompt][1] or model.bank.niches[choice.reply_id][0]
                rows.append(
                    SyntheticCandidate(
                        generation_id=generation_id,
                        message=message,
                        reply=choice.text,
                        niche=niche,
                        prompt_source=str(prompt),
                        model_version=run.parent_version,
                        content_hash=pair_hash(message, choice.text),
                    )
                )
            run.progress(min(1.0, (start + PROMPTS_PER_CALL) / max(len(prompts), 1)))
        with ctx.db.session() as session:
            session.execute(
                delete(SyntheticCandidate).where(SyntheticCandidate.generation_id == generation_id)
            )
            session.add_all(rows)
        return SynthesizeCounts(
            prompts=len(prompts), written=len(rows), abstained=abstained, blocked=blocked
        )


def _sample(options: list[Any], temperature: float, rng: np.random.Generator) -> int:
    scores = np.array([o.score for o in options], dtype=np.float64) / temperature
    weights = np.exp(scores - scores.max())
    return int(rng.choice(len(options), p=weights / weights.sum()))


def _prompt_texts(
    session: Session, prompts: Sequence[PromptRef]
) -> dict[PromptRef, tuple[str, str | None]]:
    """(message, niche or None) of each prompt still stored."""
    sources: dict[str, Any] = {"incoming": IncomingMessage, "feedback": Example}
    texts: dict[PromptRef, tuple[str, str | None]] = {}
    for kind, table in sources.items():
        ids = [p.id for p in prompts if p.kind == kind]
        for start in range(0, len(ids), BATCH):
            for i, message, niche in session.execute(
                select(table.id, table.message, table.niche).where(
                    table.id.in_(ids[start : start + BATCH])
                )
            ):
                texts[PromptRef(kind, i)] = (message, niche)  # type: ignore[arg-type]
    return texts
