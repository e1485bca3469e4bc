"""Safeguards against model collapse: evaluation, diversity, niche coverage, data hygiene
(quality filter, deduplication, accumulate mixing) and the promotion gate.

Pure library code: no web, queue or database access.
"""

from __future__ import annotations

from safeguards.coverage import CoverageReport
from safeguards.coverage import coverage
from safeguards.coverage import niche_relevance
from safeguards.coverage import tail_niches
from safeguards.dedup import DedupConfig
from safeguards.dedup import DedupResult
from safeguards.dedup import Duplicate
from safeguards.dedup import deduplicate
from safeguards.dedup import exact_duplicates
from safeguards.dedup import pair_embeddings
from safeguards.dedup import semantic_duplicates
from safeguards.diversity import distinct_n
from safeguards.diversity import distinct_share
from safeguards.diversity import diversity_metrics
from safeguards.diversity import mean_pairwise_distance
from safeguards.diversity import suggestion_entropy
from safeguards.diversity import vendi_score
from safeguards.evaluator import BenchmarkExample
from safeguards.evaluator import EvaluationConfig
from safeguards.evaluator import SuggestionEvaluator
from safeguards.gate import Decision
from safeguards.gate import MetricVerdict
from safeguards.gate import Tolerances
from safeguards.gate import decide
from safeguards.metrics import METRICS
from safeguards.metrics import Evaluation
from safeguards.metrics import Metric
from safeguards.metrics import MetricSpec
from safeguards.metrics import metric_spec
from safeguards.mixing import MixResult
from safeguards.mixing import mix_training_set
from safeguards.protocols import Evaluator
from safeguards.quality import QualityConfig
from safeguards.quality import QualityResult
from safeguards.quality import default_rules
from safeguards.quality import filter_examples
from safeguards.relevance import first_match_ranks
from safeguards.relevance import relevance_metrics

__all__ = [
    "METRICS",
    "BenchmarkExample",
    "CoverageReport",
    "Decision",
    "DedupConfig",
    "DedupResult",
    "Duplicate",
    "Evaluation",
    "EvaluationConfig",
    "Evaluator",
    "Metric",
    "MetricSpec",
    "MetricVerdict",
    "MixResult",
    "QualityConfig",
    "QualityResult",
    "SuggestionEvaluator",
    "Tolerances",
    "coverage",
    "decide",
    "deduplicate",
    "default_rules",
    "distinct_n",
    "distinct_share",
    "diversity_metrics",
    "exact_duplicates",
    "filter_examples",
    "first_match_ranks",
    "mean_pairwise_distance",
    "metric_spec",
    "mix_training_set",
    "niche_relevance",
    "pair_embeddings",
    "relevance_metrics",
    "semantic_duplicates",
    "suggestion_entropy",
    "tail_niches",
    "vendi_score",
]
