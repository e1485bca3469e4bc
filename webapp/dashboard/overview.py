"""What the overview page shows: production, the last decision, production's (and the
newest candidate's) figures and suggestions for a few everyday messages, the trend, the
generations."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.generations import generation_of
from core.generations import holds_lock
from core.generations import oldest_first
from core.schema import Generation
from core.schema import ModelVersion
from models.artifact import ArtifactError
from models.artifact import load_model
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import production
from models.suggester import SuggestionModel
from safeguards.everyday import INAPPROPRIATE
from safeguards.everyday import SENSITIVE_INAPPROPRIATE
from safeguards.everyday import SENSITIVE_TAPPABLE
from safeguards.everyday import SHOWN
from safeguards.everyday import TAPPABLE
from safeguards.everyday import EverydayBenchmark
from safeguards.everyday import EverydayMessage
from safeguards.everyday import shown_lists
from safeguards.gate import upgrade_decision
from safeguards.metrics import Evaluation
from safeguards.metrics import metric_label
from webapp.dashboard.charts import build_charts
from webapp.dashboard.charts import charted
from webapp.dashboard.detail import response_set_report
from webapp.serving import ModelHolder
from worker.evaluation import everyday_benchmark
from worker.settings import Settings

log = logging.getLogger(__name__)

# What a figure a model was never measured on shows (an evaluation stored before the metric
# existed, or an artifact without a response-set report): never None or a blank.
NOT_MEASURED = "not measured"
NO_SUGGESTION = "(no suggestion)"

# The figures of the overview, by metric name (safeguards.metrics registers each name and
# its label): what a person would tap and what would hurt on the everyday benchmark, then
# the 1-of-100 ranking beside the plain encoder's.
FIGURES: tuple[str, ...] = (
    TAPPABLE,
    INAPPROPRIATE,
    SENSITIVE_TAPPABLE,
    SENSITIVE_INAPPROPRIATE,
    "one_of_100",
    "plain_one_of_100",
)
# The response set's size by source (the manifest's training.response_set, models.
# response_set.ResponseSetReport), labelled as the product team says it.
BANK_FIGURES: tuple[tuple[str, str], ...] = (
    ("served", "Replies the model can suggest (response set size)"),
    ("catalogue", "of which from the intent catalogue"),
    ("mined", "of which mined from conversations"),
    ("curated", "of which added by reviewers (curated)"),
)

# The everyday messages whose suggestions the overview shows, production beside candidate:
# the one place this list lives. Each is a message of safeguards/everyday.yaml, so its
# labels say which suggestions a person would tap and which would be wrong (the overview
# refuses a text the benchmark does not have: tests/test_dashboard.py).
SHOWCASE: tuple[str, ...] = (
    "want to grab dinner friday?",
    "thanks so much for yesterday",
    "i passed my driving test!!",
    "my grandma passed away this morning",
    "mum's been diagnosed with cancer",
    "my flight got cancelled ugh",
    "where are u",
    "i got the job!!",
    "what do you call a fake noodle? an impasta",
    "night night",
)


@dataclass(frozen=True)
class Figure:
    """One row of the figures table: its label and each model's value as people read it."""

    label: str
    production: str
    candidate: str


@dataclass(frozen=True)
class Shown:
    """One suggestion shown, its intent, and what the message's labels say of it: "good" (a
    person would tap it), "wrong" (it must not be shown) or "" (neither)."""

    text: str
    intent: str
    verdict: str


@dataclass(frozen=True)
class ShowcaseRow:
    """An everyday message and what each model shows for it (empty: the model is silent;
    None: no such model, or it could not be loaded), and why a silent model is silent
    (models.suggester.Triggering.silence; None when it shows something or is absent)."""

    message: str
    situation: str
    sensitive: bool
    production: list[Shown] | None
    candidate: list[Shown] | None
    production_silence: str | None = None
    candidate_silence: str | None = None


