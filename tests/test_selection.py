"""Model selection at training (models.selection): a trained model never ranks held-out real
replies worse than the plain encoder (1-of-100, Henderson et al. 2019), an adapter that helps
is chosen, and both figures are recorded; bench.quality imports files that name no
provenance. The real encoder throughout (tests/conftest.py loads it once)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from bench.quality import check_data
from bench.quality import main as quality_main
from core.db import Database
from core.demo import chatterbot_rows
from core.ingest import import_file
from core.provenance import Provenance
from core.ranking import first_place_share
from core.ranking import one_of_100
from core.ranking import ranking_batch
from core.ranking import ranking_columns
from core.schema import Example
from models.adapter import AdapterConfig
from models.artifact import read_manifest
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import production
from models.reply_rules import ResponseSetConfig
from models.selection import SelectionConfig
from models.suggester import ScoringWeights
from models.training import Inherited
from models.training import TrainingConfig
from models.training import TrainingExample
from models.training import TrainingReport
from models.training import _held_out
from models.training import train_model
from safeguards.metrics import gated_by_default
from safeguards.metrics import metric_spec
from tests.helpers import make_settings
from worker.settings import Settings

ALL_REPLIES = ResponseSetConfig(max_chars=300, max_words=60, min_support=1)


def config(adapter: AdapterConfig) -> TrainingConfig:
    return TrainingConfig(adapter=adapter, response_set=ALL_REPLIES, target_coverage=1.0)


def held_out_plain(encoder: Encoder, examples: list[TrainingExample], seed: int) -> float:
    """The plain encoder's 1-of-100 on the held-out tenth, computed here on its own."""
    held = [e for e, h in zip(examples, _held_out(examples), strict=True) if h]
    scores = encoder.encode([e.message for e in held]) @ encoder.encode([e.reply for e in held]).T
    return one_of_100(scores, seed, ranking_batch(len(held)))


def test_one_of_100_ranks_each_real_reply_among_its_batch() -> None:
    rng = np.random.default_rng(0)
    n = 250
    columns = ranking_columns(n, seed=3)
    # Each message's own reply first, then 99 others of its batch, none twice.
    assert columns.shape == (n, 100)
    assert np.array_equal(columns[:, 0], np.arange(n))
    assert all(len(set(row)) == 100 for row in columns)
    perfect = np.eye(n) + rng.uniform(0, 0.5, (n, n))
    assert one_of_100(perfect, seed=3) == 1.0
    # Every reply alike: a tie for first among 100, 1/100 each.
    assert one_of_100(np.ones((n, n)), seed=3) == pytest.approx(0.01)
    # The real reply always second best: never first.
    second = perfect.copy()
    second[np.arange(n), columns[:, 1]] = 2.0
    assert one_of_100(second, seed=3) == 0.0
    assert first_place_share(np.array([[1.0, 1.0, 0.0], [0.5, 0.7, 0.1]])) == 0.25
    with pytest.raises(ValueError, match="at least 100"):
        one_of_100(np.eye(99), seed=3)
    assert ranking_batch(40) == 40 and ranking_batch(1000) == 100 and ranking_batch(1) == 0


def noisy_examples() -> list[TrainingExample]:
    """Real chatterbot pairs; outside the held-out tenth every reply is another message's
    (noisy labels), so the adapter can only learn pairs that are not how anyone replies."""
    rows = [example for _, example in chatterbot_rows()]
    seen: set[str] = set()
    distinct = []
    for e in rows:
        if e.message.lower() not in seen and e.reply.lower() not in seen:
            seen.update((e.message.lower(), e.reply.lower()))
            distinct.append(TrainingExample(e.message, e.reply, e.niche))
    examples = distinct[:900]
    held = _held_out(examples)
    train_rows = [i for i, h in enumerate(held) if not h]
    shuffled = np.roll(np.asarray(train_rows), 7)
    out = list(examples)
    for i, j in zip(train_rows, shuffled, strict=True):
        out[i] = TrainingExample(examples[i].message, examples[j].reply, examples[i].niche)
    return out


