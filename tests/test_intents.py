"""The response set organised by intent: catalogue replies served, mined replies joining
intents by propagation, lists of different intents, a "no" beside a "yes", tone and
triggering on every suggestion. On a real trained model (the demo folder's production model,
trained with the catalogue) and the real encoder."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.db import Database
from models.artifact import load_model
from models.bank import Source
from models.catalogue import Stance
from models.catalogue import Tone
from models.catalogue import load_catalogue
from models.encoder import Encoder
from models.intents import is_unnamed
from models.intents import propagate
from models.registry import artifact_dir
from models.registry import production
from models.reply_rules import Curation
from models.reply_rules import ResponseSetConfig
from models.reply_rules import refusal
from models.reply_rules import surface_key
from models.response_set import ReplyRows
from models.response_set import build_response_set
from models.suggester import Suggestion
from models.suggester import SuggestionModel
from models.suggester import Triggering
from models.tone import UNSURE_THRESHOLD
from tests.helpers import make_settings

# One message of each kind of sad news the issue names, and more of the same kinds.
SAD_NEWS = {
    # "we lost the baby" got "Congrats on the baby!" until the lexicon read "lost the".
    "death": ["my grandma passed away this morning", "my dad died last night", "we lost the baby"],
    "illness": ["I've been diagnosed with cancer", "my mum is in hospital with pneumonia"],
    "lost job": ["I got laid off today", "I lost my job this morning"],
    "breakup": ["my girlfriend broke up with me", "we're getting divorced"],
}
EVERYDAY = [
    "thanks so much for your help yesterday",
    "I got the job!!!",
    "are you coming to the party on saturday?",
    "good morning!",
    "haha that's hilarious",
    "running late, sorry",
    "where are you?",
    "happy birthday!!",
]


@pytest.fixture(scope="module")
def trained(trained_dir: Path, encoder: Encoder) -> tuple[SuggestionModel, dict[str, Any]]:
    """The demo folder's production model (trained with the catalogue), and its manifest."""
    settings = make_settings(trained_dir)
    db = Database(settings)
    with db.session() as session:
        row = production(session)
        assert row is not None
        loaded = load_model(artifact_dir(settings, row), encoder, row.checksum)
    db.dispose()
    return loaded


@pytest.fixture(scope="module")
def model(trained: tuple[SuggestionModel, dict[str, Any]]) -> SuggestionModel:
    return trained[0]


@pytest.mark.parametrize("kind", sorted(SAD_NEWS))
def test_sad_news_gets_sympathetic_suggestions_or_none(kind: str, model: SuggestionModel) -> None:
    for message in SAD_NEWS[kind]:
        assert model.is_sensitive(message), message
        listed = model.suggest(message, k=5)
        tones = [model.bank.tones[s.reply_id] for s in listed]
        assert all(t == Tone.SYMPATHETIC.value for t in tones), (message, listed, tones)
    # The catalogue's sympathy is there to be offered: the death gets some.
    if kind == "death":
        shown = model.triggering.shown(model.suggest(SAD_NEWS[kind][0], k=3))
        assert shown, "no sympathetic reply reached the threshold for a death"


# Sympathy written for one kind of news (models.catalogue: not ``general``).
FOR_A_DEATH = {"sorry_for_your_loss", "condolences", "rest_in_peace"}
FOR_AN_ILLNESS = {"get_well_soon", "rest_up", "feeling_better_question"}


def test_news_of_one_kind_gets_no_sympathy_written_for_another(model: SuggestionModel) -> None:
    """Before: "dad had a stroke last night" got "I'm so sorry for your loss", a lost job
    "Get some rest" (the death's replies are the nearest sympathy to much sad news)."""
    more = {
        "illness": ["my uncle had a stroke, he's in intensive care", "dad's having heart surgery"],
        "lost job": ["they made my whole team redundant"],
        "breakup": ["she left me last night"],
    }
    for kind, messages in SAD_NEWS.items():
        wrong = (set() if kind == "death" else FOR_A_DEATH) | (
            set() if kind == "illness" else FOR_AN_ILLNESS
        )
        for message in [*messages, *more.get(kind, [])]:
            intents = {s.intent for s in model.suggest(message, k=5)}
            assert not intents & wrong, (message, intents & wrong)
    # Close to the news it is written for, it is offered.
    assert FOR_A_DEATH & {s.intent for s in model.suggest("my dad died this morning", k=5)}


