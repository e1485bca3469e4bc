"""The response set: only replies written by many, free of personal data, never injected text;
curation and blocks take effect at once; triggering abstains when the model is not sure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from core.db import Database
from core.schema import AuditEntry
from core.schema import Generation
from models.artifact import load_model
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import get_version
from models.reply_rules import Block
from models.reply_rules import CuratedReply
from models.reply_rules import Curation
from models.reply_rules import ResponseSetConfig
from models.response_set import ReplyRows
from models.response_set import ResponseSet
from models.response_set import build_response_set
from models.suggester import NO_REPLY_FITS
from models.suggester import Suggestion
from models.suggester import Triggering
from tests.helpers import FAST_TRAINING
from worker.context import PipelineContext
from worker.pipeline import run_generation
from worker.pipeline import start_generation
from worker.settings import Settings

Row = tuple[str, str | None, bool]  # reply, conversation, human


def build(
    encoder: Encoder,
    rows: list[Row],
    config: ResponseSetConfig | None = None,
    curation: Curation | None = None,
    inherited_replies: tuple[str, ...] = (),
) -> ResponseSet:
    replies = [r for r, _, _ in rows]
    return build_response_set(
        ReplyRows(
            replies=replies,
            embeddings=encoder.encode(replies),
            niches=["chat"] * len(rows),
            conversations=[c for _, c, _ in rows],
            human=[h for _, _, h in rows],
        ),
        config=config or ResponseSetConfig(),
        curation=curation or Curation(),
        encode=encoder.encode,
        inherited_replies=inherited_replies,
    )


def written(reply: str, conversations: int, tag: str = "c", human: bool = True) -> list[Row]:
    return [(reply, f"{tag}{i}", human) for i in range(conversations)]


def test_a_reply_written_in_n_conversations_enters_and_in_n_minus_one_does_not(
    encoder: Encoder,
) -> None:
    n = ResponseSetConfig().min_support
    assert n == 3
    rows = written("sounds great", n) + written("sure thing", n - 1)
    # Many rows, one conversation: still one source.
    rows += [("count me in", "same", True)] * 10
    result = build(encoder, rows)
    assert result.bank.texts == ["sounds great"]
    assert result.bank.counts.tolist() == [3.0]
    assert result.row_ids.tolist() == [0] * n + [-1] * (n - 1) + [-1] * 10
    assert result.report.removed["written_by_many"] == 2


def test_one_keys_feedback_counts_as_one_source_however_often_it_is_sent(
    encoder: Encoder,
) -> None:
    spam = [("qzx vbnm wert", "key:7", True)] * 475
    assert "qzx vbnm wert" not in build(encoder, spam).bank.texts
    three_keys = [("qzx vbnm wert", f"key:{k}", True) for k in (1, 2, 3)]
    assert "qzx vbnm wert" in build(encoder, three_keys).bank.texts


def test_rows_a_model_wrote_never_add_support(encoder: Encoder) -> None:
    rows = written("fair enough", 2) + written("fair enough", 5, tag="s", human=False)
    result = build(encoder, rows)
    assert "fair enough" not in result.bank.texts


def test_a_meaning_is_served_once_as_its_most_written_text(encoder: Encoder) -> None:
    rows = written("ok", 4, "a") + written("okay", 2, "b") + written("Ok!", 1, "c")
    result = build(encoder, rows)
    assert result.bank.texts == ["ok"]
    # Support is the union of the cluster's conversations: 4 + 2 + 1.
    assert result.bank.counts.tolist() == [7.0]
    assert set(result.row_ids.tolist()) == {0}


def test_each_rule_counts_what_it_removed(encoder: Encoder) -> None:
    rows = (
        written("text me at 415-555-0199", 5, "p")
        + written("this reply is far too long to be a suggestion anyone taps", 5, "l")
        + written("what the fuck", 5, "s")
        + written("see you at 7", 5, "k")
        + written("lol", 5, "o")
    )
    curation = Curation(blocks=(Block("text", "LOL!"),))
    result = build(encoder, rows, curation=curation)
    assert result.bank.texts == ["see you at 7"]
    removed = result.report.removed
    assert removed["personal_data"] == 1
    assert removed["short_and_plain"] == 1
    assert removed["sensitive"] == 1
    assert removed["blocked"] == 1
    assert result.report.replies == 5
    assert result.report.served == 1


def test_curated_replies_skip_the_support_rule_but_no_other(encoder: Encoder) -> None:
    curation = Curation(
        curated=(
            CuratedReply("Happy to help!", "support"),
            CuratedReply("call 415-555-0199", "support"),
        )
    )
    result = build(encoder, written("sounds great", 3), curation=curation)
    assert result.bank.texts == ["sounds great", "Happy to help!"]
    assert result.bank.niches[1] == ["support"]
    assert result.report.curated == 1
    assert result.report.curated_refused == {"call 415-555-0199": "personal_data"}


def test_pattern_blocks_match_anywhere_case_insensitively() -> None:
    block = Block("pattern", r"\bpizza\b")
    assert block.matches("PIZZA tonight?")
    assert not block.matches("pizzeria")
    assert Block("text", "Sounds good!").matches("sounds good")
    with pytest.raises(ValueError, match="text"):
        Block("regex", "x")


# --- Through the service: feedback, generations, web processes --------------------------------

LEAK = "text me at 415-555-0199 or mail me@example.com"
RANDOM = "qzx vbnm wert"


def _app(data_dir: Path, encoder: Encoder, **overrides: Any) -> Any:
    from webapp import create_app

    app = create_app(
        {"data_dir": str(data_dir), **FAST_TRAINING, "production_check_seconds": 0, **overrides},
        encoder=encoder,
    )
    app.config["TESTING"] = True
    return app


def _key(app: Any, role: str) -> dict[str, str]:
    from core.keys import create_key
    from core.schema import Role

    with app.extensions["replyguard"].db.session() as session:
        token, _ = create_key(session, f"test-{role}", Role(role), "tester")
    return {"Authorization": f"Bearer {token}"}


def _candidate_bank(settings: Settings, db: Database, encoder: Encoder, gid: int) -> list[str]:
    with db.session() as session:
        generation = session.get_one(Generation, gid)
        assert generation.candidate_version is not None
        version = get_version(session, generation.candidate_version)
        path, checksum = artifact_dir(settings, version), version.checksum
    model, _ = load_model(path, encoder, checksum)
    return model.bank.texts


@pytest.mark.integration
def test_a_personal_detail_or_random_text_one_client_sends_is_never_suggested(
    data_dir: Path, encoder: Encoder
) -> None:
    # Support 2 here so the small test corpus keeps a response set; one key is one source.
    overrides = {"response_set": {"min_support": 2}}
    app = _app(data_dir, encoder, **overrides)
    client = app.test_client()
    one_key = _key(app, "client")
    for i in range(30):
        for typed in (LEAK, RANDOM):
            body = {
                "message": f"how can I reach you about the apartment {i}?",
                "typed": typed,
                "suggestions": [],
            }
            assert client.post("/v1/feedback", json=body, headers=one_key).status_code == 201
    # The control: the same kind of text from two different keys does count twice.
    for question in ("anything new?", "what's up?"):
        body = {"message": question, "typed": "plok ziv", "suggestions": []}
        assert client.post("/v1/feedback", json=body, headers=_key(app, "client")).status_code
    services = app.extensions["replyguard"]
    ctx = PipelineContext(services.settings, services.db, encoder)
    for _ in range(2):
        gid = start_generation(ctx, "tester")
        run_generation(ctx, gid)
        bank = _candidate_bank(services.settings, services.db, encoder, gid)
        assert LEAK not in bank
        assert RANDOM not in bank
        assert "plok ziv" in bank
    served = client.post(
        "/v1/suggestions",
        json={"message": "how can I reach you about the apartment?", "k": 10, "force": True},
        headers=one_key,
    ).get_json()
    texts = [s["text"] for s in served["suggestions"]]
    assert LEAK not in texts
    assert RANDOM not in texts
    services.db.dispose()


@pytest.mark.integration
def test_a_block_reaches_every_web_process_at_once_and_outlives_the_next_generation(
    data_dir: Path, encoder: Encoder
) -> None:
    first, second = _app(data_dir, encoder), _app(data_dir, encoder)
    staff = _key(first, "reviewer")
    ask = {"message": "hello, how are you?", "k": 5, "force": True}
    top = second.test_client().post("/v1/suggestions", json=ask, headers=staff).get_json()
    blocked = top["suggestions"][0]["text"]
    answer = first.test_client().post(
        "/v1/bank/blocks", json={"value": blocked, "reason": "reads badly"}, headers=staff
    )
    assert answer.status_code == 201
    # The other web process has not been told; it reads the change on its next request.
    after = second.test_client().post("/v1/suggestions", json=ask, headers=staff).get_json()
    assert blocked not in [s["text"] for s in after["suggestions"]]
    assert len(after["suggestions"]) == 5

    services = second.extensions["replyguard"]
    ctx = PipelineContext(services.settings, services.db, encoder)
    gid = start_generation(ctx, "tester")
    run_generation(ctx, gid)
    assert blocked not in _candidate_bank(services.settings, services.db, encoder, gid)
    with services.db.session() as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert "bank.block" in actions
    for app in (first, second):
        app.extensions["replyguard"].db.dispose()


@pytest.mark.integration
def test_a_reviewers_new_intent_is_served_by_every_web_process_and_the_next_model(
    data_dir: Path, encoder: Encoder
) -> None:
    """An intent a reviewer adds (models.intent_edits) is served at once, under its name, by
    a web process that was not told (it reads the edit's revision at its next check: every
    request here, every few seconds in production), and enters the next trained model."""
    first, second = _app(data_dir, encoder), _app(data_dir, encoder)
    staff = _key(first, "reviewer")
    replies = ["Ticket filed with support", "I filed a support ticket"]
    ask = {"message": "did you file the support ticket?", "k": 10, "force": True}
    before = second.test_client().post("/v1/suggestions", json=ask, headers=staff).get_json()
    assert not set(replies) & {s["text"] for s in before["suggestions"]}
    intent = {
        "name": "ticket_filed",
        "group": "work",
        "tone": "neutral",
        "replies": replies,
        "reason": "the support team answers this all day",
    }
    assert first.test_client().post("/v1/intents", json=intent, headers=staff).status_code == 201
    after = second.test_client().post("/v1/suggestions", json=ask, headers=staff).get_json()
    shown = [s["text"] for s in after["suggestions"]]
    # One reply of the new intent: a list holds one reply per intent.
    assert len(set(replies) & set(shown)) == 1, shown
    served = second.extensions["replyguard"].holder.get().model
    [rid] = [i for i, t in enumerate(served.bank.texts) if t in shown and t in replies]
    assert (served.bank.intents[rid], served.bank.sources[rid]) == ("ticket_filed", "catalogue")

    services = second.extensions["replyguard"]
    ctx = PipelineContext(services.settings, services.db, encoder)
    gid = start_generation(ctx, "tester")
    run_generation(ctx, gid)
    assert set(replies) <= set(_candidate_bank(services.settings, services.db, encoder, gid))
    for app in (first, second):
        app.extensions["replyguard"].db.dispose()


@pytest.mark.integration
def test_a_curated_reply_is_served_without_training(data_dir: Path, encoder: Encoder) -> None:
    app = _app(data_dir, encoder)
    client = app.test_client()
    staff = _key(app, "reviewer")
    # Not a catalogue reply (those are served already) and of no catalogue intent.
    curated = "Support replies within a day"
    ask = {"message": "how soon does support reply?", "k": 10, "force": True}
    before = client.post("/v1/suggestions", json=ask, headers=staff).get_json()
    assert curated not in [s["text"] for s in before["suggestions"]]
    body = {"text": curated, "niche": "support", "reason": "support team's canned reply"}
    assert client.post("/v1/bank/curated", json=body, headers=staff).status_code == 201
    after = client.post("/v1/suggestions", json=ask, headers=staff).get_json()
    assert curated in [s["text"] for s in after["suggestions"]]
    refused = client.post(
        "/v1/bank/curated",
        json={"text": "mail me@example.com", "reason": "test"},
        headers=staff,
    )
    assert refused.status_code == 422
    assert "personal_data" in refused.get_json()["error"]["message"]
    client_key = _key(app, "client")
    assert client.post("/v1/bank/curated", json=body, headers=client_key).status_code == 403
    app.extensions["replyguard"].db.dispose()


@pytest.mark.integration
def test_triggering_abstains_on_nonsense_with_a_reason_and_force_answers(
    client: Any, client_headers: dict[str, str]
) -> None:
    # A message unlike any chat the intents answer (keyboard mash: the test below).
    nonsense = {"message": "the derivative of x squared is two x"}
    answer = client.post("/v1/suggestions", json=nonsense, headers=client_headers).get_json()
    assert answer["triggered"] is False
    assert answer["suggestions"] == []
    assert "threshold" in answer["reason"] and "force" in answer["reason"]
    assert 0.0 < answer["threshold"] < 1.0
    forced = client.post(
        "/v1/suggestions", json={**nonsense, "force": True}, headers=client_headers
    ).get_json()
    assert forced["triggered"] is False
    assert len(forced["suggestions"]) == 3
    assert all(s["score"] < answer["threshold"] for s in forced["suggestions"])
    sure = client.post(
        "/v1/suggestions", json={"message": "Hello, how are you?"}, headers=client_headers
    ).get_json()
    assert sure["triggered"] is True
    assert sure["reason"] is None
    assert all(0.0 <= s["score"] <= 1.0 for s in sure["suggestions"])


@pytest.mark.integration
def test_a_message_that_may_be_sad_news_gets_none_even_forced_and_says_why(
    client: Any, client_headers: dict[str, str]
) -> None:
    for force in (False, True):
        body = {"message": "my marriage is over", "force": force}
        answer = client.post("/v1/suggestions", json=body, headers=client_headers).get_json()
        assert answer["triggered"] is False and answer["suggestions"] == []
        assert answer["reason"].startswith("no reply fits this message"), answer["reason"]


@pytest.mark.integration
def test_the_served_model_says_why_it_shows_nothing_and_only_then(app: Any) -> None:
    model = app.extensions["replyguard"].holder.get().model
    triggering = model.triggering
    sad, nonsense, hello = model.suggest_many(
        ["my marriage is over", "the derivative of x squared is two x", "Hello, how are you?"],
        k=3,
    )
    # May be sad news: no suggestion at all.
    assert sad == [] and triggering.silence(sad) == NO_REPLY_FITS
    assert NO_REPLY_FITS.startswith("no reply fits this message")
    # Suggestions, none reaching the threshold.
    assert nonsense and not triggering.shown(nonsense)
    assert triggering.silence(nonsense) == (
        f"not confident: no suggestion reached this model's threshold "
        f"{triggering.threshold:.3f} (best {nonsense[0].score:.3f})"
    )
    assert triggering.shown(hello) and triggering.silence(hello) is None


def test_silence_is_none_once_a_suggestion_reaches_the_threshold() -> None:
    triggering = Triggering(threshold=0.5, target_coverage=0.9)
    below = [Suggestion(0, "ok", 0.42), Suggestion(1, "sure", 0.3)]
    assert triggering.silence([]) == NO_REPLY_FITS
    assert triggering.silence(below) == (
        "not confident: no suggestion reached this model's threshold 0.500 (best 0.420)"
    )
    # The third reaches it: that one is shown, so nothing needs explaining.
    assert triggering.silence([*below, Suggestion(2, "yes", 0.5)]) is None


@pytest.mark.integration
def test_keyboard_mash_gets_no_suggestion(client: Any, client_headers: dict[str, str]) -> None:
    mash = {"message": "xq zvb wplk qqq jjjx"}
    answer = client.post("/v1/suggestions", json=mash, headers=client_headers).get_json()
    assert answer["triggered"] is False


@pytest.mark.integration
def test_the_message_is_never_suggested_back(
    client: Any, client_headers: dict[str, str], app: Any
) -> None:
    model = app.extensions["replyguard"].holder.get().model
    for text in model.bank.texts[:20]:
        answer = client.post(
            "/v1/suggestions",
            json={"message": text, "k": 10, "force": True},
            headers=client_headers,
        ).get_json()
        suggested = [s["text"] for s in answer["suggestions"]]
        assert text not in suggested
        vectors = model.encoder.encode([text, *suggested])
        assert np.all(vectors[1:] @ vectors[0] < 0.95)


def test_a_reply_the_parent_served_stays_served_unless_blocked(encoder: Encoder) -> None:
    # Rows a model wrote never add support; the parent's vetted replies stay in the set.
    rows = written("fair enough", 4, human=False) + written("sounds great", 4, human=False)
    result = build(
        encoder,
        rows,
        curation=Curation(blocks=(Block("text", "sounds great"),)),
        inherited_replies=("Fair enough!", "sounds great"),
    )
    assert result.bank.texts == ["fair enough"]
    assert result.report.removed["blocked"] == 1


def test_reply_rows_refuse_columns_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        ReplyRows(
            replies=["ok", "sure"],
            embeddings=np.zeros((2, 4), np.float32),
            niches=["chat"],
            conversations=[None, None],
            human=[True, True],
        )
