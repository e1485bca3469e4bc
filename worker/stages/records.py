"""What stages hand on to later stages, as typed records.

- :class:`Snapshot`: the data watermark and the prompts, frozen by the snapshot stage and
  stored on its stage row; every later stage reads the examples up to the watermark.
- :class:`TrainingItem`: an example of the training set and its weight, written by the mix
  stage to ``training_set.json`` in the generation's folder and read by the train stage.
- :func:`resolve`: the examples (worker.data.ReplyExample) the training set's references
  point at.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.files import atomic_write
from core.provenance import Provenance
from core.references import ExampleRef
from core.references import PromptRef
from core.schema import Example
from core.schema import Generation
from core.schema import SyntheticCandidate
from worker.data import ReplyExample

SNAPSHOT = "snapshot"
# Rows asked for per query when resolving references (SQLite allows 999 parameters).
BATCH = 500


@dataclass(frozen=True)
class Snapshot:
    """A generation's frozen inputs: the id of the newest example it may read
    (``watermark``), and the prompts it labels, in the order it labels them."""

    watermark: int
    prompts: tuple[PromptRef, ...]

    def to_data(self) -> dict[str, Any]:
        """As stored on the snapshot stage's row (``prompts`` as ``[kind, id]`` pairs)."""
        return {"watermark": self.watermark, "prompts": [[p.kind, p.id] for p in self.prompts]}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Snapshot:
        """The inverse of :meth:`to_data`; raises KeyError when ``watermark`` is missing."""
        prompts = tuple(PromptRef.parse(f"{kind}:{i}") for kind, i in data.get("prompts", []))
        return cls(int(data["watermark"]), prompts)


def snapshot_of(generation: Generation) -> Snapshot | None:
    """The snapshot ``generation`` froze; None before its snapshot stage ran."""
    run = generation.stage_runs.get(SNAPSHOT)
    if run is None or "watermark" not in run.data:
        return None
    return Snapshot.from_data(run.data)


@dataclass(frozen=True)
class TrainingItem:
    """An example of a generation's training set and its weight (mean 1 over the set)."""

    ref: ExampleRef
    weight: float


# The training set's file in the generation's folder.
TRAINING_SET = "training_set.json"


def write_training_set(folder: Path, items: Sequence[TrainingItem]) -> None:
    """Write the training set into the generation's ``folder`` atomically (a rerun of the
    mix stage replaces it whole)."""
    data = [{"ref": str(item.ref), "weight": float(item.weight)} for item in items]
    atomic_write(folder / TRAINING_SET, json.dumps(data).encode())


def read_training_set(folder: Path) -> list[TrainingItem]:
    """The training set the mix stage wrote into the generation's ``folder``; raises
    OSError when it has not run."""
    data = json.loads((folder / TRAINING_SET).read_text())
    return [TrainingItem(ExampleRef.parse(item["ref"]), float(item["weight"])) for item in data]


def resolve(session: Session, refs: Sequence[ExampleRef]) -> list[ReplyExample]:
    """The examples and staged replies ``refs`` point at, in their order; raises KeyError
    for a missing row."""
    found: dict[ExampleRef, ReplyExample] = {}
    example_ids = [r.id for r in refs if r.kind == "example"]
    candidate_ids = [r.id for r in refs if r.kind == "candidate"]
    for start in range(0, len(example_ids), BATCH):
        for e in session.scalars(
            select(Example).where(Example.id.in_(example_ids[start : start + BATCH]))
        ):
            ref = ExampleRef.example(e.id)
            found[ref] = ReplyExample(
                ref, e.message, e.reply, e.niche, Provenance(e.provenance), e.conversation
            )
    for start in range(0, len(candidate_ids), BATCH):
        for c in session.scalars(
            select(SyntheticCandidate).where(
                SyntheticCandidate.id.in_(candidate_ids[start : start + BATCH])
            )
        ):
            ref = ExampleRef.candidate(c.id)
            found[ref] = ReplyExample(ref, c.message, c.reply, c.niche, Provenance.SYNTHETIC)
    return [found[ref] for ref in refs]