def test_a_message_that_may_be_sad_news_gets_no_suggestion(model: SuggestionModel) -> None:
    """Before: "my marriage is over" or "we lost the baby", which the classifier puts below
    its threshold, got ordinary suggestions ("Congrats on the baby!")."""
    messages = [
        "my marriage is over",
        "im not ok",
        "my sister won't talk to me anymore",
        "my brother's been arrested",
        "see you at 8",
    ]
    embeddings = model.encoder.encode(messages)
    sensitive, unsure = model.tone.judge_many(messages, embeddings)
    assert model.tone.classifier is not None
    probability = model.tone.classifier.probability(embeddings)
    assert unsure.any() and not unsure[-1]
    for message, p, s, u in zip(messages, probability, sensitive, unsure, strict=True):
        assert u == (not s and p >= UNSURE_THRESHOLD), message
        if u:
            assert model.suggest(message, k=5) == [], message
    assert model.suggest("see you at 8", k=3)


def test_without_the_tone_rule_sad_news_would_get_other_tones(model: SuggestionModel) -> None:
    # What the tone rule removes: the nearest replies by score alone are not all sympathetic.
    message = "I got laid off today"
    cands = model.candidates([message])[0]
    scores = cands.normalised(model.weights)
    top = cands.ids[np.argsort(-scores)[:20]]
    assert {model.bank.tones[int(r)] for r in top} != {Tone.SYMPATHETIC.value}


def test_other_messages_never_get_sympathy(model: SuggestionModel) -> None:
    listed = model.suggest_many([*EVERYDAY, "I passed my driving test", "my phone died"], k=5)
    tones = {model.bank.tones[s.reply_id] for row in listed for s in row}
    assert Tone.SYMPATHETIC.value not in tones
    assert len(tones) > 1


def test_idioms_and_good_news_are_not_sensitive(model: SuggestionModel) -> None:
    for message in (
        "I'm dying to see it",
        "this traffic is killing me",
        "my phone died",
        "I got the job!!!",
    ):
        assert not model.is_sensitive(message), message


def test_a_list_never_holds_two_replies_of_one_intent(model: SuggestionModel) -> None:
    for listed in model.suggest_many(EVERYDAY, k=6):
        intents = [model.bank.intents[s.reply_id] for s in listed]
        assert len(intents) == len(set(intents)), intents
    # Given two replies of one intent as the two best candidates, the list keeps one.
    thanks = [i for i, name in enumerate(model.bank.intents) if name == "thanks"]
    other = model.bank.intents.index("good_morning")
    assert len(thanks) >= 2
    listed = model._diverse(np.asarray([*thanks[:2], other]), np.asarray([0.9, 0.8, 0.7]), 3)
    assert [s.reply_id for s in listed] == [thanks[0], other]


def test_a_yes_first_list_carries_a_no_when_one_is_a_candidate(model: SuggestionModel) -> None:
    stances = model.bank.stances
    yes = next(i for i, s in enumerate(stances) if s == Stance.YES.value)
    no = next(i for i, s in enumerate(stances) if s == Stance.NO.value)
    others = [
        i
        for i, s in enumerate(stances)
        if s is None and model.bank.intents[i] not in {model.bank.intents[yes]}
    ][:3]
    ids = np.asarray([yes, *others, no])
    high = model.triggering.threshold + 0.05
    scores = np.asarray([high + 0.4, high + 0.3, high + 0.2, high + 0.1, high])
    listed = model._diverse(ids, scores, 3)
    assert [s.reply_id for s in listed] == [yes, no, others[0]]
    # A "no" below the threshold is not offered: every suggestion shown reaches it.
    low = np.asarray([*scores[:-1], model.triggering.threshold - 0.01])
    assert no not in [s.reply_id for s in model._diverse(ids, low, 3)]
    # Nor when the first does not say yes.
    first_other = model._diverse(np.asarray([others[0], yes, no]), scores[:3], 3)
    assert [s.reply_id for s in first_other] == [others[0], yes, no][:3]


