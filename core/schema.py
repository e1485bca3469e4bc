"""The database schema (SQLAlchemy 2, typed). Migrations live in core/migrations."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any
from typing import ClassVar

from sqlalchemy import JSON
from sqlalchemy import CheckConstraint
from sqlalchemy import DateTime
from sqlalchemy import Float
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import Integer
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import TypeDecorator
from sqlalchemy import UniqueConstraint
from sqlalchemy import event
from sqlalchemy import inspect
from sqlalchemy import text
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import attribute_keyed_dict
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from core.provenance import Provenance
from core.provenance import ProvenanceImmutableError


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: use datetime.now(datetime.UTC)")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


def _values(kind: type[enum.Enum]) -> str:
    return ", ".join(f"'{member.value}'" for member in kind)


class Example(Base):
    __tablename__ = "examples"
    __table_args__ = (
        CheckConstraint(f"provenance IN ({_values(Provenance)})", name="ck_examples_provenance"),
        Index("ix_examples_niche", "niche"),
        Index("ix_examples_provenance", "provenance"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message: Mapped[str] = mapped_column(Text)
    reply: Mapped[str] = mapped_column(Text)
    niche: Mapped[str] = mapped_column(String(100), default="general")
    provenance: Mapped[str] = mapped_column(String(16))
    # Where the row came from: "demo:greetings", "import:file.jsonl", "api:feedback", ...
    source: Mapped[str] = mapped_column(String(200))
    # For synthetic rows: the generation and model version that wrote it.
    generation: Mapped[int | None] = mapped_column(Integer, default=None)
    model_version: Mapped[str | None] = mapped_column(String(64), default=None)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The independent source that wrote the reply: a conversation id of a corpus
    # ("chitchat:<uuid>"), a file's row, or, for feedback, the API key ("key:<id>"), so that
    # all of one client's feedback counts as one source. The response set only serves a reply
    # that many sources wrote (models.response_set); NULL counts as a source of its own.
    conversation: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReservoirRole(enum.StrEnum):
    # Never trained on; every evaluation uses it.
    BENCHMARK = "benchmark"
    # Always trained on.
    ANCHOR = "anchor"


class ReservoirMember(Base):
    __tablename__ = "reservoir"
    __table_args__ = (
        CheckConstraint(f"role IN ({_values(ReservoirRole)})", name="ck_reservoir_role"),
    )

    example_id: Mapped[int] = mapped_column(
        ForeignKey("examples.id", ondelete="RESTRICT"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16))
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IncomingMessage(Base):
    """A message a client asked about: unlabeled traffic for later generations.

    Deliberately holds no client identity.
    """

    __tablename__ = "incoming_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message: Mapped[str] = mapped_column(Text)
    niche: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelStatus(enum.StrEnum):
    BUILDING = "building"
    CANDIDATE = "candidate"
    PRODUCTION = "production"
    BLOCKED = "blocked"
    ARCHIVED = "archived"
    FAILED = "failed"


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(ModelStatus)})", name="ck_model_versions_status"),
        # Exactly one production model, enforced by the database itself.
        Index(
            "ux_model_versions_one_production",
            "status",
            unique=True,
            sqlite_where=text("status = 'production'"),
            postgresql_where=text("status = 'production'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    generation: Mapped[int] = mapped_column(Integer)
    parent: Mapped[str | None] = mapped_column(String(64), default=None)
    artifact_path: Mapped[str] = mapped_column(Text, default="")
    # sha256 of the artifact's manifest, which itself holds every file's checksum.
    checksum: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default=ModelStatus.BUILDING.value)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    promoted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The safeguards' evaluation on the benchmark, computed once per version.
    evaluation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Role(enum.StrEnum):
    CLIENT = "client"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(f"role IN ({_values(Role)})", name="ck_api_keys_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # Only the sha256 of the key is stored; the prefix lets people tell keys apart.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class BlockKind(enum.StrEnum):
    # The reply's normalised text (core.text.normalize) equals the value.
    TEXT = "text"
    # A case-insensitive regular expression found anywhere in the reply.
    PATTERN = "pattern"


class CuratedReply(Base):
    """A reply the product team added to the response set by hand.

    It skips the support rule (written by many) but not the others, and it is served by every
    web process without waiting for a generation.
    """

    __tablename__ = "curated_replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(200))
    # The normalised text: one curated reply per meaning-identical string.
    text_key: Mapped[str] = mapped_column(String(200), unique=True)
    niche: Mapped[str] = mapped_column(String(100), default="general")
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReplyBlock(Base):
    """A reply or pattern that is never suggested, by any model, from the moment it is added."""

    __tablename__ = "reply_blocks"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_values(BlockKind)})", name="ck_reply_blocks_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IntentAction(enum.StrEnum):
    """What a reviewer did to the catalogue of intents (models.intent_edits)."""

    # A new intent: its name, group, tone, stance and replies.
    ADD = "add"
    # One more reply for an intent.
    ADD_REPLY = "add_reply"
    RENAME = "rename"
    DISABLE = "disable"
    ENABLE = "enable"


class IntentEdit(Base):
    """One reviewer edit to the shipped catalogue of intents (models/catalogue.yaml).

    The edits are an overlay, applied in order over the catalogue (models.intent_edits): the file
    stays what ships with the code, and every change is who did what, when and why. Rows are
    only ever added (a disabled intent is re-enabled by another edit), so the count of rows
    tells every web process that something changed. ``intent`` is the intent's name when the
    edit was made (a later rename does not rewrite it).
    """

    __tablename__ = "intent_edits"
    __table_args__ = (
        CheckConstraint(f"action IN ({_values(IntentAction)})", name="ck_intent_edits_action"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(16))
    intent: Mapped[str] = mapped_column(String(100))
    # rename: the new name.
    new_name: Mapped[str | None] = mapped_column(String(100), default=None)
    # add: the new intent's group, tone and stance (None: it answers no question).
    intent_group: Mapped[str | None] = mapped_column(String(100), default=None)
    tone: Mapped[str | None] = mapped_column(String(16), default=None)
    stance: Mapped[str | None] = mapped_column(String(8), default=None)
    # add: the new intent's replies; add_reply: the one reply added.
    replies: Mapped[list[str]] = mapped_column(JSON, default=list)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditEntry(Base):
    """Append-only: the database refuses UPDATE and DELETE on this table."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@event.listens_for(Example, "before_update")
