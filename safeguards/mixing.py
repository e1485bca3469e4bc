"""The accumulate mixing policy: every human example, plus capped model-influenced ones.

Replacing real data with model outputs is what collapses (Shumailov et al. 2024); keeping
all the real data and adding synthetic data on top keeps the error bounded (Gerstgrasser et
al. 2024). So this module has one policy and no switch: the training set always holds every
human example given to it, and the model-influenced examples (``human_selected`` and
``synthetic`` both: a person choosing among the model's suggestions is still the model's
loop) fill at most ``synthetic_cap`` of the final set.

Which model-influenced examples make the cut is deterministic and spread across niches:
round-robin over the niches (in a seeded order), so no single common niche eats the
budget. Within a niche, ``human_selected`` examples come before ``synthetic`` ones (a person
did at least pick them), each in a seeded order that depends on the example's text, not on
input order.

Training weights favour rare niches: ``1 / sqrt(human examples in the niche)``, scaled so
the mean weight over the training set is 1. A model-influenced example in a niche with no
human example gets the smallest weight given to any human niche: unanchored model data is
never boosted.

The caller passes human examples *outside* the benchmark; nothing here can tell.

Example:
    >>> mix = mix_training_set(human, selected, synthetic, synthetic_cap=0.5)  # doctest: +SKIP
    >>> mix.counts.human_share >= 0.5  # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any
from typing import Generic
from typing import Protocol
from typing import TypeVar

import numpy as np

from core.provenance import Provenance
from core.settings import DEFAULT_SEED

DEFAULT_SYNTHETIC_CAP = 0.5


class Labelled(Protocol):
    @property
    def message(self) -> str: ...

    @property
    def reply(self) -> str: ...

    @property
    def niche(self) -> str: ...

    @property
    def provenance(self) -> str: ...


T = TypeVar("T", bound=Labelled)


@dataclass(frozen=True)
class MixCounts:
    human: int
    human_selected: int
    synthetic: int
    # Model-influenced examples left out to respect the cap.
    dropped_by_cap: int
    # Human examples / training set size.
    human_share: float
    synthetic_cap: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MixResult(Generic[T]):
    """The training set (human examples first, in input order), a weight per example."""

    examples: list[T]
    weights: np.ndarray
    counts: MixCounts


def model_budget(human: int, synthetic_cap: float) -> int:
    """The most model-influenced examples that keep their share of the set within the cap.

    Args:
        human: human examples in the set.
        synthetic_cap: largest allowed share of model-influenced examples, in [0, 1).

    Returns:
        The largest ``m`` with ``m / (human + m) <= synthetic_cap``.
    """
    if not 0.0 <= synthetic_cap < 1.0:
        # A cap of 1 would let model data swamp the human data without limit.
        raise ValueError(f"synthetic_cap must be in [0, 1), not {synthetic_cap}")
    budget = math.floor(synthetic_cap * human / (1.0 - synthetic_cap)) + 1
    # Float rounding may overshoot by one; check against the very test a caller would use.
    while budget > 0 and budget / (human + budget) > synthetic_cap:
        budget -= 1
    return budget


def mix_training_set(
    human: Sequence[T],
    human_selected: Sequence[T],
    synthetic: Sequence[T],
    synthetic_cap: float = DEFAULT_SYNTHETIC_CAP,
    seed: int = DEFAULT_SEED,
) -> MixResult[T]:
    """Build a generation's training set under the accumulate policy.

    Args:
        human: human examples outside the benchmark; all of them are kept.
        human_selected: model suggestions a person chose.
        synthetic: filtered and deduplicated model-written examples.
        synthetic_cap: largest share of the final set that model-influenced examples
            (human_selected + synthetic) may take.
        seed: decides the order in which model-influenced examples are taken.

    Returns:
        A :class:`MixResult`: every human example, then the chosen model-influenced ones;
        weights with mean 1 favouring rare niches; and the counts.

    Raises:
        ValueError: on an example in the wrong list (its provenance disagrees), or when
            there are no human examples (nothing real to anchor the training on).
    """
    _check_provenance(human, Provenance.HUMAN)
    _check_provenance(human_selected, Provenance.HUMAN_SELECTED)
    _check_provenance(synthetic, Provenance.SYNTHETIC)
    if not human:
        raise ValueError("no human examples: a training set must be anchored in real data")

    budget = model_budget(len(human), synthetic_cap)
    chosen = _spread(human_selected, synthetic, budget, seed)
    examples = [*human, *chosen]

    human_counts = Counter(e.niche for e in human)
    floor_weight = 1.0 / math.sqrt(max(human_counts.values()))
    raw = np.array(
        [
            1.0 / math.sqrt(human_counts[e.niche]) if human_counts[e.niche] else floor_weight
            for e in examples
        ],
        dtype=np.float64,
    )
    weights = raw / raw.mean()

    n_selected = sum(Provenance(e.provenance) is Provenance.HUMAN_SELECTED for e in chosen)
    counts = MixCounts(
        human=len(human),
        human_selected=n_selected,
        synthetic=len(chosen) - n_selected,
        dropped_by_cap=len(human_selected) + len(synthetic) - len(chosen),
        human_share=len(human) / len(examples),
        synthetic_cap=synthetic_cap,
    )
    return MixResult(examples, weights, counts)


def _check_provenance(examples: Sequence[Labelled], expected: Provenance) -> None:
    for position, example in enumerate(examples):
        if Provenance(example.provenance) is not expected:
            raise ValueError(
                f"example {position} of the {expected.value} list has provenance "
                f"{example.provenance!r}; provenance decides the list, never the other way"
            )


def _rank(seed: int, *parts: str) -> bytes:
    return hashlib.sha256("\x1f".join([str(seed), *parts]).encode("utf-8")).digest()


def _spread(human_selected: Sequence[T], synthetic: Sequence[T], budget: int, seed: int) -> list[T]:
    """Up to ``budget`` examples, round-robin over niches in a seeded order."""
    if budget <= 0:
        return []
    queues: dict[str, list[T]] = defaultdict(list)
    for group in (human_selected, synthetic):
        by_niche: dict[str, list[T]] = defaultdict(list)
        for example in group:
            by_niche[example.niche].append(example)
        for niche, items in by_niche.items():
            items.sort(key=lambda e: _rank(seed, e.niche, e.message, e.reply))
            queues[niche].extend(items)
    order = sorted(queues, key=lambda niche: _rank(seed, niche))
    chosen: list[T] = []
    depth = 0
    while len(chosen) < budget:
        took = False
        for niche in order:
            if depth < len(queues[niche]):
                chosen.append(queues[niche][depth])
                took = True
                if len(chosen) == budget:
                    break
        if not took:
            break
        depth += 1
    return chosen