def test_every_shown_suggestion_reaches_the_threshold() -> None:
    triggering = Triggering(threshold=0.3, target_coverage=0.8)
    listed = [Suggestion(1, "a", 0.5), Suggestion(2, "b", 0.2), Suggestion(3, "c", 0.1)]
    assert triggering.answers(listed)
    assert [s.reply_id for s in triggering.shown(listed)] == [1]
    assert not triggering.answers(listed[1:])
    assert triggering.shown(listed[1:]) == []


@pytest.mark.integration
def test_the_api_shows_only_suggestions_that_reach_the_threshold(
    client: Any, client_headers: dict[str, str]
) -> None:
    below = 0
    # Messages like nothing the intents answer, too, whose lists run below the threshold.
    odd = ["the mitochondria is the powerhouse of the cell", "invoice 44 attached as pdf"]
    for message in [*EVERYDAY, *(m for ms in SAD_NEWS.values() for m in ms), *odd]:
        ask = {"message": message, "k": 10}
        answer = client.post("/v1/suggestions", json=ask, headers=client_headers).get_json()
        forced = client.post(
            "/v1/suggestions", json={**ask, "force": True}, headers=client_headers
        ).get_json()
        assert all(s["score"] >= answer["threshold"] for s in answer["suggestions"])
        assert answer["triggered"] == bool(answer["suggestions"])
        below += sum(s["score"] < answer["threshold"] for s in forced["suggestions"])
    # Forced lists hold suggestions below the threshold, so the filter had work to do.
    assert below > 0


def test_catalogue_replies_are_served_with_their_intent_and_source(
    trained: tuple[SuggestionModel, dict[str, Any]], trained_dir: Path
) -> None:
    model, manifest = trained
    catalogue = load_catalogue()
    served = {surface_key(t): i for i, t in enumerate(model.bank.texts)}
    config = make_settings(trained_dir).response_set
    passing = [
        (intent, reply)
        for intent, reply in catalogue.replies()
        if refusal(reply, config, Curation()) is None
    ]
    assert len(passing) >= 600
    for intent, reply in passing:
        bank_id = served[surface_key(reply)]
        assert model.bank.intents[bank_id] == intent.name
        assert model.bank.tones[bank_id] == intent.tone.value
        assert model.bank.sources[bank_id] in (Source.CATALOGUE.value, Source.CURATED.value)
    report = manifest["training"]["response_set"]
    assert report["catalogue"] == len(passing)
    assert report["intents"] == len(catalogue)
    assert {u["intent"] for u in report["unnamed"]} <= set(model.bank.intents)
    # Served, not only stored: everyday thanks gets a catalogue reply among its three.
    listed = model.suggest("thank you so much for your help!", k=3)
    assert Source.CATALOGUE.value in [model.bank.sources[s.reply_id] for s in listed]


def test_a_mined_paraphrase_of_a_catalogue_reply_joins_that_intent(encoder: Encoder) -> None:
    replies = ["thank you so so much"] * 3 + ["hope u feel better soon"] * 3
    replies += ["i'm from ohio"] * 3
    rows = len(replies)
    built = build_response_set(
        ReplyRows(
            replies=replies,
            embeddings=encoder.encode(replies),
            niches=["chat"] * rows,
            conversations=[f"c{i}" for i in range(rows)],
            human=[True] * rows,
        ),
        config=ResponseSetConfig(),
        curation=Curation(),
        encode=encoder.encode,
        catalogue=load_catalogue(),
    )
    bank = built.bank
    by_text = {t: i for i, t in enumerate(bank.texts)}
    thanks = by_text["thank you so so much"]
    assert (bank.intents[thanks], bank.sources[thanks]) == ("thanks", Source.MINED.value)
    assert bank.tones[thanks] == Tone.POSITIVE.value
    assert bank.intents[by_text["hope u feel better soon"]] == "get_well_soon"
    assert bank.tones[by_text["hope u feel better soon"]] == Tone.SYMPATHETIC.value
    ohio = by_text["i'm from ohio"]
    assert is_unnamed(bank.intents[ohio])
    assert bank.tones[ohio] == "unknown"
    assert built.report.joined == 2
    assert [u["replies"] for u in built.report.unnamed] == [["i'm from ohio"]]
    # Its rows vote for it (the nearest-message signal), and the catalogue's are served too.
    assert (built.row_ids[:3] == thanks).all()
    assert built.report.catalogue > 600