def overview_context(session: Session, settings: Settings, holder: ModelHolder) -> dict[str, Any]:
    """Everything overview.html shows.

    Args:
        session: an open database session.
        settings: where the model artifacts are (their manifests hold the response sets).
        holder: the web process's served model: production's suggestions come from it.
    """
    generations = oldest_first(session)
    current = production(session)
    candidate = _newest_candidate(session, generations, current)
    points = charted(generations, lambda g: url_for("dashboard.generation", generation_id=g.id))
    return {
        "production": _production(session, current),
        "candidate": candidate,
        "figures": figures(settings, current, candidate) if current else [],
        "showcase": (showcase(settings, holder, candidate) if current else {"rows": []}),
        "last_decision": _last_decision(generations),
        "active": next((g for g in generations if holds_lock(g)), None),
        "generations": list(reversed(generations)),
        "charts": build_charts(points),
        "has_trend": len(points) > 1,
    }


def _newest_candidate(
    session: Session, generations: list[Generation], current: ModelVersion | None
) -> ModelVersion | None:
    """The model of the newest generation that trained one, unless it is production."""
    newest = next((g for g in reversed(generations) if g.candidate_version), None)
    if newest is None or (current is not None and newest.candidate_version == current.version):
        return None
    return session.scalars(
        select(ModelVersion).where(ModelVersion.version == newest.candidate_version)
    ).one_or_none()


# ---------------------------------------------------------------------------------------
# The figures


def percent_1(value: float | None) -> str:
    """A share as a percentage with one decimal ("41.3%"), or :data:`NOT_MEASURED`."""
    return NOT_MEASURED if value is None else f"{100 * value:.1f}%"


def count(value: int | None) -> str:
    """A count with thousands separators ("1,204"), or :data:`NOT_MEASURED`."""
    return NOT_MEASURED if value is None else f"{value:,}"


def stored_values(row: ModelVersion | None) -> dict[str, float]:
    """The metric values of a version's stored evaluation, by name (empty when it has none),
    in the current names whatever layout it was stored in."""
    stored = ((row.evaluation or {}) if row is not None else {}).get("evaluation")
    return Evaluation.from_dict(stored).values() if stored else {}


def figures(
    settings: Settings, current: ModelVersion, candidate: ModelVersion | None
) -> list[Figure]:
    """Production's (and the candidate's) absolute figures, formatted as people read them:
    shares as percentages with one decimal, counts with thousands separators; a figure the
    model was not measured on says so. The candidate's column is "" without a candidate."""
    models = [current, candidate]
    values = [stored_values(row) if row is not None else None for row in models]
    banks = [response_set_report(settings, row) if row is not None else None for row in models]
    rows = []
    for name in FIGURES:
        shown = ["" if v is None else percent_1(v.get(name)) for v in values]
        rows.append(Figure(metric_label(name), shown[0], shown[1]))
    for key, label in BANK_FIGURES:
        shown = ["" if b is None else count(_count(b, key)) for b in banks]
        rows.append(Figure(label, shown[0], shown[1]))
    return rows


def _count(report: dict[str, Any], key: str) -> int | None:
    value = report.get(key)
    return int(value) if isinstance(value, int | float) else None


# ---------------------------------------------------------------------------------------
# The everyday messages, production beside candidate


def showcase_messages(benchmark: EverydayBenchmark | None = None) -> list[EverydayMessage]:
    """The :data:`SHOWCASE` messages with their labels, in that order.

    Raises:
        KeyError: a text the everyday benchmark does not have.
    """
    by_text = {m.text: m for m in (benchmark or everyday_benchmark()).messages}
    missing = [text for text in SHOWCASE if text not in by_text]
    if missing:
        raise KeyError(f"not in safeguards/everyday.yaml: {missing}")
    return [by_text[text] for text in SHOWCASE]


