"""Measuring what people tap: everyday chat messages labelled with the replies that fit.

The held-out benchmark (safeguards.evaluator) asks whether a suggestion matches what one
person happened to reply. A reply suggestion is judged by a simpler question: of the three
chips shown, would the person tap one, and would any of them hurt? Smart Reply measured the
first as the share of messages whose suggestions were used (Kannan et al., KDD 2016, "Smart
Reply: Automated Response Suggestion for Email"), whose triggering model also decides when
not to suggest at all; ML Kit's Smart Reply does not suggest on sensitive
topics at all ("don't suggest on sensitive topics": its model returns no suggestions for
them). The everyday benchmark, ``safeguards/everyday.yaml``, is our own data: 464 chat
messages as people type them, in 45 situations (plans, thanks, good news, a joke, a death, a
hospital stay, a breakup, a lost job, distress ...), each labelled with the intents of the
catalogue (models/catalogue.yaml) that would be a *good* reply and those that would be
*wrong*. On a *sensitive* message (loss, illness, injury, an accident, danger, a breakup, a
lost job, distress) every humorous or positive intent not labelled good is wrong too: the
loader adds them, so no cheerful intent can be missed by the labels.

The metrics, over the first :data:`SHOWN` suggestions a model *shows* (its triggering
applied, nothing forced), each message counted once:

- ``tappable@3``: the share of messages with a good intent among them. A message the model
  stays silent on is not tappable.
- ``inappropriate@3``: the share of messages with a wrong intent among them. Silence is
  never inappropriate: on a sensitive message it is an acceptable answer.
- ``sensitive_tappable@3``, ``sensitive_inappropriate@3``: the same on the sensitive messages
  alone; the gate blocks a candidate with any sensitive message inappropriate
  (safeguards.gate).
- ``everyday_coverage``: the share of messages answered at all.
- ``everyday_intents``: distinct intents among the suggestions shown; ``everyday_distinct``:
  distinct suggestion texts (up to case and punctuation).

A suggestion is ``(text, intent)``. The intent is the one the model served it under (a
catalogue intent's name, or an unnamed cluster's id); when it is None the text's intent is
the catalogue intent with a reply of the same surface form (the response set's
``surface_key``: "thanks!" is "Thanks"), else it has *no intent*: neither good nor wrong, so
never tappable. An unnamed cluster is counted among the intents served but is neither good
nor wrong either: the labels name catalogue intents only.

``safeguards`` does not import ``models`` (docs/architecture.md): the catalogue reaches this
module as an :class:`IntentVocabulary` built by the caller from
``models.catalogue.load_catalogue()`` and ``models.reply_rules.surface_key``
(``worker.evaluation.everyday_benchmark`` does).

Example:
    >>> vocabulary = IntentVocabulary.of(load_catalogue().intents, surface_key)  # doctest: +SKIP
    >>> benchmark = load_everyday(vocabulary)  # doctest: +SKIP
    >>> scores = score_lists(benchmark, shown_lists(model, benchmark))  # doctest: +SKIP
    >>> scores.values()["tappable@3"]  # doctest: +SKIP
    0.41
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any
from typing import Protocol

import yaml
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import StrictBool
from pydantic import StrictInt
from pydantic import StrictStr
from pydantic import ValidationError

from safeguards.metrics import Metric
from safeguards.protocols import Suggester

# The file shipped in this package, and the format version this module reads.
EVERYDAY_FILE = "everyday.yaml"
VERSION = 1
# Suggestions a user is shown: the metrics are measured on the first this-many.
SHOWN = 3
# Tones that are wrong on a sensitive message unless the message's labels say good.
AUTO_WRONG_TONES = frozenset({"humorous", "positive"})
# The metrics' names (safeguards.metrics.METRICS has their labels and directions).
TAPPABLE = f"tappable@{SHOWN}"
INAPPROPRIATE = f"inappropriate@{SHOWN}"
SENSITIVE_TAPPABLE = f"sensitive_tappable@{SHOWN}"
SENSITIVE_INAPPROPRIATE = f"sensitive_inappropriate@{SHOWN}"
COVERAGE = "everyday_coverage"
INTENTS = "everyday_intents"
DISTINCT = "everyday_distinct"
# Offending suggestions kept in an evaluation's details, as examples for people to read.
KEPT_EXAMPLES = 10

_SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")

# A suggestion as the metrics take it: its text and the intent it was served under (None
# when unknown: the text is then matched against the catalogue's replies).
Suggested = tuple[str, str | None]


class CatalogueIntent(Protocol):
    """What this module reads of a catalogue intent (``models.catalogue.Intent`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def tone(self) -> str: ...

    @property
    def replies(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class IntentVocabulary:
    """The intent catalogue as the everyday benchmark needs it: each intent's tone, and which
    intent each canonical reply belongs to.

    Build it with :meth:`of`. Attributes:
        tones: intent name -> tone, in the catalogue's order.
        by_surface: surface key of a canonical reply -> its intent's name.
        surface_key: the function that gives a text's surface key
            (``models.reply_rules.surface_key``).
    """

    tones: Mapping[str, str]
    by_surface: Mapping[str, str]
    surface_key: Callable[[str], str]

    @classmethod
    def of(
        cls, intents: Iterable[CatalogueIntent], surface_key: Callable[[str], str]
    ) -> IntentVocabulary:
        """The vocabulary of a catalogue's intents.

        Args:
            intents: ``load_catalogue().intents``.
            surface_key: ``models.reply_rules.surface_key``.

        Returns:
            The vocabulary; a reply's surface form shared by two intents (the catalogue's
            validation refuses that) belongs to the first.
        """
        tones: dict[str, str] = {}
        by_surface: dict[str, str] = {}
        for intent in intents:
            tones.setdefault(intent.name, str(intent.tone))
            for reply in intent.replies:
                by_surface.setdefault(surface_key(reply), intent.name)
        return cls(MappingProxyType(tones), MappingProxyType(by_surface), surface_key)

    def __contains__(self, name: object) -> bool:
        return name in self.tones

    def with_tones(self, tones: Iterable[str]) -> frozenset[str]:
        """The names of the intents whose tone is one of ``tones``."""
        wanted = set(tones)
        return frozenset(name for name, tone in self.tones.items() if tone in wanted)

    def resolve(self, text: str, intent: str | None) -> str | None:
        """A suggestion's intent: ``intent`` when the model gave one, else the catalogue
        intent with a reply of the text's surface form, else None (no intent)."""
        if intent is not None:
            return intent
        return self.by_surface.get(self.surface_key(text))


@dataclass(frozen=True)
class EverydayMessage:
    """One labelled message.

    Attributes:
        text: the message, as typed.
        situation: the name of its situation.
        sensitive: whether it is about loss, illness, injury, danger or distress.
        good: intents a person would tap.
        wrong: intents that must not be suggested (on a sensitive message, every humorous or
            positive intent not in ``good`` among them).
    """

    text: str
    situation: str
    sensitive: bool
    good: frozenset[str]
    wrong: frozenset[str]


@dataclass(frozen=True)
class EverydayBenchmark:
    """The labelled messages, in the file's order, and the vocabulary they were checked on.

    Attributes:
        version: the file format's version.
        messages: every message.
        vocabulary: the intents the labels name.
        source: where it was read from, for messages.
    """

    version: int
    messages: tuple[EverydayMessage, ...]
    vocabulary: IntentVocabulary = field(repr=False, compare=False)
    source: str = ""

    def __len__(self) -> int:
        return len(self.messages)

    def texts(self) -> list[str]:
        """The messages' texts, in order."""
        return [m.text for m in self.messages]

    def situations(self) -> tuple[str, ...]:
        """The situations' names, in the file's order."""
        return tuple(dict.fromkeys(m.situation for m in self.messages))

    @property
    def sensitive(self) -> tuple[EverydayMessage, ...]:
        """The sensitive messages, in order."""
        return tuple(m for m in self.messages if m.sensitive)

    @property
    def fingerprint(self) -> str:
        """A hex SHA-256 of the messages and their labels: evaluations on different labels
        are not compared (safeguards.metrics.COMPARABLE_DETAILS)."""
        digest = hashlib.sha256(f"everyday {self.version}\x1e".encode())
        for m in self.messages:
            fields = (
                m.text,
                m.situation,
                str(m.sensitive),
                *sorted(m.good),
                "\x1d",
                *sorted(m.wrong),
            )
            digest.update("\x1f".join(fields).encode() + b"\x1e")
        return digest.hexdigest()


class InvalidEveryday(ValueError):
    """An everyday benchmark file that cannot be used; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
        super().__init__(f"{source}: {count}:\n" + "\n".join(f"- {p}" for p in problems))


# An intent name, or a list of them (an anchored list of `lists`, flattened).
_Names = list[StrictStr | list[StrictStr]]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: StrictStr
    good: _Names = []
    wrong: _Names = []


class _Situation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr
    sensitive: StrictBool
    good: _Names
    wrong: _Names = []
    messages: list[Any]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: StrictInt
    lists: dict[StrictStr, list[StrictStr]] = {}
    situations: list[Any]


def load_everyday(vocabulary: IntentVocabulary, path: Path | None = None) -> EverydayBenchmark:
    """Read and check an everyday benchmark file.

    Args:
        vocabulary: the intent catalogue the labels are checked against
            (``IntentVocabulary.of(load_catalogue().intents, surface_key)``).
        path: a file in the format of ``safeguards/everyday.yaml`` (its header); None reads
            the file shipped in this package.

    Returns:
        The benchmark: each message with its situation's labels and its own, and on a
        sensitive message every humorous or positive intent not labelled good added to wrong.

    Raises:
        InvalidEveryday: (a ValueError) not YAML; not shaped as the format says (each
            problem named by its situation and message); an intent name the catalogue does
            not have; an intent both good and wrong; a situation with no good intent or no
            message; a situation name or message text repeated; another version. Every
            problem is listed.
        OSError: the file cannot be read.
    """
    if path is None:
        source = f"safeguards/{EVERYDAY_FILE}"
        text = resources.files("safeguards").joinpath(EVERYDAY_FILE).read_text(encoding="utf-8")
    else:
        source = str(path)
        text = path.read_text(encoding="utf-8")
    return _parse(text, source, vocabulary)


def _parse(text: str, source: str, vocabulary: IntentVocabulary) -> EverydayBenchmark:
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidEveryday(source, [f"not valid YAML{where}: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise InvalidEveryday(source, [f"not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        found = f"a {type(data).__name__}" if data is not None else "an empty file"
        raise InvalidEveryday(
            source, [f"the file is not a mapping of 'version' and 'situations' ({found})"]
        )
    try:
        shape = _File.model_validate(data)
    except ValidationError as exc:
        raise InvalidEveryday(source, [_sentence("the file", e) for e in exc.errors()]) from None
    problems: list[str] = []
    if shape.version != VERSION:
        problems.append(f"version {shape.version!r} is not one this loader reads ({VERSION})")
    for list_name, names in shape.lists.items():
        problems += _unknown(f"list {list_name!r}", names, vocabulary)
    auto_wrong = vocabulary.with_tones(AUTO_WRONG_TONES)
    messages: list[EverydayMessage] = []
    seen_situations: set[str] = set()
    seen_texts: dict[str, str] = {}
    for number, raw in enumerate(shape.situations, start=1):
        name = raw.get("name") if isinstance(raw, dict) else None
        label = f"situation {name!r}" if isinstance(name, str) else f"situation {number}"
        try:
            situation = _Situation.model_validate(raw)
        except ValidationError as exc:
            problems += [_sentence(label, e) for e in exc.errors()]
            continue
        if not _SNAKE_CASE.fullmatch(situation.name):
            problems.append(f"{label}: the name is not snake_case")
        if situation.name in seen_situations:
            problems.append(f"{label} is defined more than once; names are unique")
        seen_situations.add(situation.name)
        good, wrong = _flat(situation.good), _flat(situation.wrong)
        problems += _unknown(label, [*good, *wrong], vocabulary)
        if not good:
            problems.append(f"{label} has no good intent; name at least one")
        if not situation.messages:
            problems.append(f"{label} has no messages")
        for both in sorted(set(good) & set(wrong)):
            problems.append(f"{label}: intent {both!r} is both good and wrong")
        for index, raw_message in enumerate(situation.messages, start=1):
            where = f"{label}, message {index}"
            if isinstance(raw_message, dict) and isinstance(raw_message.get("text"), str):
                where += f" ({raw_message['text']!r})"
            try:
                message = _Message.model_validate(raw_message)
            except ValidationError as exc:
                problems += [_sentence(where, e) for e in exc.errors()]
                continue
            own_good, own_wrong = _flat(message.good), _flat(message.wrong)
            problems += _unknown(where, [*own_good, *own_wrong], vocabulary)
            for both in sorted(set(own_good) & set(own_wrong)):
                problems.append(f"{where}: intent {both!r} is both good and wrong")
            text = message.text.strip()
            if not text:
                problems.append(f"{where}: the text is empty")
                continue
            key = " ".join(text.casefold().split())
            if key in seen_texts:
                problems.append(f"{where}: the same text as {seen_texts[key]}")
            seen_texts.setdefault(key, where)
            all_good = frozenset(good) | frozenset(own_good)
            all_wrong = frozenset(wrong) | frozenset(own_wrong)
            if situation.sensitive:
                all_wrong |= auto_wrong
            messages.append(
                EverydayMessage(
                    text=text,
                    situation=situation.name,
                    sensitive=situation.sensitive,
                    good=all_good,
                    # A message's own good takes an intent out of its situation's wrong.
                    wrong=frozenset(all_wrong - all_good),
                )
            )
    if not shape.situations:
        problems.append("the file has no situations")
    if problems:
        raise InvalidEveryday(source, problems)
    return EverydayBenchmark(shape.version, tuple(messages), vocabulary, source)


def _flat(names: Iterable[str | list[str]]) -> list[str]:
    """The names, a nested list (a YAML alias of ``lists``) flattened in place."""
    out: list[str] = []
    for item in names:
        out.extend(item if isinstance(item, list) else [item])
    return out


def _unknown(label: str, names: Iterable[str], vocabulary: IntentVocabulary) -> list[str]:
    missing = sorted({n for n in names if n not in vocabulary})
    return [
        f"{label} names intent {n!r}, which is not in the catalogue (models/catalogue.yaml)"
        for n in missing
    ]


def _sentence(label: str, error: Mapping[str, Any]) -> str:
    """One pydantic error as a sentence naming the entry and the field."""
    where = ".".join(str(part) for part in error["loc"])
    found = ""
    if error["type"] != "missing":
        shown = repr(error["input"])
        found = f" (found {shown if len(shown) <= 60 else shown[:57] + '...'})"
        if isinstance(error["input"], bool) and where.split(".")[0] in {"good", "wrong"}:
            found += "; quote it: YAML reads a bare yes, no, true, false, on or off as a boolean"
    return f"{label}: {where + ': ' if where else ''}{error['msg']}{found}"


# ---------------------------------------------------------------------------------------
# The metrics


@dataclass(frozen=True)
class Offence:
    """A wrong suggestion shown for a message."""

    message: str
    situation: str
    sensitive: bool
    suggestion: str
    intent: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "situation": self.situation,
            "sensitive": self.sensitive,
            "suggestion": self.suggestion,
            "intent": self.intent,
        }


@dataclass(frozen=True)
class EverydayScores:
    """A model's lists for the everyday messages, counted.

    Attributes (counts of messages unless said otherwise):
        messages, sensitive: the messages, and the sensitive ones among them.
        answered, sensitive_answered: those the model showed any suggestion for.
        tappable, sensitive_tappable: those with a good intent among the first
            :data:`SHOWN` suggestions shown.
        inappropriate, sensitive_inappropriate: those with a wrong intent among them.
        shown: suggestions shown, in all.
        without_intent: suggestions shown that have no intent (neither good nor wrong).
        intents: distinct intents among the suggestions shown (catalogue intents and
            unnamed clusters).
        distinct_texts: distinct suggestion texts shown, up to case and punctuation.
        offences: every wrong suggestion shown, sensitive messages first, then in the
            benchmark's order.
    """

    messages: int
    sensitive: int
    answered: int
    sensitive_answered: int
    tappable: int
    sensitive_tappable: int
    inappropriate: int
    sensitive_inappropriate: int
    shown: int
    without_intent: int
    intents: int
    distinct_texts: int
    offences: tuple[Offence, ...]

    def values(self) -> dict[str, float]:
        """The metrics by name (shares in [0, 1]; 0 for a share of nothing)."""
        return {name: value for name, (value, _) in self._measured().items()}

    def metrics(self) -> list[Metric]:
        """The metrics as registry metrics (safeguards.metrics), each with its support: the
        messages (or the sensitive ones) it is a share of, or the suggestions shown."""
        return [
            Metric.measured(name, value, support)
            for name, (value, support) in self._measured().items()
        ]

    def _measured(self) -> dict[str, tuple[float, int]]:
        return {
            TAPPABLE: (_share(self.tappable, self.messages), self.messages),
            INAPPROPRIATE: (_share(self.inappropriate, self.messages), self.messages),
            SENSITIVE_TAPPABLE: (_share(self.sensitive_tappable, self.sensitive), self.sensitive),
            SENSITIVE_INAPPROPRIATE: (
                _share(self.sensitive_inappropriate, self.sensitive),
                self.sensitive,
            ),
            COVERAGE: (_share(self.answered, self.messages), self.messages),
            INTENTS: (float(self.intents), self.shown),
            DISTINCT: (float(self.distinct_texts), self.shown),
        }

    def sensitive_offences(self) -> tuple[Offence, ...]:
        """The wrong suggestions shown for sensitive messages."""
        return tuple(o for o in self.offences if o.sensitive)

    def summary(self, examples: int = KEPT_EXAMPLES) -> dict[str, Any]:
        """JSON-safe counts and the first ``examples`` offences on sensitive messages and on
        the others: what an evaluation keeps in ``details["everyday"]`` and the gate quotes."""
        others = [o for o in self.offences if not o.sensitive]
        return {
            "messages": self.messages,
            "sensitive": self.sensitive,
            "answered": self.answered,
            "sensitive_answered": self.sensitive_answered,
            "tappable": self.tappable,
            "sensitive_tappable": self.sensitive_tappable,
            "inappropriate": self.inappropriate,
            "sensitive_inappropriate": self.sensitive_inappropriate,
            "shown": self.shown,
            "without_intent": self.without_intent,
            "sensitive_examples": [o.to_dict() for o in self.sensitive_offences()[:examples]],
            "other_examples": [o.to_dict() for o in others[:examples]],
        }


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def score_lists(
    benchmark: EverydayBenchmark, suggestions: Sequence[Sequence[Suggested]]
) -> EverydayScores:
    """Count a model's lists for the everyday messages.

    Args:
        benchmark: the labelled messages.
        suggestions: per message, in the benchmark's order, the suggestions *shown* as
            ``(text, intent or None)``, best first; an empty list when the model stays
            silent. Only the first :data:`SHOWN` count.

    Returns:
        The counts (:class:`EverydayScores`); ``values()`` and ``metrics()`` give the shares.

    Raises:
        ValueError: not one list per message.
    """
    if len(suggestions) != len(benchmark):
        raise ValueError(
            f"{len(suggestions)} suggestion lists for {len(benchmark)} everyday messages"
        )
    vocabulary = benchmark.vocabulary
    answered = sensitive_answered = tappable = sensitive_tappable = 0
    inappropriate = sensitive_inappropriate = shown = without_intent = 0
    intents: set[str] = set()
    texts: set[str] = set()
    offences: list[Offence] = []
    for message, row in zip(benchmark.messages, suggestions, strict=True):
        row = list(row)[:SHOWN]
        if row:
            answered += 1
            sensitive_answered += message.sensitive
        resolved = [(text, vocabulary.resolve(text, intent)) for text, intent in row]
        shown += len(resolved)
        without_intent += sum(intent is None for _, intent in resolved)
        intents.update(intent for _, intent in resolved if intent is not None)
        texts.update(vocabulary.surface_key(text) for text, _ in resolved)
        if any(intent in message.good for _, intent in resolved):
            tappable += 1
            sensitive_tappable += message.sensitive
        wrong = [(text, intent) for text, intent in resolved if intent in message.wrong]
        if wrong:
            inappropriate += 1
            sensitive_inappropriate += message.sensitive
        offences += [
            Offence(message.text, message.situation, message.sensitive, text, str(intent))
            for text, intent in wrong
        ]
    offences.sort(key=lambda o: not o.sensitive)  # stable: the benchmark's order within
    return EverydayScores(
        messages=len(benchmark),
        sensitive=len(benchmark.sensitive),
        answered=answered,
        sensitive_answered=sensitive_answered,
        tappable=tappable,
        sensitive_tappable=sensitive_tappable,
        inappropriate=inappropriate,
        sensitive_inappropriate=sensitive_inappropriate,
        shown=shown,
        without_intent=without_intent,
        intents=len(intents),
        distinct_texts=len(texts),
        offences=tuple(offences),
    )


def shown_lists(
    model: Suggester, benchmark: EverydayBenchmark, rows: Sequence[Sequence[Any]] | None = None
) -> list[list[Suggested]]:
    """What a model shows for each everyday message: its first :data:`SHOWN` suggestions
    when its triggering answers the message, else nothing (no ``force``: what a client is
    shown by default).

    Args:
        model: anything with ``suggest_many(messages, k=...)`` returning, per message,
            objects with ``text`` (``models.suggester.SuggestionModel``); an ``intent``
            attribute, when they have one, is the intent they were served under (a name;
            an object with a ``name`` gives that). A ``triggering`` attribute
            (``shown(suggestions) -> suggestions``) decides which of a list are shown.
        benchmark: the labelled messages.
        rows: the model's suggestions for ``benchmark.texts()`` when already computed
            (at least :data:`SHOWN` each); None asks the model.

    Returns:
        Per message, the shown ``(text, intent or None)`` pairs, best first.
    """
    if rows is None:
        rows = model.suggest_many(benchmark.texts(), k=SHOWN)
    triggering = getattr(model, "triggering", None)
    shown: list[list[Suggested]] = []
    for row in rows:
        # Only the suggestions that reach the threshold are shown (Triggering.shown).
        visible = list(row) if triggering is None else list(triggering.shown(row))
        shown.append([(str(s.text), _intent_name(s)) for s in visible[:SHOWN]])
    return shown


def _intent_name(suggestion: Any) -> str | None:
    intent = getattr(suggestion, "intent", None)
    if intent is None or isinstance(intent, str):
        return intent
    name = getattr(intent, "name", None)
    return name if isinstance(name, str) else str(intent)
