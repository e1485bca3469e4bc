"""Training a suggestion model from (message, reply) examples."""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np

from core.provenance import Provenance
from core.text import normalize
from core.text import pair_hash
from models.adapter import Adapter
from models.adapter import AdapterConfig
from models.catalogue import Catalogue
from models.catalogue import Tone
from models.encoder import Encoder
from models.prompts import IntentPrompts
from models.reply_rules import Curation
from models.reply_rules import ResponseSetConfig
from models.reply_rules import surface_key
from models.response_set import ReplyRows
from models.response_set import ResponseSet
from models.response_set import ResponseSetReport
from models.response_set import build_response_set
from models.selection import SelectionConfig
from models.selection import SelectionReport
from models.selection import closeness_search
from models.selection import select
from models.suggester import RetrievalConfig
from models.suggester import ScoringWeights
from models.suggester import SuggestionModel
from models.suggester import Triggering
from models.tone import ToneClassifier

# Share of training messages held out to choose the adapter, the signal weights and the
# triggering threshold.
VALIDATION_FRACTION = 0.1
# Below this many examples there is too little to hold out: the adapter is trained for its
# configured epochs and default weights are used.
MIN_EXAMPLES_TO_TUNE = 50


@dataclass(frozen=True)
class TrainingExample:
    """A (message, reply) pair to train on, with its niche, its weight in the loss (mean 1
    over a training set), who wrote the reply, and the independent source that wrote it
    (core.schema.Example.conversation)."""

    message: str
    reply: str
    niche: str
    weight: float = 1.0
    provenance: Provenance = Provenance.HUMAN
    conversation: str | None = None

    @property
    def human(self) -> bool:
        """Written by a person: only these count toward a reply's support."""
        return self.provenance is Provenance.HUMAN


@dataclass(frozen=True)
class TrainingConfig:
    """How a model is trained and what it may serve: everything about a training run but its
    examples and its parent (worker.context.PipelineContext.training_config builds it from the
    settings and the reviewers' state in the database).

    Args:
        adapter: the adapter's training (its ``epochs`` is the longest checkpoint).
        retrieval: how the model finds its suggestions.
        response_set: the response set's rules.
        target_coverage: share of held-out messages the model should answer, in (0, 1].
        selection: which checkpoints and forms are scored (models.selection).
        curation: the team's added and blocked replies (default: none).
        catalogue: the starter catalogue of intents, served beside the mined replies and
            seeding their intents (models.response_set.build_response_set); None: none.
    """

    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    response_set: ResponseSetConfig = field(default_factory=ResponseSetConfig)
    target_coverage: float = 0.8
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    curation: Curation = field(default_factory=Curation)
    catalogue: Catalogue | None = None


@dataclass(frozen=True)
class Inherited:
    """What a model trained from a parent keeps of it (a generation's parent: production).

    Attributes:
        adapter: the adapter training continues from; None: the identity (the plain encoder).
        weights: signal weights kept instead of searched; None: searched.
        served_replies: the parent's served replies, kept below the support threshold
            (models.response_set.build_response_set's ``inherited_replies``).
    """

    adapter: Adapter | None = None
    weights: ScoringWeights | None = None
    served_replies: Sequence[str] = ()

    @classmethod
    def of(cls, parent: SuggestionModel) -> Inherited:
        """All three, from ``parent``."""
        return cls(parent.adapter, parent.weights, tuple(parent.bank.texts))


@dataclass
class TrainingReport:
    examples: int
    bank_size: int
    epoch_losses: list[float]
    weights: ScoringWeights
    validation_examples: int
    response_set: ResponseSetReport
    triggering: Triggering
    # (weights, held-out similarity@3) for every weight combination with the chosen adapter,
    # best first: the mean over held-out messages of the highest cosine between the real
    # reply and the first three bank replies ranked by those weights
    # (models.selection.closeness_search), the gate's primary metric measured on the held-out
    # tenth. Recorded beside the choice, which is by 1-of-100; empty when the weights were
    # kept or too few examples were held out. Never written to an artifact.
    held_out_similarity_at_3: list[tuple[dict[str, float], float]] = field(default_factory=list)
    # The chosen epochs, form and weights with the held-out 1-of-100 of the model and of the
    # plain encoder; None when there were too few examples to hold any out.
    selection: SelectionReport | None = None


