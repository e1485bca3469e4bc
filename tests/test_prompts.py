"""The intent signal: each intent's prompts (the messages it answers), matched message to
message (models.prompts), in the model, its artifact and the shipped catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.artifact import load_model
from models.artifact import write_model
from models.catalogue import Catalogue
from models.catalogue import Intent
from models.catalogue import Tone
from models.catalogue import load_catalogue
from models.catalogue import validate
from models.encoder import Encoder
from models.prompts import INTENT_MATCH_FLOOR
from models.prompts import IntentMatcher
from models.prompts import IntentPrompts
from models.reply_rules import ResponseSetConfig
from models.suggester import Candidates
from models.suggester import ScoringWeights
from models.training import TrainingConfig
from models.training import TrainingExample
from models.training import train_model
from worker.evaluation import everyday_benchmark

GREETINGS = Catalogue(
    1,
    (
        Intent(
            "good_morning",
            "greetings",
            Tone.POSITIVE,
            None,
            ("Morning to you too", "Morning!"),
            ("morning!!", "good morning, sleep ok?", "rise and shine"),
        ),
        Intent(
            "good_afternoon",
            "greetings",
            Tone.POSITIVE,
            None,
            ("Good afternoon!", "Afternoon!"),
            ("good afternoon", "hope your afternoon is going well"),
        ),
        Intent("laughing", "laughter", Tone.HUMOROUS, None, ("Haha", "Lol that's funny"), ()),
    ),
)


def test_an_intent_scores_the_cosine_to_its_prototype_and_keeps_its_nearest_prompt(
    encoder: Encoder,
) -> None:
    """The signal is the cosine to the normalised mean of the intent's prompts (Snell et al.
    2017); the nearest prompt's cosine is kept beside it for the thresholds of nearness."""
    prompts = IntentPrompts.of(GREETINGS, encoder)
    assert prompts.intents == ("good_morning",) * 3 + ("good_afternoon",) * 2
    codes = {"good_afternoon": 0, "laughing": 1, "good_morning": 2}
    message = encoder.encode(["good morning!"])
    matched = IntentMatcher(prompts, codes, 3).match(message)
    sims = (message @ prompts.embeddings.T)[0]
    morning = prompts.embeddings[:3].sum(axis=0)
    afternoon = prompts.embeddings[3:].sum(axis=0)
    assert matched.signal.shape == matched.nearest.shape == (1, 3)
    assert np.isclose(matched.signal[0, 2], message[0] @ morning / np.linalg.norm(morning))
    assert np.isclose(matched.signal[0, 0], message[0] @ afternoon / np.linalg.norm(afternoon))
    assert np.isclose(matched.nearest[0, 2], sims[:3].max())
    assert np.isclose(matched.nearest[0, 0], sims[3:].max())
    # The mean of several prompts is nearer a paraphrase than most of its prompts are.
    assert matched.signal[0, 2] > np.median(sims[:3])
    assert matched.signal[0, 1] == matched.nearest[0, 1] == 0.0  # no prompts
    # An intent the response set does not serve is left out; no prompts at all: zeros.
    alone = IntentMatcher(prompts, {"laughing": 0}, 1).match(message)
    assert alone.signal.tolist() == alone.nearest.tolist() == [[0.0]]
    empty = IntentMatcher(IntentPrompts.empty(encoder.dim), codes, 3).match(message)
    assert empty.signal.tolist() == empty.nearest.tolist() == [[0.0, 0.0, 0.0]]


def test_a_message_no_prompt_comes_near_matches_no_intent(encoder: Encoder) -> None:
    """Before: keyboard mash matched short prompts ("gm", "mwah") at cosine 0.31-0.45, enough
    with the other signals to reach the triggering threshold."""
    prompts = IntentPrompts.of(GREETINGS, encoder)
    codes = {"good_afternoon": 0, "laughing": 1, "good_morning": 2}
    messages = encoder.encode(["good morning!", "xq zvb wplk qqq jjjx"])
    best = (messages @ prompts.embeddings.T).max(axis=1)
    assert best[0] >= INTENT_MATCH_FLOOR > best[1] > 0
    matched = IntentMatcher(prompts, codes, 3).match(messages)
    assert matched.nearest[0].max() == pytest.approx(best[0]) and matched.signal[0].max() > 0
    assert matched.signal[1].tolist() == matched.nearest[1].tolist() == [0.0] * 3


def test_prompts_rank_the_intent_that_answers_above_replies_that_sound_alike(
    encoder: Encoder, tmp_path: Path
) -> None:
    """Matched on the replies' texts alone, "good morning!" is nearer "Good afternoon!" than
    "Morning to you too"; the prompts put the intent that answers it first, and the
    model's artifact keeps them."""
    rows = [TrainingExample("hello there", "Hi!", "chat")] * 4
    config = TrainingConfig(
        response_set=ResponseSetConfig(min_support=1), target_coverage=1.0, catalogue=GREETINGS
    )
    model, _ = train_model(encoder, rows, config=config)
    plain = encoder.encode(["good morning!", "Good afternoon!", "Morning to you too"])
    assert plain[0] @ plain[1] > plain[0] @ plain[2]
    assert model.suggest("good morning!", k=1)[0].intent == "good_morning"
    assert len(model.prompts) == 5

    write_model(model, tmp_path / "v1", {})
    loaded, _ = load_model(tmp_path / "v1", encoder)
    assert loaded.prompts.texts == model.prompts.texts
    assert np.array_equal(loaded.prompts.embeddings, model.prompts.embeddings)
    assert loaded.weights == model.weights
    assert model.tone.classifier is not None and loaded.tone.classifier is not None
    assert np.array_equal(loaded.tone.classifier.coef, model.tone.classifier.coef)
    assert loaded.suggest("good morning!", k=3) == model.suggest("good morning!", k=3)


