"""Stage state in its own table: one row per generation and stage.

The per-stage records move out of the ``generations.stages`` JSON column into
``generation_stages``, so that recording a stage's progress is a one-row update. Every
generation's recorded stages are copied across (their history stays readable), and the
downgrade writes them back.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from alembic import op

from core.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATUSES = ("pending", "running", "done", "failed")

# The tables as this revision sees them (not the models, which move on).
generations = sa.table("generations", sa.column("id", sa.Integer()), sa.column("stages", sa.JSON()))
stages = sa.table(
    "generation_stages",
    sa.column("id", sa.Integer()),
    sa.column("generation_id", sa.Integer()),
    sa.column("stage", sa.String()),
    sa.column("status", sa.String()),
    sa.column("attempts", sa.Integer()),
    sa.column("worker", sa.String()),
    sa.column("resumed_by", sa.String()),
    sa.column("started_at", UTCDateTime()),
    sa.column("finished_at", UTCDateTime()),
    sa.column("seconds", sa.Float()),
    sa.column("progress", sa.Float()),
    sa.column("counts", sa.JSON()),
    sa.column("error", sa.Text()),
    sa.column("data", sa.JSON()),
)


def upgrade() -> None:
    op.create_table(
        "generation_stages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("resumed_by", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'done', 'failed')",
            name="ck_generation_stages_status",
        ),
        sa.ForeignKeyConstraint(["generation_id"], ["generations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("generation_id", "stage", name="uq_generation_stages_stage"),
    )
    connection = op.get_bind()
    rows = [
        _row(generation_id, name, record)
        for generation_id, recorded in connection.execute(
            sa.select(generations.c.id, generations.c.stages).order_by(generations.c.id)
        )
        for name, record in (recorded or {}).items()
    ]
    # The column goes before the rows come in: on SQLite the batch rebuilds the generations
    # table, and dropping the old one would cascade to every stage row already there.
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_column("stages")
    if rows:
        connection.execute(stages.insert(), rows)


def downgrade() -> None:
    connection = op.get_bind()
    recorded: dict[int, dict[str, Any]] = {}
    for row in connection.execute(sa.select(stages).order_by(stages.c.id)).mappings():
        recorded.setdefault(row["generation_id"], {})[row["stage"]] = _record(row)
    op.drop_table("generation_stages")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stages", sa.JSON(), nullable=False, server_default="{}"))
    for generation_id, records in recorded.items():
        connection.execute(
            generations.update().where(generations.c.id == generation_id).values(stages=records)
        )


def _row(generation_id: int, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """A stage's JSON record (as revisions 0002 to 0005 wrote it) as a row."""
    status = str(record.get("status", "pending"))
    return {
        "generation_id": generation_id,
        "stage": name,
        "status": status if status in STATUSES else "pending",
        "attempts": int(record.get("attempts", 0)),
        "worker": str(record.get("worker", "")),
        "resumed_by": str(record.get("resumed_by", "")),
        "started_at": _time(record.get("started_at")),
        "finished_at": _time(record.get("finished_at")),
        "seconds": record.get("seconds"),
        "progress": float(record.get("progress", 0.0) or 0.0),
        "counts": record.get("counts", {}),
        "error": str(record.get("error", "")),
        "data": record.get("data", {}),
    }


def _record(row: Any) -> dict[str, Any]:
    """A row as the JSON record of revisions 0002 to 0005."""
    record: dict[str, Any] = {
        "status": row["status"],
        "progress": row["progress"],
        "attempts": row["attempts"],
        "worker": row["worker"],
    }
    optional = {
        "resumed_by": row["resumed_by"],
        "started_at": row["started_at"].isoformat() if row["started_at"] else None,
        "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
        "seconds": row["seconds"],
        "error": row["error"],
        "data": row["data"],
    }
    record.update((k, v) for k, v in optional.items() if v is not None and v != "" and v != {})
    if row["counts"] or row["status"] == "done":
        record["counts"] = row["counts"]
    return record


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
