from __future__ import annotations

import inspect
import random
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from core.provenance import Provenance
from safeguards.mixing import mix_training_set
from safeguards.mixing import model_budget


@dataclass(frozen=True)
class Row:
    message: str
    reply: str
    niche: str
    provenance: str


def rows(provenance: Provenance, niche: str, count: int, tag: str = "") -> list[Row]:
    return [
        Row(f"{tag}{niche} message {i}", f"reply {i}", niche, provenance.value)
        for i in range(count)
    ]


HUMAN = Provenance.HUMAN
SELECTED = Provenance.HUMAN_SELECTED
SYNTHETIC = Provenance.SYNTHETIC


def test_every_human_example_first_then_the_capped_model_share() -> None:
    human = rows(HUMAN, "a", 6)
    synthetic = rows(SYNTHETIC, "a", 20)
    mix = mix_training_set(human, [], synthetic, synthetic_cap=0.25)
    # 0.25 of the final set: m / (6 + m) <= 0.25 -> m <= 2.
    assert mix.examples[:6] == human
    assert len(mix.examples) == 8
    assert mix.counts.synthetic == 2
    assert mix.counts.dropped_by_cap == 18
    assert mix.counts.human_share == pytest.approx(0.75)


def test_weights_favour_rare_niches_with_mean_one() -> None:
    human = rows(HUMAN, "common", 4) + rows(HUMAN, "rare", 1)
    mix = mix_training_set(human, [], [], synthetic_cap=0.5)
    # Raw 1/sqrt(4) = 0.5 for "common", 1/sqrt(1) = 1 for "rare"; mean (4 * 0.5 + 1) / 5 = 0.6,
    # so 0.5 / 0.6 = 5/6 and 1 / 0.6 = 5/3.
    assert list(mix.weights) == pytest.approx([5 / 6] * 4 + [5 / 3])
    assert mix.weights.mean() == pytest.approx(1.0)


def test_model_data_in_a_niche_without_humans_is_not_boosted() -> None:
    human = rows(HUMAN, "common", 4) + rows(HUMAN, "rare", 1)
    orphan = rows(SYNTHETIC, "unanchored", 1)
    mix = mix_training_set(human, [], orphan, synthetic_cap=0.5)
    # The orphan gets the smallest human weight (that of "common"), not 1/sqrt(0).
    assert mix.weights[-1] == pytest.approx(mix.weights[0])
    assert mix.weights[-1] < mix.weights[4]


def test_the_model_share_is_spread_across_niches() -> None:
    human = rows(HUMAN, "h", 4)
    synthetic = rows(SYNTHETIC, "x", 10) + rows(SYNTHETIC, "y", 10) + rows(SYNTHETIC, "z", 1)
    mix = mix_training_set(human, [], synthetic, synthetic_cap=0.5)
    chosen = Counter(e.niche for e in mix.examples[4:])
    # Budget 4 over x, y, z round-robin: z's one example, and the rest split 2/1 or 1/2.
    assert sum(chosen.values()) == 4
    assert chosen["z"] == 1
    assert sorted([chosen["x"], chosen["y"]]) == [1, 2]


def test_human_selected_examples_come_before_synthetic_ones_in_a_niche() -> None:
    human = rows(HUMAN, "a", 2)
    selected = rows(SELECTED, "a", 2, tag="picked ")
    synthetic = rows(SYNTHETIC, "a", 5)
    mix = mix_training_set(human, selected, synthetic, synthetic_cap=0.5)
    assert mix.examples[2:] == selected or mix.examples[2:] == selected[::-1]
    assert (mix.counts.human_selected, mix.counts.synthetic) == (2, 0)


def test_the_choice_is_seeded_and_ignores_input_order() -> None:
    human = rows(HUMAN, "a", 5)
    synthetic = rows(SYNTHETIC, "a", 10) + rows(SYNTHETIC, "b", 10)
    shuffled = synthetic[:]
    random.Random(1).shuffle(shuffled)
    first = mix_training_set(human, [], synthetic, seed=3)
    assert set(mix_training_set(human, [], shuffled, seed=3).examples) == set(first.examples)
    others = [set(mix_training_set(human, [], synthetic, seed=s).examples) for s in range(4, 9)]
    assert any(other != set(first.examples) for other in others)


def test_a_list_holding_the_wrong_provenance_is_refused() -> None:
    with pytest.raises(ValueError, match="provenance"):
        mix_training_set(rows(HUMAN, "a", 2) + rows(SYNTHETIC, "a", 1), [], [])
    with pytest.raises(ValueError, match="provenance"):
        mix_training_set(rows(HUMAN, "a", 2), rows(SYNTHETIC, "a", 1), [])


def test_no_human_data_no_training_set() -> None:
    with pytest.raises(ValueError, match="no human examples"):
        mix_training_set([], [], rows(SYNTHETIC, "a", 3))


@pytest.mark.parametrize("cap", [-0.1, 1.0, 1.5])
def test_the_cap_must_leave_room_for_human_data(cap: float) -> None:
    with pytest.raises(ValueError, match="synthetic_cap"):
        model_budget(10, cap)


def test_there_is_only_the_accumulate_policy() -> None:
    parameters = set(inspect.signature(mix_training_set).parameters)
    assert parameters == {"human", "human_selected", "synthetic", "synthetic_cap", "seed"}


niche = st.sampled_from(["a", "b", "c", "d"])


def build(provenance: Provenance, niches: list[str], tag: str) -> list[Row]:
    return [Row(f"{tag} {i}", f"r {i}", n, provenance.value) for i, n in enumerate(niches)]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(niche, min_size=1, max_size=40),
    st.lists(niche, max_size=40),
    st.lists(niche, max_size=80),
    st.floats(0.0, 0.95),
    st.integers(0, 5),
)
def test_mixing_never_exceeds_the_cap_and_keeps_every_human_example(
    human_niches: list[str],
    selected_niches: list[str],
    synthetic_niches: list[str],
    cap: float,
    seed: int,
) -> None:
    human = build(HUMAN, human_niches, "human")
    selected = build(SELECTED, selected_niches, "selected")
    synthetic = build(SYNTHETIC, synthetic_niches, "synthetic")
    mix = mix_training_set(human, selected, synthetic, synthetic_cap=cap, seed=seed)

    assert mix.examples[: len(human)] == human
    model = len(mix.examples) - len(human)
    assert model / len(mix.examples) <= cap
    # The cap is met, not undershot: one more model example would break it, or none is left.
    if mix.counts.dropped_by_cap:
        assert (model + 1) / (len(mix.examples) + 1) > cap
    assert model + mix.counts.dropped_by_cap == len(selected) + len(synthetic)
    assert mix.counts.human_selected + mix.counts.synthetic == model
    assert len(mix.weights) == len(mix.examples)
    assert mix.weights.mean() == pytest.approx(1.0)
    assert len(set(map(id, mix.examples))) == len(mix.examples)
