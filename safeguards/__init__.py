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
from safeguards.diversity import diversity_figures
from safeguards.diversity import mean_pairwise_distance
from safeguards.diversity import suggestion_entropy
from safeguards.diversity import vendi_score
from safeguards.evaluate import BenchmarkExample
from safeguards.evaluate import EvaluationConfig
from safeguards.evaluate import SafeguardEvaluator
from safeguards.evaluate import evaluate_model
from safeguards.evaluation import Evaluation
from safeguards.evaluation import Evaluator
from safeguards.evaluation import Figure
from safeguards.gate import Decision
from safeguards.gate import FigureVerdict
from safeguards.gate import Tolerances
from safeguards.gate import decide
from safeguards.mixing import MixResult
from safeguards.mixing import mix_training_set
from safeguards.quality import QualityConfig
from safeguards.quality import QualityResult
from safeguards.quality import default_rules
from safeguards.quality import filter_examples
from safeguards.relevance import first_match_ranks
from safeguards.relevance import relevance_figures

__all__ = [
    "BenchmarkExample",
    "CoverageReport",
    "Decision",
    "DedupConfig",
    "DedupResult",
    "Duplicate",
    "Evaluation",
    "EvaluationConfig",
    "Evaluator",
    "Figure",
    "FigureVerdict",
    "MixResult",
    "QualityConfig",
    "QualityResult",
    "SafeguardEvaluator",
    "Tolerances",
    "coverage",
    "decide",
    "deduplicate",
    "default_rules",
    "distinct_n",
    "distinct_share",
    "diversity_figures",
    "evaluate_model",
    "exact_duplicates",
    "filter_examples",
    "first_match_ranks",
    "mean_pairwise_distance",
    "mix_training_set",
    "niche_relevance",
    "pair_embeddings",
    "relevance_figures",
    "semantic_duplicates",
    "suggestion_entropy",
    "tail_niches",
    "vendi_score",
]
