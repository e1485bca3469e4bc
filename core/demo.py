"""The bundled demo data, and loading it with a share of its messages kept as incoming traffic.

Two data sets, chosen by the ``demo_dataset`` setting:

- ``chitchat`` (the default): two-person chat from the ``chitchat-dataset`` package (MIT;
  7,168 conversations, 131,569 turn pairs, one of 35 conversation-starter prompts each, a
  few with none). Each consecutive pair of turns is an example; the prompt is its niche.
  The whole corpus has roughly equal niches, so the demo keeps a seeded, Zipf-skewed part of
  it (:func:`niche_sizes`), as real traffic is: a few large niches and a long tail of rare
  ones. ``replyguard data load-demo --full`` loads every pair instead.
- ``chatterbot``: the English chatterbot corpus (about 2,400 pairs in 21 niches, one per
  file): small enough for the test suite to train on in seconds.

Every pair goes through :func:`core.ingest.validate_row`, so demo rows obey the same text
rules as imported ones; a pair that fails them (an empty turn, a turn over 2,000 characters)
is left out, and its neighbours are not joined across the gap. How the niches come out, with
a table of their sizes: docs/demo-data.md.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import yaml
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ingest import ExampleIn
from core.ingest import ImportReport
from core.ingest import count_repeats
from core.ingest import insert_examples
from core.ingest import validate_row
from core.provenance import Provenance
from core.schema import IncomingMessage
from core.settings import CoreSettings
from core.settings import SettingsError
from core.splits import Candidate
from core.splits import stratified_pick
from core.text import pair_hash

DATASETS = ("chitchat", "chatterbot")
# The niche of the chitchat conversations that have no prompt (239 of them, and 4 with "").
OPEN_CHAT = "open chat"
# Below this many pairs a niche could not give the benchmark its 3 examples, the traffic its
# share and still leave something to train on, so no chitchat niche is cut smaller.
MIN_NICHE_PAIRS = 10

# (source, example): the source goes into ``examples.source``.
DemoRow = tuple[str, ExampleIn]


@dataclass(frozen=True)
class Conversation:
    """One chitchat conversation: its id (a UUID), its niche and its valid turn pairs, in
    order (pair i is turn i and turn i + 1, less the pairs that failed validation)."""

    id: str
    niche: str
    pairs: tuple[ExampleIn, ...]


def demo_rows(settings: CoreSettings, full: bool = False) -> list[DemoRow]:
    """The rows of the demo data set that ``settings.demo_dataset`` names.

    Args:
        settings: ``demo_dataset`` picks the corpus; for chitchat, ``demo_pairs`` (how many
            pairs, default in core/settings.py, chosen by bench/demo_size.py), ``demo_skew``
            (the Zipf exponent) and ``seed`` pick which pairs.
        full: every chitchat pair (131,569 less a few hundred invalid) instead of the skewed
            selection. The chatterbot corpus is always loaded whole.

    Returns:
        (source, example) rows, every example human and with its ``conversation`` set.

    Raises:
        SettingsError: ``demo_dataset`` is neither chitchat nor chatterbot.
    """
    if settings.demo_dataset == "chatterbot":
        return chatterbot_rows()
    if settings.demo_dataset != "chitchat":
        raise SettingsError(
            f"REPLYGUARD_DEMO_DATASET={settings.demo_dataset!r} is not a demo data set: "
            f"use {' or '.join(DATASETS)}"
        )
    if full:
        return [("demo:chitchat", ex) for c in chitchat_conversations() for ex in c.pairs]
    return chitchat_rows(settings.demo_pairs, settings.demo_skew, settings.seed)


def load_demo(session: Session, settings: CoreSettings, full: bool = False) -> ImportReport:
    """Load the demo data (:func:`demo_rows`): most of it as human examples, and a share of
    its messages as *incoming traffic* (their replies never stored, so no generation ever
    trains on them). Loading it again adds nothing.

    The traffic is what synthetic generations label: ``demo_traffic_fraction`` of each niche,
    chosen by message with a seeded hash (see core.splits).
    """
    return load_with_traffic(session, settings, demo_rows(settings, full))


def load_with_traffic(
    session: Session, settings: CoreSettings, rows: list[DemoRow]
) -> ImportReport:
    """Load (source, example) rows, keeping ``settings.demo_traffic_fraction`` of each
    niche's messages (at least one, at most half) as incoming traffic with the replies hidden,
    and the other rows as examples. Returns the counts: added, duplicates, traffic."""
    traffic = traffic_indices(settings, rows)
    report = load_examples(session, rows, skip=traffic)
    known = set(session.scalars(select(IncomingMessage.message)))
    fresh = [
        {"message": message, "niche": niche}
        for message, niche in sorted({(rows[i][1].message, rows[i][1].niche) for i in traffic})
        if message not in known
    ]
    if fresh:
        # One bulk INSERT: an ORM object per message cost seconds for the whole corpus.
        session.execute(insert(IncomingMessage), fresh)
    report.traffic = len(fresh)
    return report


def load_examples(session: Session, rows: Sequence[DemoRow], skip: set[int]) -> ImportReport:
    """Insert every row but those at the indices in ``skip`` as an example, with its source
    (core.ingest.insert_examples: a row already stored is a duplicate). Returns the counts:
    added, duplicates, and how many of those repeat an earlier row of ``rows`` (of any
    source) rather than a pair stored before."""
    report = ImportReport()
    by_source: dict[str, list[ExampleIn]] = {}
    for i, (source, example) in enumerate(rows):
        if i not in skip:
            by_source.setdefault(source, []).append(example)
    report.repeated = count_repeats(ex for examples in by_source.values() for ex in examples)
    for source, examples in by_source.items():
        added, duplicates = insert_examples(session, examples, source=source)
        report.added += added
        report.duplicates += duplicates
    return report


def traffic_indices(settings: CoreSettings, rows: Sequence[DemoRow]) -> set[int]:
    """Indices of the rows whose messages are kept as incoming traffic: per niche,
    ``settings.demo_traffic_fraction`` of the messages (at least one, at most half), chosen
    by a hash seeded with ``settings.seed`` (core.splits.stratified_pick)."""
    return set(
        stratified_pick(
            (
                Candidate(i, ex.niche, ex.message, pair_hash(ex.message, ex.reply))
                for i, (_, ex) in enumerate(rows)
            ),
            settings.demo_traffic_fraction,
            minimum=1,
            seed=settings.seed,
            salt="demo-traffic",
        )
    )


def chitchat_rows(pairs: int, skew: float, seed: int) -> list[DemoRow]:
    """About ``pairs`` chitchat pairs, niches sized by :func:`niche_sizes`.

    Within a niche, whole conversations are taken in the order of a seeded hash of their ids,
    and the last one is cut to fit (its first turns), so each niche has exactly its size
    unless the corpus has fewer pairs in it.
    """
    conversations = chitchat_conversations()
    available = Counter[str]()
    for conversation in conversations:
        available[conversation.niche] += len(conversation.pairs)
    sizes = niche_sizes(available, pairs, skew, seed)
    rows: list[DemoRow] = []
    taken = Counter[str]()
    for conversation in sorted(conversations, key=lambda c: _rank(seed, "demo-conversation", c.id)):
        room = sizes[conversation.niche] - taken[conversation.niche]
        kept = conversation.pairs[: max(room, 0)]
        taken[conversation.niche] += len(kept)
        rows.extend(("demo:chitchat", ex) for ex in kept)
    return rows


def niche_sizes(available: Mapping[str, int], pairs: int, skew: float, seed: int) -> dict[str, int]:
    """How many pairs each niche keeps: a Zipf-like share by rank.

    The niches are ranked by a seeded hash of their names (rank 1 .. n, so which topics are
    common changes with the seed but not from run to run), and the niche of rank r gets
    ``pairs * r**-skew / sum(k**-skew for k in 1..n)`` pairs, rounded, at least
    :data:`MIN_NICHE_PAIRS` and at most what the corpus has (so the total can differ from
    ``pairs`` by a little).

    Args:
        available: pairs in the corpus per niche.
        pairs: the total to aim at (``demo_pairs``).
        skew: the Zipf exponent (``demo_skew``); 0 gives equal niches, 1 makes the largest
            niche n times the smallest.
        seed: the settings' seed.

    Returns:
        Pairs per niche, every niche of ``available`` present.
    """
    ranked = sorted(available, key=lambda niche: _rank(seed, "demo-niche", niche))
    weights = [rank**-skew for rank in range(1, len(ranked) + 1)]
    scale = pairs / sum(weights)
    return {
        niche: min(available[niche], max(MIN_NICHE_PAIRS, round(weight * scale)))
        for niche, weight in zip(ranked, weights, strict=True)
    }


@functools.cache
def chitchat_conversations() -> tuple[Conversation, ...]:
    """Every chitchat conversation that has at least one valid pair, in the file's order.

    A turn is one sender's consecutive utterances, joined with a space. The niche is the
    conversation's prompt less any trailing "(i.e. ...)" explanation (two prompts are longer
    than a niche may be), or :data:`OPEN_CHAT` without one. Read once per process (about
    2 s: a 40 MB JSON file and 131,569 validations).
    """
    path = resources.files("chitchat_dataset") / "dataset.json"
    corpus = json.loads(path.read_text(encoding="utf-8"))
    conversations = []
    for uuid, conversation in corpus.items():
        turns = [
            " ".join(text for u in turn if (text := u["text"].strip()))
            for turn in conversation["messages"]
        ]
        niche = chitchat_niche(conversation.get("prompt"))
        pairs = _pairs(turns, niche, f"chitchat:{uuid}")
        if pairs:
            conversations.append(Conversation(uuid, niche, tuple(pairs)))
    return tuple(conversations)


def chitchat_niche(prompt: str | None) -> str:
    """The niche of a conversation with this prompt (see :func:`chitchat_conversations`)."""
    if not prompt or not prompt.strip():
        return OPEN_CHAT
    return prompt.split(" (i.e.", 1)[0].strip()


def chatterbot_rows() -> list[DemoRow]:
    """The English chatterbot corpus: each consecutive pair of turns is an example and the
    file is its niche (21 niches, heavily skewed); source ``demo:<niche>``, conversation
    ``chatterbot:<niche>:<index in the file>``.

    A conversation is used only when it is a list of strings. Anything else is skipped whole,
    because its turns cannot be told apart: trivia.yml has one conversation that YAML reads as
    a single string (a question and its answer on one line), which character by character
    would give dozens of one-letter examples.
    """
    root = resources.files("chatterbot_corpus") / "data" / "english"
    rows: list[DemoRow] = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yml"):
            continue
        niche = entry.name.removesuffix(".yml")
        corpus = yaml.safe_load(entry.read_text(encoding="utf-8"))
        for index, conversation in enumerate(corpus.get("conversations", [])):
            if not is_turn_list(conversation):
                continue
            for example in _pairs(conversation, niche, f"chatterbot:{niche}:{index}"):
                rows.append((f"demo:{niche}", example))
    return rows


def is_turn_list(conversation: object) -> bool:
    """Whether a corpus conversation is a list of turns (strings), the only shape used."""
    return isinstance(conversation, list) and all(isinstance(t, str) for t in conversation)


def _pairs(turns: Sequence[str], niche: str, conversation: str) -> list[ExampleIn]:
    """The consecutive pairs of turns that pass :func:`validate_row`, as human examples."""
    pairs = []
    for message, reply in itertools.pairwise(turns):
        try:
            example = validate_row(
                {"message": message, "reply": reply, "niche": niche}, Provenance.HUMAN
            )
        except ValueError:
            continue
        pairs.append(dataclasses.replace(example, conversation=conversation))
    return pairs


def _rank(seed: int, salt: str, key: str) -> bytes:
    return hashlib.sha256(f"{seed}:{salt}:{key}".encode()).digest()