def training_metadata(
    examples: Sequence[TrainingExample], report: TrainingReport, **extra: object
) -> dict[str, Any]:
    """The ``training`` section of a model's manifest (models.registry.register writes it):
    what it was trained on and what training chose.

    Args:
        examples: the examples the model was trained on.
        report: what :func:`train_model` returned with the model.
        extra: more entries of the section (``generation_id``, ``benchmark_examples``).

    Returns:
        ``{"training": {...}}``: the fingerprint (SHA-256 of the examples' sorted pair
        hashes, core.text.pair_hash: the same set of pairs, the same fingerprint), the
        counts by provenance and by niche, the held-out examples, the final loss, the
        response set's report and the selection's (None: too few examples to hold out).
    """
    hashes = sorted(pair_hash(e.message, e.reply) for e in examples)
    return {
        "training": {
            "fingerprint": hashlib.sha256("".join(hashes).encode()).hexdigest(),
            "examples": len(examples),
            "provenance_counts": dict(Counter(e.provenance.value for e in examples)),
            "niche_counts": dict(Counter(e.niche for e in examples)),
            "validation_examples": report.validation_examples,
            "final_loss": report.epoch_losses[-1] if report.epoch_losses else None,
            "response_set": report.response_set.as_dict(),
            # The chosen epochs, form and weights, with the held-out 1-of-100 of the model
            # and of the plain encoder (models.selection); None: too few examples.
            "selection": report.selection.as_dict() if report.selection else None,
            **extra,
        }
    }


def train_model(
    encoder: Encoder,
    examples: Sequence[TrainingExample],
    *,
    config: TrainingConfig,
    inherited: Inherited | None = None,
    show_progress: bool = False,
) -> tuple[SuggestionModel, TrainingReport]:
    """Train the adapter, build the response set, choose the adapter's epochs and form, the
    signal weights and the triggering threshold on held-out messages, and build the model.

    A tenth of the human-written training messages (grouped by message text, chosen by hash
    so it is reproducible) is held out of the adapter's training, the response set and the
    nearest-message index of a probe model. The adapter is trained once, a copy kept after
    each of ``config.selection.checkpoints`` epochs; models.selection scores every
    checkpoint, form and weight combination by the 1-of-100 ranking accuracy of held-out
    (message, real reply) pairs (Henderson et al. 2019) and returns the best, never one
    below the plain encoder (the identity map: epochs 0). The triggering threshold is the
    score that answers ``config.target_coverage`` of the held-out messages. The final
    model's response set and message index hold every example; its adapter is the chosen
    checkpoint (trained without the held-out tenth).

    With ``inherited.weights`` given (a generation keeps its parent's), the weights are not
    searched again: a new search can land on a near-equal-relevance option with very
    different diversity, which would be noise to the gate, not a change in data. The
    adapter's epochs and form are chosen again (checkpoints from ``inherited.adapter``, the
    parent's adapter, and the identity); should none reach the plain encoder under those
    weights, the plain encoder itself is returned (its weights: the dual signal alone). The
    threshold is chosen again, since a new adapter moves every score.

    With fewer than ``MIN_EXAMPLES_TO_TUNE`` examples nothing is held out: the adapter is
    trained for ``config.adapter.epochs`` and the weights are the inherited ones or the
    defaults.

    Args:
        encoder: the base encoder; every text is encoded once (its cache).
        examples: the training rows (message, reply, niche, weight, provenance,
            conversation).
        config: the settings, curation and catalogue of this training (:class:`TrainingConfig`).
        inherited: what the model keeps of its parent; None: nothing (trained from the
            identity, weights searched).
        show_progress: progress lines on the console while encoding (the command line).

    Returns:
        (the model, its training report with the selection's figures).

    Raises:
        ValueError: no examples, or a response set left empty by its rules.
    """
    if not examples:
        raise ValueError("cannot train a model on zero examples")
    inherited = inherited or Inherited()
    catalogue = config.catalogue
    messages = encoder.encode(
        [e.message for e in examples], show_progress, what="messages of the training set"
    )
    replies = encoder.encode(
        [e.reply for e in examples], show_progress, what="replies of the training set"
    )
    prompts = IntentPrompts.of(catalogue, encoder, show_progress)
    tone_classifier = None
    if catalogue is not None and len(prompts):
        sympathetic = [catalogue[name].tone == Tone.SYMPATHETIC for name in prompts.intents]
        tone_classifier = ToneClassifier.fit(encoder, prompts.embeddings, np.asarray(sympathetic))
    weights_arr = np.asarray([e.weight for e in examples], dtype=np.float32)
    # Only rows a person wrote are held out: the model's own replies (synthetic) and the ones
    # users tapped (human_selected) exist because the parent answered their message, so
    # calibrating on them sets a threshold for messages the model finds easy (benchmark
    # coverage fell 12% at the chatterbot demo's first generation, 0.742 -> 0.652).
    held_out = _held_out(examples) & np.asarray([e.human for e in examples], dtype=bool)
    calibrate = len(examples) >= MIN_EXAMPLES_TO_TUNE and 2 <= held_out.sum() < len(examples)
    fit = ~held_out if calibrate else np.ones(len(examples), dtype=bool)

    # In-batch negatives must not include another row with the same reply.
    reply_keys: dict[str, int] = {}
    reply_ids = np.asarray(
        [reply_keys.setdefault(surface_key(e.reply), len(reply_keys)) for e in examples],
        dtype=np.int64,
    )
    # PyTorch loads here, in the process that trains (a worker), never in a web process that
    # only needs this module's records (tests/test_encoder_backends.py checks it).
    from models.adapter_training import train_adapter_checkpoints

    checkpoints = (*config.selection.checkpoints, config.adapter.epochs) if calibrate else ()
    snapshots, losses = train_adapter_checkpoints(
        messages[fit],
        replies[fit],
        reply_ids[fit],
        weights_arr[fit],
        config.adapter,
        checkpoints or (config.adapter.epochs,),
        start=inherited.adapter,
    )
    adapter = snapshots[-1][1]

    def response_set(rows: np.ndarray) -> ResponseSet:
        chosen_rows = [e for e, keep in zip(examples, rows, strict=True) if keep]
        return build_response_set(
            ReplyRows(
                replies=[e.reply for e in chosen_rows],
                embeddings=replies[rows],
                niches=[e.niche for e in chosen_rows],
                conversations=[e.conversation for e in chosen_rows],
                human=[e.human for e in chosen_rows],
            ),
            config=config.response_set,
            curation=config.curation,
            encode=encoder.encode,
            inherited_replies=inherited.served_replies,
            catalogue=catalogue,
        )

    # The probe and the final model differ in their rows, adapter, weights and triggering.
    model_over = functools.partial(
        _model,
        encoder=encoder,
        retrieval=config.retrieval,
        prompts=prompts,
        tone_classifier=tone_classifier,
    )
    chosen = inherited.weights or ScoringWeights()
    similarity_at_3: list[tuple[dict[str, float], float]] = []
    selection: SelectionReport | None = None
    triggering = Triggering(threshold=0.0, target_coverage=config.target_coverage)
    if calibrate:
        probe_set = response_set(~held_out)
        probe = model_over(probe_set, messages[~held_out], adapter=adapter, weights=chosen)
        gold_texts = [e.reply for e, held in zip(examples, held_out, strict=True) if held]
        adapter, chosen, selection = select(
            probe,
            messages[held_out],
            replies[held_out],
            gold_texts,
            snapshots,
            config.selection,
            inherited.weights,
            started_from_identity=inherited.adapter is None,
        )
        probe.adapter = adapter
        cands = probe.candidates_for_embeddings(messages[held_out])
        if inherited.weights is None:
            similarity_at_3 = closeness_search(cands, replies[held_out], probe_set.embeddings)
        triggering = Triggering.calibrate(
            [c.normalised(chosen).max(initial=0.0) for c in cands], config.target_coverage
        )

    final_set = response_set(np.ones(len(examples), dtype=bool))
    if len(final_set.bank) == 0:
        raise ValueError(
            f"the response set is empty: no reply of the {len(examples)} examples passed its "
            f"rules ({final_set.report.removed}); import more data, or lower "
            "REPLYGUARD_RESPONSE_SET__MIN_SUPPORT for a small data set"
        )
    model = model_over(final_set, messages, adapter=adapter, weights=chosen, triggering=triggering)
    report = TrainingReport(
        examples=len(examples),
        bank_size=len(final_set.bank),
        epoch_losses=losses,
        weights=chosen,
        validation_examples=int(held_out.sum()) if calibrate else 0,
        response_set=final_set.report,
        triggering=triggering,
        held_out_similarity_at_3=similarity_at_3,
        selection=selection,
    )
    return model, report