def test_an_adapter_that_over_fits_is_never_returned(encoder: Encoder) -> None:
    examples = noisy_examples()
    assert _held_out(examples).sum() >= 60
    adapter = AdapterConfig(epochs=30, batch_size=32, learning_rate=0.02)
    model, report = train_model(encoder, examples, config=config(adapter))
    selection = report.selection
    assert selection is not None
    figures = selection.as_dict()
    # Training did over-fit: the map trained for 30 epochs ranks below the plain encoder...
    trained = next(c for c in figures["checkpoints"] if c["epochs"] == 30 and c["scale"] == 1.0)
    assert trained["dual_one_of_100"] < figures["held_out_plain_one_of_100"] - 0.05
    # ... and is not what training returns: the plain encoder's tower, the identity map.
    assert figures["epochs"] == 0 and figures["form"] == "identity"
    assert not model.adapter.weight.any() and not model.adapter.bias.any()
    assert figures["held_out_one_of_100"] >= figures["held_out_plain_one_of_100"]
    seed = SelectionConfig().seed
    assert figures["held_out_plain_one_of_100"] == pytest.approx(
        held_out_plain(encoder, examples, seed)
    )


def test_kept_weights_under_which_every_adapter_is_worse_fall_back_to_the_plain_encoder(
    encoder: Encoder,
) -> None:
    examples = noisy_examples()
    adapter = AdapterConfig(epochs=4, batch_size=32, learning_rate=0.02)
    # Only the nearest-message vote, kept (as a generation keeps its parent's weights): it
    # cannot rank replies outside the bank, so no adapter reaches the plain encoder.
    kept = ScoringWeights(dual=0.0, knn=1.0, prior=0.0)
    model, report = train_model(
        encoder, examples, config=config(adapter), inherited=Inherited(weights=kept)
    )
    assert report.selection is not None
    figures = report.selection.as_dict()
    assert figures["fell_back_to_plain_encoder"] is True
    assert (model.weights.dual, model.weights.knn, model.weights.prior) == (1.0, 0.0, 0.0)
    assert figures["held_out_one_of_100"] == figures["held_out_plain_one_of_100"]


# Messages of ten topics, each answered with a sentence about the next topic: a mapping the
# plain encoder cannot rank (it prefers replies about the message's own topic), the adapter can.
TOPICS = [
    ("Will it rain in the {} this weekend?", "The {} forecast says a storm is coming."),
    ("Who won the football match in the {}?", "Our {} team scored twice in the final."),
    ("What should I cook for dinner in the {}?", "Try a spicy {} curry with rice."),
    ("My car broke down near the {}.", "The {} garage can change the tyre today."),
    ("Which band is playing at the {} tonight?", "The {} orchestra plays jazz at eight."),
    ("How long is the flight to the {}?", "The {} train leaves from platform two."),
    ("Did you finish the homework for the {} class?", "The {} teacher moved the exam."),
    ("I have a fever since the {} trip.", "The {} doctor can see you at noon."),
    ("How much did the {} apartment cost?", "The {} bank raised its interest rate."),
    ("Can you walk the dog in the {}?", "The {} cat is asleep on the sofa."),
]
PLACES = [
    "north", "south", "harbour", "valley", "old town", "suburbs", "island", "capital",
    "village", "mountains", "coast", "river", "park", "market", "airport", "campus",
    "station", "forest", "bay", "lake", "desert", "hills", "city centre", "countryside",
    "east side", "west end", "port", "canyon", "highlands", "marina",
]  # fmt: skip
FILLERS = [
    "red", "blue", "green", "golden", "silver", "small", "big", "new", "old", "quiet",
    "busy", "happy", "lucky", "brave", "calm", "wild", "bright", "dark", "warm", "cold",
    "early", "late", "local", "royal", "modern", "classic", "famous", "secret", "tiny", "grand",
]  # fmt: skip


def mapped_examples() -> list[TrainingExample]:
    out = []
    for t, (message, _) in enumerate(TOPICS):
        reply = TOPICS[(t + 1) % len(TOPICS)][1]
        for place, filler in zip(PLACES, FILLERS, strict=True):
            out.append(TrainingExample(message.format(place), reply.format(filler), f"topic{t}"))
    return out