def test_a_model_written_before_prompts_loads_without_the_intent_signal(
    encoder: Encoder, tmp_path: Path
) -> None:
    """Its triggering threshold was chosen without the intent signal's weight, so it scores
    as it did: weight 0, no prompts."""
    rows = [TrainingExample("hello there", "Hi!", "chat")] * 4
    config = TrainingConfig(
        response_set=ResponseSetConfig(min_support=1), target_coverage=1.0, catalogue=GREETINGS
    )
    model, _ = train_model(encoder, rows, config=config)
    write_model(model, tmp_path / "old", {})
    manifest = json.loads((tmp_path / "old" / "manifest.json").read_text())
    del manifest["weights"]["intent"]
    for name in ("prompts.json", "prompt_embeddings.npy", "tone.json"):
        (tmp_path / "old" / name).unlink()
        del manifest["files"][name]
    (tmp_path / "old" / "manifest.json").write_text(json.dumps(manifest))
    loaded, _ = load_model(tmp_path / "old", encoder)
    assert loaded.weights.intent == 0.0
    assert len(loaded.prompts) == 0
    assert loaded.tone.classifier is None  # the nearest-prototype rule
    assert all(c.intent.max(initial=0.0) == 0.0 for c in loaded.candidates(["good morning!"]))


def test_a_prompt_too_long_or_repeated_is_a_catalogue_problem() -> None:
    intent = GREETINGS.intents[0]
    bad = Catalogue(
        1,
        (
            Intent(
                intent.name,
                intent.group,
                intent.tone,
                None,
                intent.replies,
                ("x" * 121, "Morning!!", "morning", " "),
            ),
        ),
    )
    problems = validate(bad)
    assert sum("a prompt is one line of text of 1 to 120 characters" in p for p in problems) == 2
    assert any("repeats the prompt 'morning'" in p for p in problems)


def test_every_shipped_intent_has_prompts_none_copied_from_the_everyday_benchmark(
    encoder: Encoder,
) -> None:
    """The everyday benchmark measures the prompts' effect, so it must stay held out: no
    prompt is within cosine 0.9 of one of its messages (54 written independently were, and
    were taken out)."""
    catalogue = load_catalogue()
    assert min(len(i.prompts) for i in catalogue.intents) >= 2
    prompts = IntentPrompts.of(catalogue, encoder)
    messages = encoder.encode(everyday_benchmark().texts())
    nearest = (messages @ prompts.embeddings.T).max(axis=0)
    close = [t for t, s in zip(prompts.texts, nearest, strict=True) if s >= 0.9]
    assert not close


def test_a_reply_of_an_intent_without_prompts_is_scored_by_the_other_signals_alone() -> None:
    """A reviewer's new intent has no prompts: its intent signal is unknown, not 0. Counted as
    0 at weight 3 it scored a quarter of its dual score and was never shown (the test of a
    reviewer's new intent in tests/test_response_set.py caught it)."""
    zeros = np.zeros(2, dtype=np.float32)
    candidates = Candidates(
        ids=np.array([0, 1]),
        dual=np.array([0.6, 0.6], dtype=np.float32),
        knn=zeros,
        prior=zeros,
        intent=np.array([0.0, 0.5], dtype=np.float32),
        nearest_prompt=np.array([0.0, 0.55], dtype=np.float32),
        prompted=np.array([False, True]),
    )
    weights = ScoringWeights(dual=1.0, knn=0.0, prior=0.0, intent=3.0)
    assert candidates.normalised(weights).tolist() == pytest.approx([0.6, (0.6 + 1.5) / 4])
    assert candidates.ranked(weights).tolist() == [0, 1]


def test_the_intent_signal_counts_for_every_reply_of_a_message_no_intent_matches(
    encoder: Encoder,
) -> None:
    """A reply of an intent without prompts is scored without the intent signal only when
    the message matches some intent; a message no prompt comes near (the floor) is evidence
    against every intent, so its unprompted replies are not lifted above the others (before:
    "the derivative of x squared is two x" got the mined reply "2", above the threshold)."""
    rows = [TrainingExample("hello there", "Hi!", "chat")] * 4
    config = TrainingConfig(
        response_set=ResponseSetConfig(min_support=1), target_coverage=1.0, catalogue=GREETINGS
    )
    model, _ = train_model(encoder, rows, config=config)
    greeting, mash = model.candidates(["good morning!", "xq zvb wplk qqq jjjx"])
    with_prompts = {"good_morning", "good_afternoon"}
    expected = [model.bank.intents[i] in with_prompts for i in greeting.ids]
    assert greeting.prompted.tolist() == expected and not all(expected)  # "Haha", "Hi!"
    assert mash.prompted.all() and not mash.intent.any()
