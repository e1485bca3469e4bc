from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from vendi_score import vendi

from safeguards.diversity import distinct_n
from safeguards.diversity import distinct_ngrams
from safeguards.diversity import distinct_share
from safeguards.diversity import diversity_metrics
from safeguards.diversity import mean_pairwise_distance
from safeguards.diversity import suggestion_entropy
from safeguards.diversity import vendi_score
from safeguards.diversity import word_tokens

# vendi_score.score_K looks up scipy.sparse.csr, which SciPy deprecates; not ours to fix.
SCIPY_CSR = "ignore:Please import `csr_matrix`:DeprecationWarning"

SUGGESTIONS = ["Yes, sure!", "Sure thing", "yes,  SURE!", "No"]


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_word_tokens_are_lowercase_words_without_punctuation() -> None:
    assert word_tokens("Don't GO, now!") == ["don't", "go", "now"]


def test_distinct_n_on_a_hand_made_set() -> None:
    # Tokens: [yes, sure], [sure, thing], [yes, sure], [no].
    # Unigrams: 7 in all, 4 unique (yes, sure, thing, no)      -> distinct-1 = 4/7.
    # Bigrams: (yes sure), (sure thing), (yes sure); "No" has none -> distinct-2 = 2/3.
    assert distinct_n(SUGGESTIONS, 1) == pytest.approx(4 / 7)
    assert distinct_n(SUGGESTIONS, 2) == pytest.approx(2 / 3)


def test_distinct_n_is_zero_without_any_ngram() -> None:
    assert distinct_n(["one", "two"], 2) == 0.0
    assert distinct_n([], 1) == 0.0


def test_distinct_share_and_entropy_on_a_hand_made_set() -> None:
    # Normalised texts: "yes, sure!" twice, "sure thing", "no" -> 3 distinct of 4 = 0.75.
    # p = (1/2, 1/4, 1/4): H = 1/2 ln 2 + 2 * 1/4 ln 4 = 1.5 ln 2 = 1.0397 nats;
    # normalised by ln 4 = 2 ln 2 -> 0.75.
    assert distinct_share(SUGGESTIONS) == pytest.approx(0.75)
    entropy, normalised = suggestion_entropy(SUGGESTIONS)
    assert entropy == pytest.approx(1.5 * math.log(2))
    assert normalised == pytest.approx(0.75)


def test_entropy_of_identical_suggestions_is_zero() -> None:
    assert suggestion_entropy(["ok", "OK", " ok "]) == (0.0, 0.0)


def test_mean_pairwise_distance_on_hand_made_lists() -> None:
    e1, e2 = [1.0, 0.0], [0.0, 1.0]
    lists = [
        # pairs (e1,e2): 1 - 0 = 1; (e1,e1): 0; (e2,e1): 1    -> mean 2/3
        np.array([e1, e2, e1]),
        # cos((1,0), (0.6,0.8)) = 0.6                         -> mean 0.4
        np.array([e1, [0.6, 0.8]]),
        # one item: no pair, skipped
        np.array([e2]),
    ]
    # (2/3 + 0.4) / 2 = 8/15
    assert mean_pairwise_distance(lists) == pytest.approx(8 / 15)
    assert mean_pairwise_distance([np.array([e1])]) == 0.0


def test_vendi_score_on_hand_made_sets() -> None:
    assert vendi_score(np.eye(3)) == pytest.approx(3.0)
    assert vendi_score(np.ones((4, 5))) == pytest.approx(1.0)
    # Rows e1, e1, e2: X^T X / 3 = diag(2/3, 1/3);
    # H = -(2/3 ln 2/3 + 1/3 ln 1/3) = 0.636514, VS = e^H = 1.889882.
    rows = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert vendi_score(rows) == pytest.approx(1.889882, rel=1e-6)


@pytest.mark.filterwarnings(SCIPY_CSR)
@pytest.mark.parametrize(("n", "d", "seed"), [(60, 16, 0), (40, 384, 1), (300, 32, 2)])
def test_vendi_score_agrees_with_the_vendi_score_package(n: int, d: int, seed: int) -> None:
    x = unit_rows(np.random.default_rng(seed), n, d)
    ours = vendi_score(x, sample_size=None)
    kernel = vendi.score_K(x @ x.T)
    dual = vendi.score_dual(x)
    assert ours == pytest.approx(kernel, rel=1e-6)
    assert ours == pytest.approx(dual, rel=1e-6)


def test_vendi_score_scales_rows_itself() -> None:
    x = unit_rows(np.random.default_rng(3), 50, 8)
    scale = np.random.default_rng(4).uniform(0.1, 10, size=(50, 1))
    assert vendi_score(x * scale) == pytest.approx(vendi_score(x))


def test_vendi_score_subsample_is_seeded_and_fixed_in_size() -> None:
    # 600 rows in 600 dimensions, all orthogonal: a subsample of 500 scores exactly 500.
    x = np.eye(600)
    assert vendi_score(x, sample_size=500) == pytest.approx(500.0)
    y = unit_rows(np.random.default_rng(5), 2000, 24)
    assert vendi_score(y, 500, seed=1) == vendi_score(y, 500, seed=1)
    assert vendi_score(y, 500, seed=1) != vendi_score(y, 500, seed=2)


def test_vendi_score_refuses_zero_vectors() -> None:
    with pytest.raises(ValueError, match="zero vector"):
        vendi_score(np.array([[1.0, 0.0], [0.0, 0.0]]))


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 30), st.integers(1, 12)),
        elements=st.floats(-1, 1, allow_nan=False, allow_infinity=False),
    ),
    st.integers(1, 40),
)
def test_vendi_score_lies_between_one_and_the_sample_size(x: np.ndarray, sample: int) -> None:
    # A zero row has no direction (the cosine kernel is undefined); give it one.
    x[np.linalg.norm(x, axis=1) < 1e-3, 0] = 1.0
    score = vendi_score(x, sample_size=sample)
    size = min(len(x), sample)
    assert 1.0 - 1e-9 <= score <= size + 1e-9


words = st.sampled_from(["yes", "no", "sure", "thanks", "ok", "maybe", "later"])
texts = st.lists(st.lists(words, min_size=0, max_size=5).map(" ".join), max_size=20)


@settings(max_examples=100, deadline=None)
@given(texts, st.integers(1, 3))
def test_duplicating_every_suggestion_keeps_the_ngrams_and_halves_distinct_n(
    suggestions: list[str], n: int
) -> None:
    doubled = [text for text in suggestions for _ in range(2)]
    unique, total = distinct_ngrams(suggestions, n)
    assert distinct_ngrams(doubled, n) == (unique, 2 * total)
    assert distinct_n(doubled, n) == pytest.approx(distinct_n(suggestions, n) / 2)


def test_diversity_metrics_split_the_flat_embeddings_per_list() -> None:
    suggestions = [["yes", "no"], ["ok"]]
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    metrics = diversity_metrics(suggestions, embeddings)
    # Only the first list has a pair: orthogonal -> distance 1.
    assert metrics["pairwise_distance"] == pytest.approx(1.0)
    assert metrics["distinct_share"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="add up"):
        diversity_metrics(suggestions, embeddings[:2])
