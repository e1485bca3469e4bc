"""A second collapse detector, for comparison with the gate: the tiers of
rootiq-ai/model-collapse-detection (Bisht, "Early Detection of Model Collapse in Large
Language Models: A Diversity-Based Framework", ICDSA 2026), applied to our suggestions.

What that repository does (README "Detection Framework", experiments/metrics.py,
experiments/analyze.py, read at commit b39e72ae for the metrics and 103db084 for the
analysis): each generation's generated texts get a metric panel; a tier *fires* at the
first generation whose metric has moved past a fixed share of its generation-0 value
(``first_crossing``: ``value <= base * (1 - threshold)`` for a drop):

- Tier 1 (early warning, "investigate sources"): distinct-1, type-token ratio (TTR) and
  token entropy, each a 10% drop. Distinct-1 and TTR are computed per text and averaged
  (the repository's current definition; its pooled variant, kept there "for reference
  only", is reported here too as ``distinct_1_pooled`` because a reply of a few words
  almost never repeats a word, so the per-text metric barely moves on suggestions).
  Entropy is the Shannon entropy in bits of all the tokens pooled.
- Tier 2 (confirmation, "halt pipeline"): perplexity up 10%. A retrieval model assigns no
  likelihood to text, so this tier does not apply here.
- Tier 3 (severity, "full remediation"): vocabulary coverage (the share of the reference
  texts' vocabulary that the generated texts use) down 20%; the reference here is the
  benchmark's human replies.

Its tokenizer (lowercase, every non-word character a space) is kept, so the metrics mean
what they mean there. The repository itself says its thresholds are "experimental
artifacts of our setting that require recalibration": they are applied unchanged here
because the point is the comparison.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from collections.abc import Sequence

# Tier -> (metrics, the relative drop that fires it), from the repository's README table.
TIERS: Mapping[str, tuple[tuple[str, ...], float]] = {
    "tier 1": (("distinct_1", "ttr", "entropy"), 0.10),
    "tier 3": (("vocab_coverage",), 0.20),
}
_NON_WORD = re.compile(r"[^\w\s]")


def tokenize(text: str) -> list[str]:
    """The repository's tokenizer: lowercase, punctuation replaced by spaces, split."""
    return _NON_WORD.sub(" ", text.lower()).split()


def detector_metrics(texts: Sequence[str], reference: Sequence[str]) -> dict[str, float]:
    """The detector's metric panel of one generation's texts.

    Args:
        texts: the suggestions shown, every one of every benchmark message.
        reference: the texts whose vocabulary coverage is measured (the benchmark's human
            replies).

    Returns:
        ``distinct_1`` and ``ttr`` (per-text unique/all tokens, averaged over texts with a
        token; identical by construction for unigrams, both kept as the tiers name them),
        ``distinct_1_pooled`` (unique/all tokens over every text), ``entropy`` (bits) and
        ``vocab_coverage`` (a share in [0, 1]); each 0.0 when there is nothing to count.
    """
    tokenized = [tokenize(t) for t in texts]
    per_text = [len(set(tokens)) / len(tokens) for tokens in tokenized if tokens]
    pooled = [token for tokens in tokenized for token in tokens]
    counts = Counter(pooled)
    entropy = -sum(c / len(pooled) * math.log2(c / len(pooled)) for c in counts.values())
    vocabulary = {token for text in reference for token in tokenize(text)}
    per_text_mean = sum(per_text) / len(per_text) if per_text else 0.0
    return {
        "distinct_1": per_text_mean,
        "distinct_1_pooled": len(counts) / len(pooled) if pooled else 0.0,
        "ttr": per_text_mean,
        "entropy": max(entropy, 0.0),
        "vocab_coverage": len(vocabulary & counts.keys()) / len(vocabulary) if vocabulary else 0.0,
    }


def first_firing(series: Sequence[Mapping[str, float]]) -> dict[str, tuple[int, str] | None]:
    """When each tier first fires over a run, and on which metric.

    Args:
        series: the panel of generation 0, 1, 2, ... in order (:func:`detector_metrics`).

    Returns:
        Per tier name, ``(generation, metric)`` of the first generation where one of its
        metrics fell by at least its threshold below generation 0 (the repository's
        ``first_crossing``), or None when it never does. With several metrics crossing at
        once, the first in the tier's list is named.
    """
    fired: dict[str, tuple[int, str] | None] = {}
    for tier, (names, threshold) in TIERS.items():
        fired[tier] = None
        for generation, panel in enumerate(series[1:], start=1):
            crossed = [name for name in names if panel[name] <= series[0][name] * (1 - threshold)]
            if crossed:
                fired[tier] = (generation, crossed[0])
                break
    return fired
