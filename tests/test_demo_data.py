"""The demo data (core/demo.py): chitchat pairs with their conversations and topic niches, the
skewed default selection as docs/demo-data.md documents it, the whole corpus through the
command line, and the chatterbot corpus the other tests train on."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func
from sqlalchemy import select

from core.db import Database
from core.demo import MIN_NICHE_PAIRS
from core.demo import OPEN_CHAT
from core.demo import chatterbot_rows
from core.demo import chitchat_conversations
from core.demo import chitchat_niche
from core.demo import demo_rows
from core.demo import is_turn_list
from core.demo import load_demo
from core.demo import load_examples
from core.demo import niche_sizes
from core.demo import traffic_indices
from core.ingest import ExampleIn
from core.ingest import ImportReport
from core.provenance import Provenance
from core.schema import Example
from core.schema import IncomingMessage
from core.settings import SettingsError
from core.text import normalize
from core.text import pair_hash
from webapp.cli import main
from webapp.cli.data import stored_counts
from worker.settings import Settings
from worker.settings import load_settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "demo-data.md"
# The whole corpus: 131,569 turn pairs, less 215 that fail validation (an empty turn, a turn
# over 2,000 characters, or control characters: core/text.py).
FULL_PAIRS = 131_354


def default_settings(**overrides: object) -> Settings:
    return load_settings(overrides, environ={})


def documented_sizes() -> dict[str, int]:
    """The niche -> pairs table of docs/demo-data.md."""
    rows = re.findall(
        r"^\| (\d+) \| (.+?) \| ([\d,]+) \| [\d,]+ \| ", DOC.read_text(encoding="utf-8"), re.M
    )
    return {niche: int(pairs.replace(",", "")) for _, niche, pairs in rows}


def test_chitchat_pairs_are_consecutive_turns_with_conversation_and_topic_niche() -> None:
    conversations = chitchat_conversations()
    assert sum(len(c.pairs) for c in conversations) == FULL_PAIRS
    niches = {c.niche for c in conversations}
    assert len(niches) == 35
    assert OPEN_CHAT in niches
    assert all(len(niche) <= 100 for niche in niches)
    for conversation in conversations:
        assert {ex.conversation for ex in conversation.pairs} == {f"chitchat:{conversation.id}"}
        assert {ex.niche for ex in conversation.pairs} == {conversation.niche}
    first = next(c for c in conversations if c.id == "a07edb12-6b91-4138-b11e-02421888d699")
    assert first.niche == "What's one thing your best friend doesn't know about you?"
    # A turn is one sender's utterances joined with a space, and each reply is the next
    # pair's message.
    assert first.pairs[0].message == "Hello How are you doing today?"
    assert first.pairs[0].reply == "whats up MD im doing good how are you doing?"
    assert first.pairs[1].message == first.pairs[0].reply


def test_niche_names_come_from_the_prompt() -> None:
    assert chitchat_niche(None) == chitchat_niche("") == chitchat_niche("  ") == OPEN_CHAT
    assert chitchat_niche("Mozart or Beethoven?") == "Mozart or Beethoven?"
    assert (
        chitchat_niche("What's your secret superpower? (i.e. What are you really really good at.)")
        == "What's your secret superpower?"
    )


def test_default_demo_is_skewed_as_documented() -> None:
    settings = default_settings()
    rows = demo_rows(settings)
    sizes = Counter(example.niche for _, example in rows)
    # Exactly the table in docs/demo-data.md, which the README and docs/cli.md link to.
    assert dict(sizes) == documented_sizes()
    assert len(sizes) == 35
    assert abs(len(rows) - settings.demo_pairs) <= len(sizes)
    ordered = sorted(sizes.values(), reverse=True)
    # Zipf with exponent 1 over 35 niches: the largest is 35 times the smallest, the three
    # largest hold 44% of the pairs, and 11 niches each hold under 1% of them.
    assert ordered[0] >= 30 * ordered[-1]
    assert sum(ordered[:3]) / len(rows) > 0.4
    assert sum(size < 0.01 * len(rows) for size in ordered) >= 10
    assert min(ordered) >= MIN_NICHE_PAIRS
    # Seeded: the same every time, and another seed makes other topics common.
    assert demo_rows(settings) == rows
    reseeded = Counter(ex.niche for _, ex in demo_rows(default_settings(seed=14)))
    assert sorted(reseeded.values()) == sorted(sizes.values())
    assert reseeded != sizes


def test_niche_sizes_follow_the_rank_and_respect_the_bounds() -> None:
    available = {"a": 1_000, "b": 1_000, "c": 1_000, "d": 1_000}
    sizes = niche_sizes(available, 1_200, 1.0, seed=13)
    # 1200 / (1 + 1/2 + 1/3 + 1/4) = 576: ranks 1-4 get 576, 288, 192 and 144.
    assert set(sizes) == set(available)
    assert sorted(sizes.values(), reverse=True) == [576, 288, 192, 144]
    assert niche_sizes(available, 400, 0.0, seed=13) == dict.fromkeys(available, 100)
    # Never more than the corpus has, never less than MIN_NICHE_PAIRS.
    capped = niche_sizes({**available, "a": 30}, 1_200, 1.0, seed=13)
    assert capped["a"] <= 30
    assert {k: v for k, v in capped.items() if k != "a"} == {
        k: v for k, v in sizes.items() if k != "a"
    }
    assert min(niche_sizes(available, 40, 1.0, seed=13).values()) == MIN_NICHE_PAIRS


def test_chitchat_selection_keeps_whole_conversations_and_cuts_the_last() -> None:
    rows = demo_rows(default_settings())
    by_conversation: dict[str, list[str]] = {}
    for _, example in rows:
        assert example.conversation is not None
        by_conversation.setdefault(example.conversation, []).append(example.message)
    pairs = {f"chitchat:{c.id}": [ex.message for ex in c.pairs] for c in chitchat_conversations()}
    # Every conversation kept is a prefix of the real one (turn order kept), all but at most
    # one per niche kept whole.
    cut: Counter[str] = Counter()
    for conversation, messages in by_conversation.items():
        assert messages == pairs[conversation][: len(messages)]
        if len(messages) < len(pairs[conversation]):
            cut[next(ex.niche for _, ex in rows if ex.conversation == conversation)] += 1
    assert max(cut.values()) == 1
    assert len(by_conversation) > 150


def test_full_demo_is_the_whole_corpus() -> None:
    rows = demo_rows(default_settings(), full=True)
    assert len(rows) == FULL_PAIRS
    assert len({example.conversation for _, example in rows}) == len(chitchat_conversations())


def test_chatterbot_has_no_broken_conversation() -> None:
    rows = chatterbot_rows()
    assert 2_200 < len(rows) < 2_400
    assert len({example.niche for _, example in rows}) == 21
    # The one conversation YAML reads as a string (trivia.yml, number 13) is skipped: read
    # character by character it gave 55 one-character examples ("s", "e", "l", "t").
    assert not [
        (ex.message, ex.reply) for _, ex in rows if len(ex.message) == 1 and len(ex.reply) == 1
    ]
    conversations = {example.conversation for _, example in rows}
    assert "chatterbot:trivia:12" in conversations
    assert "chatterbot:trivia:13" not in conversations
    assert all(
        re.fullmatch(rf"chatterbot:{re.escape(ex.niche)}:\d+", ex.conversation or "")
        for _, ex in rows
    )
    # A one-letter answer to a real question stays.
    assert ("What is the most common letter in the English alphabet?", "E") in {
        (ex.message, ex.reply) for _, ex in rows
    }


@pytest.mark.parametrize(
    ("conversation", "used"),
    [
        (["Hi", "Hello"], True),
        ("Which number is 'two little ducks'? - '22'", False),
        (["Hi", None], False),
        (["Hi", ["nested"]], False),
        ({"Hi": "Hello"}, False),
        (None, False),
    ],
)
def test_only_lists_of_strings_are_conversations(conversation: object, used: bool) -> None:
    assert is_turn_list(conversation) is used


def test_chatterbot_demo_loads_once_with_traffic(empty_db: Database) -> None:
    settings = empty_db.settings
    assert settings.demo_dataset == "chatterbot"
    niches = {example.niche for _, example in chatterbot_rows()}
    with empty_db.session() as session:
        first = load_demo(session, settings)
    with empty_db.session() as session:
        second = load_demo(session, settings)
    assert (second.added, second.traffic) == (0, 0)
    assert second.duplicates == first.added + first.duplicates
    with empty_db.session() as session:
        stored = session.scalar(select(func.count(Example.id)))
        provenances = set(session.scalars(select(Example.provenance).distinct()))
        traffic = list(session.execute(select(IncomingMessage.message, IncomingMessage.niche)))
        trained = {(e.niche, normalize(e.message)) for e in session.scalars(select(Example))}
        no_source = session.scalar(select(func.count()).where(Example.conversation.is_(None)))
    assert first.added == stored > 900
    assert provenances == {"human"}
    assert no_source == 0
    # About a fifth of the messages play incoming traffic: no reply stored for them.
    assert len(traffic) == first.traffic > 150
    assert {niche for _, niche in traffic} == niches
    leaked = [m for m, n in traffic if (n, normalize(m)) in trained]
    assert len(leaked) <= 2, leaked  # only niches too small to split by message


def cli_load(data_dir: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), "data", "load-demo", *args])
    assert result.exit_code == 0, result.output
    return result.output


def stored(data_dir: Path) -> tuple[int, int, int, int]:
    """Examples, their niches and conversations, and incoming messages in a data folder."""
    database = Database(load_settings({"data_dir": str(data_dir)}, environ={}))
    try:
        with database.session() as session:
            return (
                session.scalar(select(func.count(Example.id))) or 0,
                session.scalar(select(func.count(func.distinct(Example.niche)))) or 0,
                session.scalar(select(func.count(func.distinct(Example.conversation)))) or 0,
                session.scalar(select(func.count(IncomingMessage.id))) or 0,
            )
    finally:
        database.dispose()


def test_cli_loads_the_default_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPLYGUARD_DEMO_DATASET", raising=False)
    monkeypatch.delenv("REPLYGUARD_DEMO_PAIRS", raising=False)
    output = cli_load(tmp_path)
    examples, niches, conversations, traffic = stored(tmp_path)
    assert f"demo data (chitchat): {examples} added" in output
    assert f"{traffic} messages as incoming traffic" in output
    pairs = len(demo_rows(default_settings()))
    # A fifth of each niche's messages is traffic; a pair seen twice is stored once.
    assert 0.75 * pairs < examples < 0.85 * pairs
    assert 0.15 * pairs < traffic < 0.25 * pairs
    assert niches == 35
    assert conversations > 150


def test_cli_loads_the_whole_corpus_with_full(tmp_path: Path) -> None:
    output = cli_load(tmp_path, "--full")
    examples, niches, conversations, traffic = stored(tmp_path)
    # The corpus repeats some pairs (a turn pair said twice): skipped, and not called
    # "already present" in a folder that held nothing.
    settings = default_settings()
    rows = demo_rows(settings, full=True)
    hidden = traffic_indices(settings, rows)
    kept = [ex for i, (_, ex) in enumerate(rows) if i not in hidden]
    repeats = len(kept) - len({pair_hash(ex.message, ex.reply) for ex in kept})
    assert repeats > 100  # 204 in chitchat-dataset 0.1.x
    assert examples == len(kept) - repeats
    assert output.startswith(
        f"demo data (chitchat): {examples} added, 0 already present, "
        f"{repeats} duplicate pairs inside the corpus skipped, {traffic} messages as incoming "
        "traffic\n"
    )
    assert examples > 100_000
    assert traffic > 20_000
    assert niches == 35
    # Every conversation but those whose only pairs became traffic (or repeat another's).
    assert 0.95 * len(chitchat_conversations()) < conversations < len(chitchat_conversations())
    again = cli_load(tmp_path, "--full")
    # Now every pair really is stored already; the corpus's repeats are still its own.
    assert again.startswith(
        f"demo data (chitchat): 0 added, {examples} already present, "
        f"{repeats} duplicate pairs inside the corpus skipped, 0 messages as incoming traffic\n"
    )
    assert stored(tmp_path) == (examples, niches, conversations, traffic)


def test_a_load_tells_pairs_stored_before_from_pairs_repeated_in_it(
    empty_db: Database,
) -> None:
    """Counted across sources: a pair in two chatterbot files is a repeat of the load, not a
    pair that was present, though the first file's insert stored it before the second's."""
    hello = ExampleIn("Hello", "Hi there", "greetings", Provenance.HUMAN, "c1")
    rows = [
        ("demo:a", hello),
        ("demo:a", ExampleIn("hello ", "hi  there", "greetings", Provenance.HUMAN, "c2")),
        ("demo:b", ExampleIn("HELLO", "Hi there", "other", Provenance.HUMAN, "c3")),
        ("demo:b", ExampleIn("Bye", "See you", "other", Provenance.HUMAN, "c4")),
    ]
    with empty_db.session() as session:
        first = load_examples(session, rows, skip=set())
    assert (first.added, first.already_present, first.repeated) == (2, 0, 2)
    extra = ExampleIn("Thanks", "Any time", "other", Provenance.HUMAN, "c5")
    with empty_db.session() as session:
        second = load_examples(session, [*rows, ("demo:c", extra)], skip=set())
    assert (second.added, second.already_present, second.repeated) == (1, 2, 2)
    assert stored_counts(second, "corpus") == (
        "1 added, 2 already present, 2 duplicate pairs inside the corpus skipped"
    )
    single = ImportReport(added=3, duplicates=1, repeated=1)
    assert stored_counts(single, "file") == (
        "3 added, 0 already present, 1 duplicate pair inside the file skipped"
    )
    assert stored_counts(ImportReport(added=0, duplicates=4), "file") == (
        "0 added, 4 already present"
    )


def test_unknown_demo_data_set_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLYGUARD_DEMO_DATASET", "shakespeare")
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "data", "load-demo"])
    assert result.exit_code == 1
    assert "REPLYGUARD_DEMO_DATASET='shakespeare' is not a demo data set" in result.output
    with pytest.raises(SettingsError, match="chitchat or chatterbot"):
        demo_rows(default_settings(demo_dataset="shakespeare"))