def test_an_adapter_that_helps_is_chosen(encoder: Encoder) -> None:
    examples = mapped_examples()
    assert _held_out(examples).sum() >= 20
    model, report = train_model(encoder, examples, config=config(AdapterConfig(epochs=30)))
    assert report.selection is not None
    figures = report.selection.as_dict()
    assert figures["epochs"] > 0 and figures["form"] != "identity"
    assert model.adapter.weight.any()
    assert figures["held_out_one_of_100"] > figures["held_out_plain_one_of_100"] + 0.1
    # The chosen one is the best candidate scored, and the report lists them best first.
    best = figures["checkpoints"][0]
    assert best["one_of_100"] == figures["held_out_one_of_100"]
    assert (best["epochs"], best["form"]) == (figures["epochs"], figures["form"])
    assert isinstance(report, TrainingReport) and report.weights == model.weights
    # The model scores any (message, reply) pair; 1-of-100 needs only each message's batch.
    messages = encoder.encode([e.message for e in examples[:150]])
    replies = encoder.encode([e.reply for e in examples[:150]])
    texts = [e.reply for e in examples[:150]]
    columns = ranking_columns(150, seed=5)
    every = model.pair_scores(messages, replies, texts)
    assert every.shape == (150, 150)
    block = model.pair_scores(messages, replies, texts, columns)
    assert np.allclose(np.take_along_axis(every, columns, axis=1), block, atol=1e-6)
    assert one_of_100(every, seed=5) == first_place_share(block)


def test_training_and_evaluation_record_both_figures(trained_dir: Path) -> None:
    settings: Settings = make_settings(trained_dir)
    database = Database(settings)
    with database.session() as session:
        row = production(session)
        assert row is not None
        manifest = read_manifest(artifact_dir(settings, row))
        stored = row.evaluation["evaluation"]
    database.dispose()
    selection = manifest["training"]["selection"]
    assert selection["held_out_one_of_100"] >= selection["held_out_plain_one_of_100"] > 0
    assert selection["held_out_messages"] == manifest["training"]["validation_examples"]
    assert selection["form"] in {"identity", "residual", "residual x0.5"}
    assert manifest["weights"]["dual"] == selection["weights"]["dual"]
    metrics = {m["name"]: m for m in stored["metrics"]}
    for name in ("held_out_one_of_100", "held_out_plain_one_of_100"):
        assert metrics[name]["value"] == selection[name]
        assert metrics[name]["kind"] == "relevance"
    # The benchmark's pair, on the same batches.
    assert 0 < metrics["one_of_100"]["value"] <= 1
    assert 0 < metrics["plain_one_of_100"]["value"] <= 1
    assert stored["details"]["training_selection"]["epochs"] == selection["epochs"]


def test_the_ranking_figures_are_not_gated() -> None:
    for name in ("one_of_100", "plain_one_of_100", "held_out_one_of_100"):
        spec = metric_spec(name)
        assert spec is not None and spec.kind == "relevance" and "1-of-100" in spec.label
        assert not gated_by_default(name, spec.kind)
    assert metric_spec("held_out_plain_one_of_100") is not None


def test_bench_quality_imports_pairs_without_a_provenance_column(
    tmp_path: Path, empty_db: Database
) -> None:
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"message": f"hi {i}", "reply": f"hello {i}"}) + "\n" for i in range(3))
    )
    csv = tmp_path / "pairs.csv"
    csv.write_text("message,reply\nhow are you,fine thanks\nsee you,bye\n")
    for path in (jsonl, csv):
        assert check_data(path, Provenance.HUMAN, skip_invalid=False) is None
        with empty_db.session() as session:
            report = import_file(session, path, Provenance.HUMAN, skip_invalid=False)
        assert report.added == (3 if path == jsonl else 2)
    with empty_db.session() as session:
        provenances = set(session.scalars(select(Example.provenance)))
    assert provenances == {"human"}


def test_bench_quality_refuses_bad_rows_naming_its_own_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("message,reply\nhi,hello\nno reply here,\n")
    monkeypatch.setattr(
        sys, "argv", ["quality", "--data", str(bad), "--data-dir", str(tmp_path / "d")]
    )
    with pytest.raises(SystemExit) as stopped:
        quality_main()
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "line 3" in error and "--skip-invalid" in error
    # Only options it has: no --provenance hint (it defaults to human), nothing trained.
    assert "--provenance" not in error
    assert not (tmp_path / "d").exists()
    assert check_data(bad, Provenance.HUMAN, skip_invalid=True) is None
