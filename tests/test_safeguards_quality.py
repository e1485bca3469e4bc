from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from safeguards.quality import MinRelevance
from safeguards.quality import QualityConfig
from safeguards.quality import default_rules
from safeguards.quality import filter_examples


@dataclass(frozen=True)
class Pair:
    message: str
    reply: str


class TableEncoder:
    """Looks vectors up in a table and remembers what it was asked to encode."""

    dim = 2

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        rows = np.array([self.table[t] for t in texts], dtype=np.float32).reshape(-1, 2)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


EXAMPLES = [
    Pair("hello", "   "),  # 0 empty reply
    Pair("How are you?", "how are  YOU?"),  # 1 echoes the message
    Pair("hi", "k"),  # 2 too short
    Pair("hi", "x" * 600),  # 3 too long
    Pair("what time is it", "banana bread recipe"),  # 4 unrelated: cosine 0
    Pair("what time is it", "it is noon"),  # 5 kept: cosine 0.8
    Pair("", ""),  # 6 empty (and an echo: the first rule wins)
]
TABLE = {
    "what time is it": [1.0, 0.0],
    "banana bread recipe": [0.0, 1.0],
    "it is noon": [0.8, 0.6],
}


def test_each_rule_removes_its_examples_and_counts_them() -> None:
    encoder = TableEncoder(TABLE)
    result = filter_examples(EXAMPLES, default_rules(QualityConfig(), encoder))
    assert result.kept == [EXAMPLES[5]]
    assert result.counts == {
        "empty_reply": 2,
        "echoes_message": 1,
        "reply_length": 2,
        "low_relevance": 1,
    }
    assert {r.index: r.rule for r in result.removed} == {
        0: "empty_reply",
        1: "echoes_message",
        2: "reply_length",
        3: "reply_length",
        4: "low_relevance",
        6: "empty_reply",
    }
    assert result.removed[0].example is EXAMPLES[0]


def test_the_encoder_only_sees_what_the_cheap_rules_kept() -> None:
    encoder = TableEncoder(TABLE)
    filter_examples(EXAMPLES, default_rules(QualityConfig(), encoder))
    # Texts of examples 0-3 and 6 are not in the table: looking them up would raise.
    assert set(encoder.seen) == set(TABLE)


def test_thresholds_are_configurable() -> None:
    encoder = TableEncoder({**TABLE, "hi": [1.0, 0.0], "k": [0.0, 1.0], "x" * 600: [0.0, 1.0]})
    loose = QualityConfig(min_reply_chars=1, max_reply_chars=1000, min_relevance=-1.0)
    result = filter_examples(EXAMPLES[2:6], default_rules(loose, encoder))
    assert result.kept == EXAMPLES[2:6]
    assert result.counts["reply_length"] == 0
    strict = [MinRelevance(encoder, threshold=0.9)]
    assert filter_examples([EXAMPLES[5]], strict).counts == {"low_relevance": 1}


def test_without_an_encoder_the_relevance_rule_is_left_out() -> None:
    rules = default_rules(QualityConfig(), None)
    assert [rule.name for rule in rules] == ["empty_reply", "echoes_message", "reply_length"]
    assert filter_examples(EXAMPLES[4:6], rules).kept == EXAMPLES[4:6]


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        QualityConfig(min_reply_chars=10, max_reply_chars=5)
    with pytest.raises(ValueError, match="unique"):
        rules = default_rules(QualityConfig(), None)
        filter_examples(EXAMPLES, [*rules, rules[0]])


def test_no_examples_no_removals() -> None:
    result = filter_examples([], default_rules(QualityConfig(), TableEncoder(TABLE)))
    assert result.kept == []
    assert result.counts == dict.fromkeys(
        ["empty_reply", "echoes_message", "reply_length", "low_relevance"], 0
    )
