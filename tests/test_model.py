"""The suggestion model: encoder cache, training, the two signals, diverse top-k."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.provenance import Provenance
from models.adapter import AdapterConfig
from models.encoder import DiskCache
from models.encoder import Encoder
from models.encoder import EncoderError
from models.reply_rules import ResponseSetConfig
from models.suggester import SuggestionModel
from models.training import TrainingConfig
from models.training import TrainingExample
from models.training import TrainingReport
from models.training import train_model
from worker.settings import Settings

PAIRS = [
    ("Hello", "Hi there!", "greetings"),
    ("Hi, how are you?", "Good, thanks. And you?", "greetings"),
    ("Good morning", "Morning! Sleep well?", "greetings"),
    ("Are we still on for lunch?", "Yes, see you at noon.", "plans"),
    ("Want to grab dinner tonight?", "Sure, where shall we go?", "plans"),
    ("Can we meet tomorrow?", "Tomorrow works for me.", "plans"),
    ("My laptop won't turn on", "Is it charged? Hold the power button for ten seconds.", "tech"),
    ("The wifi keeps dropping", "Try restarting the router.", "tech"),
    ("I forgot my password", "Use the reset link on the sign-in page.", "tech"),
    ("Who won the game last night?", "The home team, two to one.", "sports"),
    ("Do you like football?", "I love watching it on weekends.", "sports"),
    ("Thanks a lot!", "You're welcome!", "chat"),
] * 2


def examples() -> list[TrainingExample]:
    return [TrainingExample(m, r, n) for m, r, n in PAIRS]


# Every reply of these twelve pairs may be served: the response set's rules have their own
# tests (tests/test_response_set.py).
ALL_REPLIES = ResponseSetConfig(max_chars=200, max_words=40, min_support=1)


def train(
    encoder: Encoder, rows: list[TrainingExample], config: AdapterConfig
) -> tuple[SuggestionModel, TrainingReport]:
    return train_model(
        encoder,
        rows,
        config=TrainingConfig(adapter=config, response_set=ALL_REPLIES, target_coverage=1.0),
    )


def test_encoder_is_normalised_and_never_encodes_a_text_twice(encoder: Encoder) -> None:
    texts = [
        "a unique sentence for the cache test",
        "another unique one",
        "a unique sentence for the cache test",
    ]
    before = encoder.encoded_count
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, encoder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[2])
    assert encoder.encoded_count - before == 2
    encoder.encode(texts)
    assert encoder.encoded_count - before == 2


def test_disk_cache_round_trip(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "c.sqlite3", "m:3")
    cache.put({"h1": np.array([1, 2, 3], np.float32)})
    other = DiskCache(tmp_path / "c.sqlite3", "m:3")
    assert other.get(["h1", "h2"])["h1"].tolist() == [1.0, 2.0, 3.0]
    assert DiskCache(tmp_path / "c.sqlite3", "other:3").get(["h1"]) == {}


def test_encoder_refuses_a_folder_that_is_no_model(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="REPLYGUARD_ENCODER__PATH"):
        Encoder(tmp_path)


def test_training_is_reproducible_and_learns(encoder: Encoder) -> None:
    config = AdapterConfig(epochs=15, batch_size=8)
    first, report = train(encoder, examples(), config)
    second, _ = train(encoder, examples(), config)
    assert np.array_equal(first.adapter.weight, second.adapter.weight)
    assert report.epoch_losses[-1] < report.epoch_losses[0]
    assert report.bank_size == 12
    messages = ["are we still meeting for lunch?", "my computer does not start"]
    assert first.suggest_many(messages, k=3) == second.suggest_many(messages, k=3)


def test_suggestions_answer_the_message_and_never_repeat_themselves(encoder: Encoder) -> None:
    model, _ = train(encoder, examples(), AdapterConfig(epochs=15, batch_size=8))
    top = model.suggest("are we still on for lunch today?", k=3)
    assert top[0].text == "Yes, see you at noon."
    assert [s.score for s in top] == sorted((s.score for s in top), reverse=True)
    many = model.suggest("hello!", k=10)
    vectors = model.bank_embeddings[[s.reply_id for s in many]]
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, 0)
    assert sims.max() < model.retrieval.diversity_ceiling
    assert len({s.text for s in many}) == len(many)


def test_niche_hint_moves_that_niches_replies_up(encoder: Encoder) -> None:
    model, _ = train(encoder, examples(), AdapterConfig(epochs=5, batch_size=8))

    def first_sports_rank(niche: str | None) -> int:
        # The whole bank, so a sports reply is ranked somewhere with or without the hint.
        ranked = model.suggest("ok", k=len(model.bank.texts), niche=niche)
        return next(i for i, s in enumerate(ranked) if "sports" in model.bank.niches[s.reply_id])

    assert first_sports_rank("sports") < first_sports_rank(None)


def test_knn_signal_votes_for_replies_of_similar_messages(encoder: Encoder) -> None:
    model, _ = train(encoder, examples(), AdapterConfig(epochs=1, batch_size=8))
    cands = model.candidates(["I forgot my password"])[0]
    best = cands.ids[int(np.argmax(cands.knn))]
    assert model.bank.texts[best] == "Use the reset link on the sign-in page."
    # The vote share, scaled by the nearest message's similarity (in [0, 1]).
    assert 0.0 < cands.knn.sum() <= 1.0 + 1e-6


def test_baseline_reports_weights_chosen_on_held_out_data(
    trained_dir: Path, encoder: Encoder
) -> None:
    from core.db import Database
    from models.artifact import read_manifest
    from models.registry import production
    from tests.helpers import make_settings

    settings: Settings = make_settings(trained_dir)
    database = Database(settings)
    with database.session() as session:
        row = production(session)
        assert row is not None
        manifest = read_manifest(settings.data_dir / row.artifact_path)
    database.dispose()
    assert manifest["generation"] == 0
    assert manifest["parent"] is None
    assert manifest["training"]["provenance_counts"] == {"human": manifest["training"]["examples"]}
    assert manifest["training"]["validation_examples"] > 0
    assert set(manifest["weights"]) >= {"dual", "knn", "prior"}
    assert len(manifest["training"]["fingerprint"]) == 64


def test_adapter_training_gives_back_the_process_thread_count() -> None:
    import torch

    from models.adapter_training import train_adapter

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((40, 8)).astype(np.float32)
        _, losses = train_adapter(
            x,
            x,
            np.arange(40),
            np.ones(40, dtype=np.float32),
            AdapterConfig(epochs=2, batch_size=16),
        )
        # Trained on one thread, then the process's two threads are back for the encoder.
        assert len(losses) == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_triggering_threshold_is_calibrated_on_human_rows_only(encoder: Encoder) -> None:
    # The same 96 rows twice: all written by people, then with every second row the model's
    # own (synthetic rows exist because the parent answered their message: calibrating on
    # them set the threshold for easy messages and cut benchmark coverage by 12%).
    endings = ("please", "today", "again", "now", "for real", "honestly", "then", "ok")
    rows = [TrainingExample(f"{m} {end}", r, n) for end in endings for m, r, n in PAIRS[:12]]
    config = AdapterConfig(epochs=1, batch_size=8)
    _, human_only = train(encoder, rows, config)
    mixed_rows = [
        TrainingExample(
            e.message,
            e.reply,
            e.niche,
            provenance=Provenance.HUMAN if i % 2 == 0 else Provenance.SYNTHETIC,
        )
        for i, e in enumerate(rows)
    ]
    _, mixed = train(encoder, mixed_rows, config)
    assert human_only.validation_examples > 0
    from models.training import _held_out

    expected = sum(
        1 for e, held in zip(mixed_rows, _held_out(mixed_rows), strict=True) if held and e.human
    )
    assert 0 < mixed.validation_examples == expected < human_only.validation_examples
