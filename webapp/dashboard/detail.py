"""What the generation page shows: stages, the counts through the pipeline, the gate's
metrics, and production's and the candidate's suggestions side by side on rare niches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.references import ExampleRef
from core.schema import CandidateStatus
from core.schema import Example
from core.schema import Generation
from core.schema import GenerationStatus
from core.schema import ModelVersion
from core.schema import SyntheticCandidate
from core.text import normalize
from models.artifact import ArtifactError
from models.artifact import read_manifest
from models.registry import artifact_dir
from models.suggester import NO_REPLY_FITS
from safeguards.evaluator import benchmark_fingerprint
from safeguards.gate import upgrade_generation
from safeguards.metrics import Evaluation
from worker.data import example_pools
from worker.pipeline import PIPELINE
from worker.pipeline import STAGES
from worker.settings import Settings

RULE_LABELS = {
    "empty_reply": "empty reply",
    "echoes_message": "reply repeats the message",
    "reply_length": "reply too short or too long",
    "low_relevance": "reply unrelated to the message",
}
# The response set's rules (models.reply_rules.Rule), as the generation page names them.
RESPONSE_RULE_LABELS = {
    "short_and_plain": "longer than a short one-line reply, or code and markup",
    "personal_data": "personal data (telephone, email, URL, card, account, address)",
    "sensitive": "profanity, slurs, sexual or violent words",
    "blocked": "blocked by the product team",
    "written_by_many": "written in too few conversations",
}
DUPLICATE_SAMPLE = 6
TAIL_SAMPLE = 6


@dataclass(frozen=True)
class StageRow:
    name: str
    label: str
    status: str
    progress: float
    seconds: float | None
    error: str


@dataclass(frozen=True)
class Duplicate:
    message: str
    reply: str
    similarity: float | None
    of_kind: str
    of_message: str
    of_reply: str
    of_detail: str


@dataclass(frozen=True)
class Sample:
    message: str
    niche: str
    gold: str
    production: list[tuple[str, bool]]
    candidate: list[tuple[str, bool]]


def stage_rows(generation: Generation) -> list[StageRow]:
    rows = []
    for name in STAGES:
        record = (generation.stages or {}).get(name, {})
        rows.append(
            StageRow(
                name=name,
                label=PIPELINE[name].label,
                status=str(record.get("status", "pending")),
                progress=float(record.get("progress", 0.0) or 0.0),
                seconds=record.get("seconds"),
                error=str(record.get("error", "")),
            )
        )
    return rows


def response_set_report(settings: Settings, version: ModelVersion | None) -> dict[str, Any]:
    """What building ``version``'s response set kept and removed (its manifest holds it);
    empty for a model trained before the response set existed or an unreadable artifact."""
    if version is None or not version.artifact_path:
        return {}
    try:
        manifest = read_manifest(artifact_dir(settings, version))
    except ArtifactError:
        return {}
    report: dict[str, Any] = manifest.get("training", {}).get("response_set", {})
    return report


# The 1-of-100 pairs shown side by side (safeguards.metrics registers each name): where it
# was measured, the model's figure, the plain encoder's.
RANKING_ROWS = (
    (
        "Held-out training messages (the model was chosen on these)",
        "held_out_one_of_100",
        "held_out_plain_one_of_100",
    ),
    ("Benchmark (never trained on)", "one_of_100", "plain_one_of_100"),
)


def ranking_report(version: ModelVersion | None) -> dict[str, Any]:
    """The 1-of-100 of ``version`` beside the plain encoder's (Henderson et al. 2019: the
    share of messages whose real reply ranks first among 100 real replies), on the
    held-out training messages the model was chosen on (models.selection) and on the
    benchmark, from its stored evaluation; with the chosen epochs, form and weights.

    Returns:
        ``{"rows": [{"where", "label", "model", "plain", "difference", "support"}, ...],
        "selection": {...}, "ranked_among": int}``; empty for no version or an evaluation
        without these figures (a model evaluated before they existed).
    """
    stored = ((version.evaluation or {}) if version is not None else {}).get("evaluation")
    if not stored:
        return {}
    evaluation = Evaluation.from_dict(stored)
    rows = []
    for where, mine, plain in RANKING_ROWS:
        model_metric, plain_metric = evaluation.metrics.get(mine), evaluation.metrics.get(plain)
        if model_metric is None or plain_metric is None:
            continue
        rows.append(
            {
                "where": where,
                "label": model_metric.title,
                "plain_label": plain_metric.title,
                "model": model_metric.value,
                "plain": plain_metric.value,
                "difference": model_metric.value - plain_metric.value,
                "support": model_metric.support,
            }
        )
    if not rows:
        return {}
    return {
        "rows": rows,
        "selection": evaluation.details.get("training_selection") or {},
        "ranked_among": evaluation.details.get("ranked_among"),
    }


def generation_context(
    session: Session, settings: Settings, generation: Generation
) -> dict[str, Any]:
    counts = {name: record.get("counts", {}) for name, record in (generation.stages or {}).items()}
    metrics, decision = upgrade_generation(generation.metrics, generation.decision)
    candidate = (
        session.scalars(
            select(ModelVersion).where(ModelVersion.version == generation.candidate_version)
        ).one_or_none()
        if generation.candidate_version
        else None
    )
    return {
        "generation": generation,
        "active": GenerationStatus(generation.status).active,
        "stages": stage_rows(generation),
        "counts": counts,
        "rule_labels": RULE_LABELS,
        "response_set": response_set_report(settings, candidate),
        "ranking": ranking_report(candidate),
        "response_rule_labels": RESPONSE_RULE_LABELS,
        "duplicates": duplicates(session, generation.id),
        "decision": decision,
        "candidate": candidate,
        "samples": tail_samples(session, generation),
        # Generation 0 is not gated: its own metrics are what every later one is held to.
        "baseline_metrics": (
            metrics.get("candidate", {}).get("metrics", []) if generation.number == 0 else []
        ),
    }


def duplicates(session: Session, generation_id: int) -> list[Duplicate]:
    """A few synthetic replies removed as duplicates, with what each one duplicated: the
    near (semantic) ones first, as they are the ones worth a look, then exact ones."""
    base = select(SyntheticCandidate).where(
        SyntheticCandidate.generation_id == generation_id,
        SyntheticCandidate.status == CandidateStatus.REMOVED.value,
        SyntheticCandidate.removed_by == "duplicate",
    )
    near = session.scalars(
        base.where(SyntheticCandidate.similarity < 0.9999)
        .order_by(SyntheticCandidate.similarity, SyntheticCandidate.id)
        .limit(DUPLICATE_SAMPLE - 2)
    ).all()
    exact = session.scalars(
        base.where(SyntheticCandidate.similarity >= 0.9999)
        .order_by(SyntheticCandidate.id)
        .limit(DUPLICATE_SAMPLE - len(near))
    ).all()
    return [_duplicate(session, row) for row in [*near, *exact]]


def _duplicate(session: Session, row: SyntheticCandidate) -> Duplicate:
    try:
        ref: ExampleRef | None = ExampleRef.parse(row.duplicate_of)
    except ValueError:
        ref = None
    message = reply = detail = ""
    if ref is not None and ref.kind == "example":
        example = session.get(Example, ref.id)
        if example is not None:
            message, reply = example.message, example.reply
            detail = f"stored {example.provenance} example #{example.id}"
    elif ref is not None:
        other = session.get(SyntheticCandidate, ref.id)
        if other is not None:
            message, reply = other.message, other.reply
            detail = "another synthetic reply of this generation"
    kind = ref.kind if ref is not None else ""
    return Duplicate(
        row.message, row.reply, row.similarity, kind, message, reply, detail or row.duplicate_of
    )


def tail_samples(session: Session, generation: Generation) -> dict[str, Any]:
    """Production's and the candidate's top suggestions for benchmark messages of the rarest
    niches, from the suggestions each version's evaluation stored. "silent" says why a list
    is empty: an evaluation stores each message's ranked texts, before triggering, so an
    empty one is a message the model returned nothing for (Triggering.silence)."""
    found: dict[str, Any] = {
        "rows": [],
        "note": "",
        "production": None,
        "candidate": None,
        "silent": NO_REPLY_FITS,
    }
    production_version = generation.parent_version
    candidate_version = generation.candidate_version
    if not production_version or not candidate_version:
        found["note"] = "This generation has no candidate yet."
        return found
    versions = select(ModelVersion).where(
        ModelVersion.version.in_([production_version, candidate_version])
    )
    evaluations = {
        row.version: (row.evaluation or {}).get("evaluation", {})
        for row in session.scalars(versions)
    }
    benchmark = example_pools(session).benchmark_examples()
    fingerprint = benchmark_fingerprint(benchmark)
    lined_up = all(
        evaluations.get(v, {}).get("details", {}).get("benchmark_fingerprint") == fingerprint
        and len(evaluations.get(v, {}).get("suggestions", [])) == len(benchmark)
        for v in (production_version, candidate_version)
    )
    found.update(production=production_version, candidate=candidate_version)
    if not lined_up:
        found["note"] = (
            "These versions were last evaluated on another benchmark, so their suggestions "
            "cannot be lined up here."
        )
        return found
    details = evaluations[candidate_version]["details"]
    tail = list(details.get("tail_niches", []))
    shown = int(details.get("config", {}).get("diversity_k", 3))
    picks = _spread([i for i, b in enumerate(benchmark) if b.niche in tail], benchmark)
    for i in picks[:TAIL_SAMPLE]:
        example = benchmark[i]
        gold = normalize(example.reply)

        def top(version: str, i: int = i, gold: str = gold) -> list[tuple[str, bool]]:
            texts = evaluations[version]["suggestions"][i][:shown]
            return [(text, normalize(text) == gold) for text in texts]

        found["rows"].append(
            Sample(
                example.message,
                example.niche,
                example.reply,
                top(production_version),
                top(candidate_version),
            )
        )
    if not found["rows"]:
        found["note"] = "The benchmark has no examples from the rarest niches."
    return found


def _spread(indexes: list[int], benchmark: list[Any]) -> list[int]:
    """Take the niches in turn, so the sample is not all from one niche."""
    by_niche: dict[str, list[int]] = {}
    for i in indexes:
        by_niche.setdefault(benchmark[i].niche, []).append(i)
    out: list[int] = []
    queues = list(by_niche.values())
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out
