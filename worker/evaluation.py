"""Evaluating model versions on the benchmark, once per version and benchmark."""

from __future__ import annotations

import hashlib

from models.artifact import load_model
from models.registry import artifact_dir
from models.registry import get_version
from models.suggester import SuggestionModel
from safeguards.coverage import tail_niches
from safeguards.evaluate import EvaluationConfig
from safeguards.evaluate import benchmark_fingerprint
from safeguards.evaluate import evaluate_model
from safeguards.evaluation import Evaluation
from worker.context import PipelineContext
from worker.data import ExamplePools


def evaluation_key(pools: ExamplePools, config: EvaluationConfig) -> str:
    """What an evaluation depends on besides the model: the benchmark and the tail niches."""
    tail = tail_niches(pools.human_counts(), config.tail_share)
    digest = hashlib.sha256(benchmark_fingerprint(pools.benchmark_examples()).encode())
    digest.update(repr((sorted(tail), config)).encode())
    return digest.hexdigest()


def evaluate_version(
    ctx: PipelineContext,
    version: str,
    pools: ExamplePools,
    model: SuggestionModel | None = None,
) -> Evaluation:
    """The version's evaluation, computed once and kept on its registry row."""
    config = ctx.settings.evaluation
    key = evaluation_key(pools, config)
    with ctx.db.session() as session:
        row = get_version(session, version)
        cached = row.evaluation or {}
        if cached.get("key") == key:
            return Evaluation.from_dict(cached["evaluation"])
        path, checksum = artifact_dir(ctx.settings, row), row.checksum
    if model is None:
        model, _ = load_model(path, ctx.encoder, checksum)
    evaluation = evaluate_model(
        model, pools.benchmark_examples(), ctx.encoder, pools.human_counts(), config
    )
    with ctx.db.session() as session:
        get_version(session, version).evaluation = {
            "key": key,
            "evaluation": evaluation.to_dict(),
        }
    return evaluation