def showcase(
    settings: Settings,
    holder: ModelHolder,
    candidate: ModelVersion | None,
) -> dict[str, Any]:
    """What production and the newest candidate show for the :data:`SHOWCASE` messages,
    each suggestion with its intent and whether the message's labels call it good or wrong.

    Computed live rather than stored at evaluation: production's lists come from the model
    this process already serves, so they show the team's curation and intent edits as
    clients get them now (those change between evaluations, and an evaluation is reused
    while its cache key holds, so lists stored with it would never appear on models
    evaluated before this page, nor follow a block); ten messages are one encoder pass. The
    candidate is loaded from its artifact once per process (:func:`_candidate_model`).

    Returns:
        ``{"rows": [ShowcaseRow, ...], "production_note": str, "candidate_note": str}``; a
        note says why a column is empty (no model loaded, an artifact that cannot load).
    """
    benchmark = everyday_benchmark()
    messages = showcase_messages(benchmark)
    subset = EverydayBenchmark(benchmark.version, tuple(messages), benchmark.vocabulary)
    found: dict[str, Any] = {"rows": [], "production_note": "", "candidate_note": ""}
    production_lists: list[list[Shown]] | None = None
    production_silences: list[str | None] = [None] * len(messages)
    loaded = holder.find()
    if loaded is not None:
        production_lists, production_silences = _lists(loaded.model, subset)
    else:
        found["production_note"] = (
            f"Production is not loaded in this process: {holder.absent_reason}"
        )
    candidate_lists: list[list[Shown]] | None = None
    candidate_silences: list[str | None] = [None] * len(messages)
    if candidate is not None:
        try:
            model = _candidate_model(
                str(artifact_dir(settings, candidate)), candidate.checksum, holder.encoder
            )
            candidate_lists, candidate_silences = _lists(model, subset)
        except ArtifactError as exc:
            log.warning("overview: candidate %s cannot be loaded: %s", candidate.version, exc)
            found["candidate_note"] = f"{candidate.version} cannot be loaded from its artifact."
    for i, message in enumerate(messages):
        found["rows"].append(
            ShowcaseRow(
                message.text,
                message.situation.replace("_", " "),
                message.sensitive,
                production_lists[i] if production_lists is not None else None,
                candidate_lists[i] if candidate_lists is not None else None,
                production_silences[i],
                candidate_silences[i],
            )
        )
    return found


def _lists(
    model: SuggestionModel, subset: EverydayBenchmark
) -> tuple[list[list[Shown]], list[str | None]]:
    """What ``model`` shows for each message (its triggering applied, nothing forced: as the
    everyday benchmark counts it), each suggestion with its intent and verdict; and, per
    message, why it shows nothing (None where it shows something)."""
    vocabulary = subset.vocabulary
    rows = model.suggest_many(subset.texts(), k=SHOWN)
    # The same reason the API gives a client, so a silent cell says why in the same words.
    silences = [model.triggering.silence(row) for row in rows]
    out = []
    for message, row in zip(subset.messages, shown_lists(model, subset, rows), strict=True):
        shown = []
        for text, served_as in row:
            intent = vocabulary.resolve(text, served_as)
            verdict = (
                "good" if intent in message.good else "wrong" if intent in message.wrong else ""
            )
            shown.append(Shown(text, intent or "no intent", verdict))
        out.append(shown)
    return out, silences


@functools.lru_cache(maxsize=2)
def _candidate_model(path: str, checksum: str, encoder: Encoder) -> SuggestionModel:
    """A candidate's model, loaded from its artifact (seconds) once per process: the overview
    shows the newest candidate, so two entries hold it and the one before while a new
    generation lands, and bound the memory a web process spends on models it does not
    serve. Keyed on the checksum too: a version whose artifact is replaced is loaded anew.

    Raises:
        ArtifactError: missing, partial, corrupt or trained with another encoder.
    """
    model, _ = load_model(Path(path), encoder, checksum)
    return model


def _production(session: Session, row: ModelVersion | None) -> dict[str, Any] | None:
    if row is None:
        return None
    made_by = generation_of(session, row.version)
    return {
        "version": row.version,
        "generation": row.generation,
        "generation_id": made_by.id if made_by else None,
        "created_at": row.created_at,
        "promoted_at": row.promoted_at,
    }


def _last_decision(generations: list[Generation]) -> Generation | None:
    """The newest generation the gate decided on (generation 0 is not gated)."""
    decided = [
        g for g in generations if g.number > 0 and upgrade_decision(g.decision or {}).get("metrics")
    ]
    return decided[-1] if decided else None
