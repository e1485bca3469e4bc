"""The starter catalogue of reply intents: what a suggested reply can mean, and how it sounds.

An *intent* is one meaning a reply can carry ("thanks", "running late", "sorry for your
loss", "yes", "no", "what time?"): a name, the group (family) it is listed under, a tone, a
stance and 2 to 6 canonical replies as a person would type them. Production reply
suggestion organises its response set this way (Kannan et al., KDD 2016, "Smart Reply",
section 4: a few hand-labelled intents, each with a few canonical replies, seed the semantic
clustering of the replies found in the data; section 5: one reply per intent in a list of
suggestions, and a negative reply beside positive ones). The catalogue is data in the
repository, ``models/catalogue.yaml`` (its header gives the format and the rules), reviewed
like code and shipped as package data.

Tone decides where an intent may be suggested: ``sympathetic`` intents are the ones that are
right to send to someone with bad news (a death, illness, injury, danger, distress), so
their replies are calm (no exclamation mark, none of :data:`CHEERFUL_WORDS`). Stance marks
the intents that answer a question or proposal ``yes`` or ``no``; a group with a ``yes``
intent has a ``no`` intent beside it, so a "no" can always be offered with a "yes".

Every reply passes rules 1-4 of the response set (models.reply_rules.refusal: short and
plain, no personal data, not sensitive, not blocked), and no reply is repeated, within an
intent or across intents, up to case and punctuation (models.reply_rules.surface_key).
:func:`load_catalogue` reads the file with PyYAML, checks its shape with pydantic and its
content with :func:`validate`, and refuses it with every problem listed.

Each intent also lists the incoming messages it answers (``prompts``): a message is matched
against them, message to message, which is what a symmetric sentence encoder does well
(Reimers and Gurevych 2019), where matching a message to the reply's own text finds replies
that sound like the message ("Good afternoon!" for "good morning!"). Production assistants
train intents from example utterances the same way (Dialogflow's training phrases, Rasa's
NLU examples). models.prompts scores intents by them.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import StrictBool
from pydantic import StrictInt
from pydantic import StrictStr
from pydantic import ValidationError
from pydantic import field_validator

from core.content import personal_data
from models.reply_rules import Curation
from models.reply_rules import ResponseSetConfig
from models.reply_rules import Rule
from models.reply_rules import refusal
from models.reply_rules import surface_key

# The file shipped in this package, and the format version this module reads.
CATALOGUE_FILE = "catalogue.yaml"
VERSION = 1
# Canonical replies per intent: enough to recognise the meaning, few enough to review.
MIN_REPLIES = 2
MAX_REPLIES = 6
# Incoming messages an intent answers: at most this many characters (a chat message, not a
# letter), none repeated within an intent.
MAX_PROMPT_CHARS = 120
# Words that make a reply cheerful or flippant: never in a sympathetic reply (nor is "!").
CHEERFUL_WORDS = frozenset(
    {
        "amazing",
        "awesome",
        "congrats",
        "congratulations",
        "cool",
        "exciting",
        "fun",
        "great",
        "haha",
        "hahaha",
        "hehe",
        "hooray",
        "lol",
        "lucky",
        "nice",
        "party",
        "woohoo",
        "yay",
    }
)

_NO_INTENTS = "the catalogue has no intents"
_SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_WORDS = re.compile(r"[a-z]+")


class Tone(enum.StrEnum):
    """How a reply sounds, which decides the messages it may answer."""

    SYMPATHETIC = "sympathetic"
    AFFECTIONATE = "affectionate"
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"
    HUMOROUS = "humorous"


class Stance(enum.StrEnum):
    """The answer an intent gives to a question or proposal."""

    YES = "yes"
    NO = "no"


@dataclass(frozen=True)
class Intent:
    """One meaning a reply can carry.

    Attributes:
        name: unique, snake_case ("running_late").
        group: the family it is listed under, snake_case ("on_the_way").
        tone: how its replies sound.
        stance: ``yes`` or ``no`` for an intent that answers a question or proposal, else None.
        replies: its canonical replies, 2 to 6, in the catalogue's order.
        prompts: incoming messages one of its replies answers well (models.prompts); none
            for an intent a reviewer added until someone writes them.
        general: for a sympathetic intent, whether its replies suit any bad news ("So sorry
            to hear that"); one that is not answers only the news its prompts describe
            ("Get well soon", "Sorry for your loss": models.tone.SPECIFIC_SYMPATHY_MATCH).
    """

    name: str
    group: str
    tone: Tone
    stance: Stance | None
    replies: tuple[str, ...]
    prompts: tuple[str, ...] = ()
    general: bool = False


@dataclass(frozen=True)
class Catalogue:
    """The intents, in the file's order, with look-ups by name and group.

    Attributes:
        version: the file format's version.
        intents: every intent, in the file's order.
    """

    version: int
    intents: tuple[Intent, ...]
    _by_name: Mapping[str, Intent] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Intent] = {}
        for intent in self.intents:
            by_name.setdefault(intent.name, intent)  # a duplicate name: validate reports it
        object.__setattr__(self, "_by_name", MappingProxyType(by_name))

    def __len__(self) -> int:
        return len(self.intents)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Intent:
        """The intent called ``name``.

        Raises:
            KeyError: no intent has that name.
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no intent is called {name!r}") from None

    def get(self, name: str) -> Intent | None:
        """The intent called ``name``, or None."""
        return self._by_name.get(name)

    def names(self) -> tuple[str, ...]:
        """Every intent's name, in the file's order."""
        return tuple(i.name for i in self.intents)

    def groups(self) -> dict[str, tuple[Intent, ...]]:
        """The intents of each group, groups in order of their first intent."""
        grouped: dict[str, list[Intent]] = {}
        for intent in self.intents:
            grouped.setdefault(intent.group, []).append(intent)
        return {group: tuple(members) for group, members in grouped.items()}

    def in_group(self, group: str) -> tuple[Intent, ...]:
        """The intents of ``group`` (empty when there is no such group)."""
        return tuple(i for i in self.intents if i.group == group)

    def with_tone(self, tone: Tone) -> tuple[Intent, ...]:
        """The intents of ``tone``."""
        return tuple(i for i in self.intents if i.tone == tone)

    def replies(self) -> Iterator[tuple[Intent, str]]:
        """Every (intent, reply) pair, in the file's order."""
        for intent in self.intents:
            for reply in intent.replies:
                yield intent, reply

    def prompts(self) -> Iterator[tuple[Intent, str]]:
        """Every (intent, incoming message it answers) pair, in the file's order."""
        for intent in self.intents:
            for prompt in intent.prompts:
                yield intent, prompt


class InvalidCatalogue(ValueError):
    """A catalogue file that cannot be used; ``problems`` lists every reason, one sentence each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
        super().__init__(f"{source}: {count}:\n" + "\n".join(f"- {p}" for p in problems))


class _Entry(BaseModel):
    """The shape of one intent in the file (its content is :func:`validate`'s to check)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr
    group: StrictStr
    tone: Tone
    stance: Stance | None = None
    replies: list[StrictStr]
    prompts: list[StrictStr] = []
    general: StrictBool = False

    @field_validator("stance", mode="before")
    @classmethod
    def _bare_yes_no(cls, value: Any) -> Any:
        # YAML 1.1 (PyYAML) reads a bare `stance: yes` as true and `no` as false.
        if value is True:
            return Stance.YES.value
        if value is False:
            return Stance.NO.value
        return value


class _File(BaseModel):
    """The shape of the file; each entry of ``intents`` is checked apart (:class:`_Entry`), so
    one malformed entry does not hide the problems of the others."""

    model_config = ConfigDict(extra="forbid")

    version: StrictInt
    intents: list[Any]


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and check a catalogue file.

    Args:
        path: a catalogue file in the format of ``models/catalogue.yaml``; None reads the
            catalogue shipped in this package (read once, then cached: a Catalogue is
            immutable).

    Returns:
        The catalogue, every problem of :func:`validate` absent.

    Raises:
        InvalidCatalogue: (a ValueError) the file is not YAML, is not shaped as a catalogue
            (a missing or unknown key, a reply that is not text, an unknown tone or stance;
            each named by its entry), or breaks a rule of :func:`validate`; the message lists
            every problem found.
        OSError: the file cannot be read.
    """
    if path is None:
        return _packaged()
    return _parse(path.read_text(encoding="utf-8"), str(path))


@functools.cache
def _packaged() -> Catalogue:
    text = resources.files("models").joinpath(CATALOGUE_FILE).read_text(encoding="utf-8")
    return _parse(text, f"models/{CATALOGUE_FILE}")


def _parse(text: str, source: str) -> Catalogue:
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidCatalogue(source, [f"not valid YAML{where}: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise InvalidCatalogue(source, [f"not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        found = f"a {type(data).__name__}" if data is not None else "an empty file"
        raise InvalidCatalogue(
            source, [f"the file is not a mapping of 'version' and 'intents' ({found})"]
        )
    try:
        shape = _File.model_validate(data)
    except ValidationError as exc:
        raise InvalidCatalogue(source, [_sentence("the file", e) for e in exc.errors()]) from None
    problems: list[str] = []
    intents: list[Intent] = []
    for number, raw in enumerate(shape.intents, start=1):
        name = raw.get("name") if isinstance(raw, dict) else None
        label = f"intent {name!r} (entry {number})" if isinstance(name, str) else f"entry {number}"
        try:
            entry = _Entry.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_sentence(label, e) for e in exc.errors())
            continue
        intents.append(
            Intent(
                entry.name,
                entry.group,
                entry.tone,
                entry.stance,
                tuple(entry.replies),
                tuple(entry.prompts),
                entry.general,
            )
        )
    catalogue = Catalogue(shape.version, tuple(intents))
    content = validate(catalogue)
    if shape.intents and not intents:
        content.remove(_NO_INTENTS)  # it has entries, every one malformed (listed above)
    problems.extend(content)
    if problems:
        raise InvalidCatalogue(source, problems)
    return catalogue


def _sentence(label: str, error: Mapping[str, Any]) -> str:
    """One pydantic error as a sentence naming the entry and the field."""
    where = ".".join(str(part) for part in error["loc"])
    found = ""
    if error["type"] != "missing":
        shown = repr(error["input"])
        found = f" (found {shown if len(shown) <= 60 else shown[:57] + '...'})"
        if isinstance(error["input"], bool):
            found += "; quote it: YAML reads a bare yes, no, true, false, on or off as a boolean"
    return f"{label}: {where + ': ' if where else ''}{error['msg']}{found}"


def validate(
    catalogue: Catalogue,
    config: ResponseSetConfig | None = None,
    curation: Curation | None = None,
) -> list[str]:
    """Every problem of a catalogue, one sentence each (empty when there is none).

    Checks the version; each intent's name and group (snake_case, names unique), tone and
    stance (known values), number of replies (:data:`MIN_REPLIES` to :data:`MAX_REPLIES`);
    each reply against rules 1-4 of the response set (models.reply_rules.refusal, the rule
    named), a sympathetic reply for an exclamation mark or a cheerful word; a reply repeated
    within an intent or across intents (same :func:`models.reply_rules.surface_key`); and
    each group with a ``yes`` intent for a ``no`` intent beside it (Kannan et al. 2016,
    section 5: a negative reply is offered beside positive ones); each prompt for being one
    line of text of at most :data:`MAX_PROMPT_CHARS` characters, not repeated within its
    intent (a prompt may belong to several intents: a message has more than one good reply).

    Args:
        catalogue: the catalogue to check.
        config: the response set's rules; the defaults when None.
        curation: the product team's blocks (rule 4); none when None.

    Returns:
        The problems, in the catalogue's order.
    """
    config = config or ResponseSetConfig()
    curation = curation or Curation()
    problems: list[str] = []
    if catalogue.version != VERSION:
        problems.append(f"version {catalogue.version!r} is not one this loader reads ({VERSION})")
    if not catalogue.intents:
        problems.append(_NO_INTENTS)
    seen_names: set[str] = set()
    owner: dict[str, tuple[Intent, str]] = {}  # surface key -> the first intent and reply
    for intent in catalogue.intents:
        label = f"intent {intent.name!r}"
        if intent.name in seen_names:
            problems.append(f"{label} is defined more than once; names are unique")
        seen_names.add(intent.name)
        for what, value in (("name", intent.name), ("group", intent.group)):
            if not isinstance(value, str) or not _SNAKE_CASE.fullmatch(value):
                problems.append(f"{label} has the {what} {value!r}, which is not snake_case")
        if intent.tone not in {t.value for t in Tone}:
            problems.append(
                f"{label} has an unknown tone {intent.tone!r} (one of {', '.join(Tone)})"
            )
        if intent.stance is not None and intent.stance not in {s.value for s in Stance}:
            problems.append(f"{label} has an unknown stance {intent.stance!r} (yes, no, or none)")
        if intent.general and intent.tone != Tone.SYMPATHETIC:
            problems.append(
                f"{label} is general but its tone is {intent.tone}: only a sympathetic "
                "intent answers any bad news"
            )
        if not MIN_REPLIES <= len(intent.replies) <= MAX_REPLIES:
            problems.append(
                f"{label} has {len(intent.replies)} replies; "
                f"an intent has {MIN_REPLIES} to {MAX_REPLIES}"
            )
        for reply in intent.replies:
            problems.extend(_reply_problems(intent, reply, config, curation))
            if not isinstance(reply, str):
                continue
            key = surface_key(reply)
            first = owner.get(key)
            if first is None:
                owner[key] = (intent, reply)
            elif first[0] is intent:
                problems.append(
                    f"{label} repeats a reply: {reply!r} is {first[1]!r} up to case and punctuation"
                )
            else:
                problems.append(
                    f"reply {reply!r} of {label} is already reply {first[1]!r} of intent "
                    f"{first[0].name!r} (the same up to case and punctuation); "
                    "a reply belongs to one intent"
                )
        problems.extend(_prompt_problems(intent))
    problems.extend(_stance_problems(catalogue))
    return problems


def _reply_problems(
    intent: Intent, reply: object, config: ResponseSetConfig, curation: Curation
) -> list[str]:
    label = f"intent {intent.name!r}"
    if not isinstance(reply, str):
        return [f"{label} has a reply that is not text: {reply!r}"]
    problems: list[str] = []
    if reply != reply.strip():
        problems.append(f"{label} has a reply with spaces around it: {reply!r}")
    rule = refusal(reply, config, curation)
    if rule is not None:
        problems.append(
            f"{label} has the reply {reply!r}, which breaks the response set's "
            f"{rule.value} rule ({_rule_text(rule, reply, config)})"
        )
    if intent.tone == Tone.SYMPATHETIC:
        cheerful = sorted(set(_WORDS.findall(reply.casefold())) & CHEERFUL_WORDS)
        if "!" in reply or cheerful:
            marks = ["an exclamation mark"] if "!" in reply else []
            marks += [repr(w) for w in cheerful]
            problems.append(
                f"{label} is sympathetic but its reply {reply!r} has {' and '.join(marks)}; "
                "a sympathetic reply is calm"
            )
    return problems


def _prompt_problems(intent: Intent) -> list[str]:
    label = f"intent {intent.name!r}"
    problems: list[str] = []
    seen: set[str] = set()
    for prompt in intent.prompts:
        if not prompt.strip() or "\n" in prompt or len(prompt) > MAX_PROMPT_CHARS:
            problems.append(
                f"{label} has the prompt {prompt!r}; a prompt is one line of text of 1 to "
                f"{MAX_PROMPT_CHARS} characters"
            )
        key = surface_key(prompt)
        if key in seen:
            problems.append(f"{label} repeats the prompt {prompt!r} (up to case and punctuation)")
        seen.add(key)
    return problems


def _rule_text(rule: Rule, reply: str, config: ResponseSetConfig) -> str:
    """What ``rule`` asks of a reply, in words."""
    if rule == Rule.SHORT_AND_PLAIN:
        return (
            f"one line, at most {config.max_chars} characters and {config.max_words} words, "
            "no code or markup"
        )
    if rule == Rule.PERSONAL_DATA:
        return f"no personal data; found: {', '.join(personal_data(reply.strip()))}"
    if rule == Rule.SENSITIVE:
        return "no profanity, slur, sexual or violent word"
    return "not blocked by the product team"


def _stance_problems(catalogue: Catalogue) -> list[str]:
    problems: list[str] = []
    for group, members in catalogue.groups().items():
        stances = {i.stance for i in members}
        if Stance.YES in stances and Stance.NO not in stances:
            yes = ", ".join(repr(i.name) for i in members if i.stance == Stance.YES)
            problems.append(
                f"group {group!r} has 'yes' intents ({yes}) but no 'no' intent beside them"
            )
    return problems
