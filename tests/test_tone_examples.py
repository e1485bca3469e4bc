"""The tone classifier's packaged examples (models/tone_examples.tsv): well formed, both kinds
well represented, and kept apart from every set the detector is measured on."""

from __future__ import annotations

from collections import Counter

from models.encoder import Encoder
from models.tone import tone_examples
from tests.test_intents import labelled
from worker.evaluation import everyday_benchmark


def test_the_examples_hold_both_kinds_many_situations_and_no_repeat() -> None:
    texts, sad, kinds = tone_examples()
    assert len(texts) == len(sad) == len(kinds) >= 900
    assert int(sad.sum()) >= 450 and int((~sad).sum()) >= 450
    assert len({t.casefold() for t in texts}) == len(texts)
    assert all(t.strip() and "\t" not in t for t in texts)
    per_kind = Counter(zip(sad.tolist(), kinds, strict=True))
    assert len({k for s, k in per_kind if s}) >= 25 and len({k for s, k in per_kind if not s}) >= 25
    assert max(per_kind.values()) <= 40


def test_no_example_comes_near_a_message_the_detector_is_measured_on(encoder: Encoder) -> None:
    """The held-out figures stay held out: no example within cosine 0.9 of a message of
    tests/data/tone_messages.tsv, tests/data/tone_heldout.tsv or the everyday benchmark (32
    written for the file were, and were taken out)."""
    texts, _, _ = tone_examples()
    measured = [
        *labelled("tone_messages.tsv")[0],
        *labelled("tone_heldout.tsv")[0],
        *everyday_benchmark().texts(),
    ]
    nearest = (encoder.encode(texts) @ encoder.encode(measured).T).max(axis=1)
    close = [t for t, s in zip(texts, nearest, strict=True) if s >= 0.9]
    assert not close