def _model(
    responses: ResponseSet,
    messages: np.ndarray,
    *,
    encoder: Encoder,
    adapter: Adapter,
    weights: ScoringWeights,
    retrieval: RetrievalConfig,
    prompts: IntentPrompts,
    tone_classifier: ToneClassifier | None,
    triggering: Triggering | None = None,
) -> SuggestionModel:
    """A model over ``responses``, whose rows line up with ``messages`` ((n, d) encoder
    rows); only messages whose reply is in the set vote (kNN). The other arguments are
    :class:`~models.suggester.SuggestionModel`'s; ``triggering`` None answers every message
    (threshold 0), as a probe model must."""
    voting = responses.row_ids >= 0
    return SuggestionModel(
        encoder=encoder,
        adapter=adapter,
        bank=responses.bank,
        bank_embeddings=responses.embeddings,
        message_embeddings=messages[voting],
        message_reply_ids=responses.row_ids[voting],
        weights=weights,
        retrieval=retrieval,
        triggering=triggering,
        prompts=prompts,
        tone_classifier=tone_classifier,
    )


def _held_out(examples: Sequence[TrainingExample]) -> np.ndarray:
    """Every example whose normalised message hashes into the held-out tenth.

    The hash has no seed: which messages calibrate the threshold is a property of the data,
    not of the training's randomness, so a message stays in (or out of) the held-out tenth
    across retrains and generations. With the seed in the hash, two seeds' coverage on the
    demo differed by up to 12.7% (relative sd 5.5%, docs/collapse.md "Noise")."""
    cutoff = int(VALIDATION_FRACTION * 2**32)
    flags = []
    for e in examples:
        digest = hashlib.sha256(f"held-out:{normalize(e.message)}".encode()).digest()
        flags.append(int.from_bytes(digest[:4], "big") < cutoff)
    return np.asarray(flags, dtype=bool)
