"""Reading a generation's inputs from the database."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.provenance import Provenance
from core.reservoir import benchmark_ids
from core.schema import Example
from safeguards.evaluator import BenchmarkExample


@dataclass(frozen=True)
class Row:
    """An example as the pipeline sees it (detached from the session)."""

    id: int
    message: str
    reply: str
    niche: str
    provenance: Provenance
    content_hash: str
    # The independent source that wrote the reply (core.schema.Example.conversation).
    conversation: str | None = None


def _rows(session: Session, up_to_id: int | None = None) -> list[Row]:
    query = select(
        Example.id,
        Example.message,
        Example.reply,
        Example.niche,
        Example.provenance,
        Example.content_hash,
        Example.conversation,
    ).order_by(Example.id)
    if up_to_id is not None:
        query = query.where(Example.id <= up_to_id)
    return [Row(i, m, r, n, Provenance(p), h, c) for i, m, r, n, p, h, c in session.execute(query)]


@dataclass
class ExamplePools:
    """Every stored example up to a watermark, split the way mixing needs it."""

    benchmark: list[Row]
    human: list[Row]
    human_selected: list[Row]
    synthetic: list[Row]

    @property
    def stored(self) -> list[Row]:
        return self.benchmark + self.human + self.human_selected + self.synthetic

    def human_counts(self) -> dict[str, int]:
        """Human examples per niche (benchmark included): what makes a niche rare."""
        return dict(Counter(r.niche for r in self.benchmark + self.human))

    def benchmark_examples(self) -> list[BenchmarkExample]:
        return [BenchmarkExample(r.message, r.reply, r.niche) for r in self.benchmark]


def example_pools(session: Session, up_to_id: int | None = None) -> ExamplePools:
    held_out = benchmark_ids(session)
    pools = ExamplePools([], [], [], [])
    for row in _rows(session, up_to_id):
        if row.id in held_out:
            pools.benchmark.append(row)
        elif row.provenance is Provenance.HUMAN:
            pools.human.append(row)
        elif row.provenance is Provenance.HUMAN_SELECTED:
            pools.human_selected.append(row)
        else:
            pools.synthetic.append(row)
    return pools