def _refuse_provenance_change(mapper: Any, connection: Any, target: Example) -> None:
    # The database triggers refuse this too; failing here gives a clearer error first.
    history = inspect(target).attrs.provenance.history
    if history.deleted and history.deleted[0] != target.provenance:
        raise ProvenanceImmutableError(
            f"example {target.id}: provenance is immutable "
            f"({history.deleted[0]!r} cannot become {target.provenance!r})"
        )


class GenerationStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    # Final states. passed and warned promoted their candidate; blocked kept production.
    PASSED = "passed"
    WARNED = "warned"
    BLOCKED = "blocked"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        return self in (GenerationStatus.QUEUED, GenerationStatus.RUNNING)


class Generation(Base):
    """One retraining run: snapshot -> synthesize -> ... -> gate -> promote | block."""

    __tablename__ = "generations"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(GenerationStatus)})", name="ck_generations_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # 0 is the clean baseline; each generation after it counts up.
    number: Mapped[int] = mapped_column(Integer, unique=True)
    status: Mapped[str] = mapped_column(String(16), default=GenerationStatus.QUEUED.value)
    # 'active' while queued or running, NULL after: the unique constraint is the lock that
    # allows one generation at a time across every web server and worker.
    lock: Mapped[str | None] = mapped_column(String(8), unique=True, default=None)
    stage: Mapped[str] = mapped_column(String(32), default="")
    # Per stage that has started: status, timings, progress and counts (generation_stages),
    # loaded with the generation, in the order the stages started.
    stage_runs: Mapped[dict[str, GenerationStage]] = relationship(
        collection_class=attribute_keyed_dict("stage"),
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="GenerationStage.id",
    )
    # Evaluations of candidate, production and baseline; and the gate's decision.
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    decision: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    parent_version: Mapped[str | None] = mapped_column(String(64), default=None)
    candidate_version: Mapped[str | None] = mapped_column(String(64), default=None)
    error: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        """Every started stage's record as a plain mapping (:meth:`GenerationStage.record`),
        by stage name in the order they started: what the API, the command line and the
        dashboard show."""
        return {name: run.record() for name, run in self.stage_runs.items()}


class StageStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class GenerationStage(Base):
    """One stage of one generation: its state, timings, progress and counts.

    A row of its own, so that recording progress is a one-row update that never rewrites
    another stage's record. The row appears when the stage first starts; a stage found
    ``running`` with no live process holding the generation's stage lock was interrupted.
    """

    __tablename__ = "generation_stages"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(StageStatus)})", name="ck_generation_stages_status"),
        UniqueConstraint("generation_id", "stage", name="uq_generation_stages_stage"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=StageStatus.PENDING.value)
    # Runs started, the interrupted ones included, and who ran the latest ("host:pid").
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str] = mapped_column(String(200), default="")
    # Who resumed the generation at this stage, if anyone did.
    resumed_by: Mapped[str] = mapped_column(String(100), default="")
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    seconds: Mapped[float | None] = mapped_column(Float, default=None)
    # 0 to 1.
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    # What the stage hands on to the later ones (the snapshot's watermark and prompts).
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def record(self) -> dict[str, Any]:
        """The stage as a mapping: ``status``, ``progress``, ``attempts``, ``worker``, and
        when they are set ``resumed_by``, ``started_at`` and ``finished_at`` (ISO 8601,
        UTC), ``seconds``, ``counts``, ``error`` and ``data``."""
        record: dict[str, Any] = {
            "status": self.status,
            "progress": self.progress,
            "attempts": self.attempts,
            "worker": self.worker,
        }
        if self.resumed_by:
            record["resumed_by"] = self.resumed_by
        if self.started_at is not None:
            record["started_at"] = self.started_at.isoformat()
        if self.finished_at is not None:
            record["finished_at"] = self.finished_at.isoformat()
        if self.seconds is not None:
            record["seconds"] = self.seconds
        if self.counts or self.status == StageStatus.DONE:
            record["counts"] = self.counts
        if self.error:
            record["error"] = self.error
        if self.data:
            record["data"] = self.data
        return record


class CandidateStatus(enum.StrEnum):
    PENDING = "pending"
    KEPT = "kept"
    REMOVED = "removed"


class SyntheticCandidate(Base):
    """A reply the production model wrote during a generation, before it may become an example.

    Staged here, with why it was removed if it was; the kept ones become synthetic examples
    in one transaction when the generation's model is promoted, so a generation's synthetic
    rows are either all kept or all discarded.
    """

    __tablename__ = "synthetic_candidates"
    __table_args__ = (
        CheckConstraint(
            f"status IN ({_values(CandidateStatus)})", name="ck_synthetic_candidates_status"
        ),
        Index("ix_synthetic_candidates_generation", "generation_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"))
    message: Mapped[str] = mapped_column(Text)
    reply: Mapped[str] = mapped_column(Text)
    niche: Mapped[str] = mapped_column(String(100))
    # Where the prompt came from: "incoming:<id>" or "feedback:<example id>".
    prompt_source: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=CandidateStatus.PENDING.value)
    # Which quality rule removed it, or "duplicate".
    removed_by: Mapped[str] = mapped_column(String(64), default="")
    # For duplicates: what it duplicated ("example:<id>" or "candidate:<id>") and how closely.
    duplicate_of: Mapped[str] = mapped_column(String(64), default="")
    similarity: Mapped[float | None] = mapped_column(default=None)


class DeliveryStatus(enum.StrEnum):
    # Queued, or waiting for its next attempt.
    PENDING = "pending"
    DELIVERED = "delivered"
    # Given up: attempts exhausted, refused by the receiver, never queued, or not configured.
    FAILED = "failed"


class WebhookDelivery(Base):
    """One notification to one webhook URL (worker/notify.py), with the exact body signed and
    sent, so that every attempt sends the same bytes."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(
            f"status IN ({_values(DeliveryStatus)})", name="ck_webhook_deliveries_status"
        ),
        Index("ix_webhook_deliveries_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A uuid4, sent in the payload and the X-ReplyGuard-Delivery header.
    delivery_id: Mapped[str] = mapped_column(String(36), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class WebhookAttempt(Base):
    """One HTTP request of a delivery: its response's status code or the error instead."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    # 1 for the first request.
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
