"""Reading a generation's inputs from the database: the examples, as :class:`ReplyExample`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.provenance import Provenance
from core.references import ExampleRef
from core.reservoir import benchmark_ids
from core.schema import Example
from models.training import TrainingExample
from safeguards.evaluator import BenchmarkExample


@dataclass(frozen=True)
class ReplyExample:
    """A message and the reply it got, as the pipeline reads it (detached from the session):
    a stored example (``example:<id>``) or a synthetic reply a generation staged
    (``candidate:<id>``).

    ``conversation``: the independent source that wrote the reply
    (core.schema.Example.conversation); None for a synthetic reply."""

    ref: ExampleRef
    message: str
    reply: str
    niche: str
    provenance: Provenance
    conversation: str | None = None

    @property
    def id(self) -> int:
        """The row's id in its table (examples, or synthetic_candidates)."""
        return self.ref.id

    def for_training(self, weight: float = 1.0) -> TrainingExample:
        """The example as the model trains on it, with its ``weight`` in the loss."""
        return TrainingExample(
            self.message, self.reply, self.niche, weight, self.provenance, self.conversation
        )

    def for_benchmark(self) -> BenchmarkExample:
        """The example as the evaluator measures against it (a held-out human example)."""
        return BenchmarkExample(self.message, self.reply, self.niche)


def _stored(session: Session, up_to_id: int | None = None) -> list[ReplyExample]:
    query = select(
        Example.id,
        Example.message,
        Example.reply,
        Example.niche,
        Example.provenance,
        Example.conversation,
    ).order_by(Example.id)
    if up_to_id is not None:
        query = query.where(Example.id <= up_to_id)
    return [
        ReplyExample(ExampleRef.example(i), m, r, n, Provenance(p), c)
        for i, m, r, n, p, c in session.execute(query)
    ]


@dataclass
class ExamplePools:
    """Every stored example up to a watermark, split the way mixing needs it."""

    benchmark: list[ReplyExample]
    human: list[ReplyExample]
    human_selected: list[ReplyExample]
    synthetic: list[ReplyExample]

    @property
    def stored(self) -> list[ReplyExample]:
        return self.benchmark + self.human + self.human_selected + self.synthetic

    def human_counts(self) -> dict[str, int]:
        """Human examples per niche (benchmark included): what makes a niche rare."""
        return dict(Counter(r.niche for r in self.benchmark + self.human))

    def benchmark_examples(self) -> list[BenchmarkExample]:
        return [r.for_benchmark() for r in self.benchmark]


def example_pools(session: Session, up_to_id: int | None = None) -> ExamplePools:
    """The stored examples with ids up to ``up_to_id`` (every one for None), in id order,
    split into the benchmark (core.reservoir) and the others by provenance."""
    held_out = benchmark_ids(session)
    pools = ExamplePools([], [], [], [])
    for row in _stored(session, up_to_id):
        if row.id in held_out:
            pools.benchmark.append(row)
        elif row.provenance is Provenance.HUMAN:
            pools.human.append(row)
        elif row.provenance is Provenance.HUMAN_SELECTED:
            pools.human_selected.append(row)
        else:
            pools.synthetic.append(row)
    return pools