def test_propagation_joins_paraphrases_and_keeps_strangers_apart(encoder: Encoder) -> None:
    seeds = encoder.encode(["Thanks!", "Thank you so much!", "Good morning!", "Morning!"])
    mined = encoder.encode(["thank you very much", "good morning to you", "my dog is called rex"])
    found = propagate(seeds, np.asarray([0, 0, 1, 1]), 2, mined)
    assert found.labels.tolist() == [0, 1, -1]
    assert found.mass[2] < 0.5 <= found.mass[:2].min()


def test_an_old_artifact_without_intents_still_loads(
    trained_dir: Path, encoder: Encoder, tmp_path: Path
) -> None:
    settings = make_settings(trained_dir)
    db = Database(settings)
    with db.session() as session:
        row = production(session)
        assert row is not None
        source = artifact_dir(settings, row)
    db.dispose()
    old_format = tmp_path / "old-format"
    shutil.copytree(source, old_format)
    # As an artifact written before intents: bank.json holds texts and niches only.
    bank_path = old_format / "bank.json"
    bank = json.loads(bank_path.read_text())
    bank_path.write_text(json.dumps({"texts": bank["texts"], "niches": bank["niches"]}))
    manifest_path = old_format / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["bank.json"] = hashlib.sha256(bank_path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    old, _ = load_model(old_format, encoder)
    assert all(is_unnamed(i) for i in old.bank.intents)
    assert len(set(old.bank.intents)) == len(set(map(surface_key, old.bank.texts)))
    assert set(old.bank.tones) == {"unknown"}
    assert set(old.bank.sources) == {Source.MINED.value}
    listed = old.suggest("thanks so much for your help yesterday", k=3)
    assert len(listed) == 3
    # No reply of unknown tone answers a sensitive message.
    assert old.suggest("my grandma passed away this morning", k=3) == []


def labelled(name: str) -> tuple[list[str], np.ndarray]:
    """The messages of tests/data/<name> and whether each is sensitive."""
    rows = [
        line.split("\t")
        for line in (Path(__file__).parent / "data" / name).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return [message for _, _, message in rows], np.asarray([label == "1" for label, _, _ in rows])


@pytest.mark.parametrize(
    ("name", "precision", "recall"),
    # Measured: 0.948 / 0.973 on the set the thresholds were chosen with, and 0.842 / 0.842 on
    # the one written apart from everything (0.819 / 0.792 before the classifier learned from
    # models/tone_examples.tsv; the nearest-prototype rule there: 0.823 / 0.658).
    [("tone_messages.tsv", 0.93, 0.95), ("tone_heldout.tsv", 0.82, 0.82)],
)
def test_the_served_tone_detector_on_labelled_messages(
    model: SuggestionModel, name: str, precision: float, recall: float
) -> None:
    """The detector a model serves with: the lexicon, and the classifier trained on the
    catalogue's prompts (docs/benchmarks.md, "Tone classifier")."""
    assert model.tone.classifier is not None
    texts, labels = labelled(name)
    found = model.tone.sensitive_many(texts, model.encoder.encode(texts))
    hits = int((found & labels).sum())
    assert hits / max(int(found.sum()), 1) >= precision
    assert hits / int(labels.sum()) >= recall
