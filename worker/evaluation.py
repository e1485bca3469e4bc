"""Evaluating model versions on the benchmark, once per version and way of measuring; and
the everyday benchmark, checked against the intent catalogue (``worker`` is where ``models``
and ``safeguards`` meet, docs/architecture.md)."""

from __future__ import annotations

import functools
from functools import cached_property
from pathlib import Path
from typing import Any

from models.artifact import load_model
from models.artifact import read_manifest
from models.catalogue import load_catalogue
from models.registry import artifact_dir
from models.registry import get_version
from models.reply_rules import surface_key
from models.suggester import SuggestionModel
from safeguards.evaluator import SuggestionEvaluator
from safeguards.everyday import EverydayBenchmark
from safeguards.everyday import IntentVocabulary
from safeguards.everyday import load_everyday
from safeguards.metrics import Evaluation
from safeguards.metrics import Metric
from worker.context import PipelineContext
from worker.data import ExamplePools


def catalogue_vocabulary() -> IntentVocabulary:
    """The shipped intent catalogue (models/catalogue.yaml) as the everyday benchmark reads
    it: each intent's tone, and its replies by surface form (models.reply_rules.surface_key).

    Raises:
        models.catalogue.InvalidCatalogue: the shipped catalogue is broken.
    """
    return IntentVocabulary.of(load_catalogue().intents, surface_key)


def everyday_benchmark(path: Path | None = None) -> EverydayBenchmark:
    """The everyday benchmark (safeguards/everyday.yaml, or ``path``), its labels checked
    against the shipped catalogue; the shipped one is read once per process.

    Raises:
        safeguards.everyday.InvalidEveryday: the file breaks the format or names an intent
            the catalogue does not have (each problem named by situation and message).
        OSError: ``path`` cannot be read.
    """
    if path is None:
        return _shipped_everyday()
    return load_everyday(catalogue_vocabulary(), path)


@functools.cache
def _shipped_everyday() -> EverydayBenchmark:
    return load_everyday(catalogue_vocabulary())


class VersionEvaluator:
    """The evaluator of one snapshot's benchmark and niche counts, for model versions: each
    version's evaluation is kept on its registry row (``ModelVersion.evaluation``) and
    reused while the evaluator's cache key is the same (the same benchmark, everyday
    benchmark, tail niches and configuration), whatever layout it was stored in. Every
    evaluation includes the everyday benchmark's metrics (:func:`everyday_benchmark`).

    Args:
        ctx: settings (the evaluation's configuration, ``Settings.evaluation``),
            database and encoder (used from the first call on).
        pools: the snapshot's examples: its benchmark and its human counts per niche.

    Example:
        >>> evaluate_version = VersionEvaluator(ctx, pools)  # doctest: +SKIP
        >>> evaluate_version("v3").value("vendi")  # doctest: +SKIP
        87.2
    """

    def __init__(self, ctx: PipelineContext, pools: ExamplePools) -> None:
        self.ctx = ctx
        self.pools = pools

    @cached_property
    def evaluator(self) -> SuggestionEvaluator:
        return SuggestionEvaluator(
            self.pools.benchmark_examples(),
            self.ctx.encoder,
            self.pools.human_counts(),
            self.ctx.settings.evaluation,
            everyday=everyday_benchmark(),
        )

    def __call__(self, version: str, model: SuggestionModel | None = None) -> Evaluation:
        """The version's evaluation: the stored one when it was made the same way, else
        measured now (on ``model``, or the version's artifact loaded) and stored.

        Raises:
            models.registry's and models.artifact's errors: an unknown version, or an
            artifact that cannot be loaded.
        """
        with self.ctx.db.session() as session:
            row = get_version(session, version)
            stored = (row.evaluation or {}).get("evaluation")
            if stored is not None:
                cached = Evaluation.from_dict(stored)
                if cached.cache_key == self.evaluator.cache_key:
                    return cached
            path, checksum = artifact_dir(self.ctx.settings, row), row.checksum
        if model is None:
            model, manifest = load_model(path, self.ctx.encoder, checksum)
        else:
            manifest = read_manifest(path)
        evaluation = with_training_figures(self.evaluator(model), manifest)
        with self.ctx.db.session() as session:
            # The evaluation's details hold what its cache key is made of (Evaluation.cache_key).
            get_version(session, version).evaluation = {"evaluation": evaluation.to_dict()}
        return evaluation


# The held-out figures of models.selection (the manifest's training.selection) recorded in
# the evaluation under these names (safeguards.metrics registers them).
TRAINING_FIGURES = ("held_out_one_of_100", "held_out_plain_one_of_100")


def with_training_figures(evaluation: Evaluation, manifest: dict[str, Any]) -> Evaluation:
    """The evaluation with what training measured on its held-out messages beside the
    benchmark's: the chosen model's and the plain encoder's held-out 1-of-100 (metrics,
    not gated) and the chosen epochs, form and weights (``details["training_selection"]``).

    Args:
        evaluation: the benchmark evaluation of the model.
        manifest: the model artifact's manifest; one without ``training.selection`` (a
            model trained on too few examples to hold any out, or before selection
            existed) leaves the evaluation as it is.

    Returns:
        A new :class:`Evaluation`, or ``evaluation`` itself.
    """
    selection = (manifest.get("training") or {}).get("selection") or {}
    figures = [
        Metric.measured(name, float(selection[name]), int(selection.get("held_out_messages", 0)))
        for name in TRAINING_FIGURES
        if name in selection and name not in evaluation.metrics
    ]
    if not figures:
        return evaluation
    chosen = {k: selection.get(k) for k in ("epochs", "form", "scale", "weights", "ranked_among")}
    return Evaluation.of(
        [*evaluation.metrics.values(), *figures],
        evaluation.primary,
        evaluation.suggestions,
        {**evaluation.details, "training_selection": chosen},
    )
