"""The starter catalogue of reply intents: the shipped file loads and keeps its rules (sizes,
the response set's rules 1-4, the families the product needs, a "no" beside every "yes", calm
sympathetic replies), and a file that breaks a rule is refused with the reply and rule named."""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.catalogue import Catalogue
from models.catalogue import Intent
from models.catalogue import InvalidCatalogue
from models.catalogue import Stance
from models.catalogue import Tone
from models.catalogue import load_catalogue
from models.catalogue import validate
from models.reply_rules import Block
from models.reply_rules import Curation
from models.reply_rules import ResponseSetConfig
from models.reply_rules import Rule
from models.reply_rules import refusal
from models.reply_rules import surface_key

ROOT = Path(__file__).resolve().parent.parent

# The families the product named, as groups of the catalogue and as intents.
REQUIRED_GROUPS = {
    "acknowledge",
    "plans",
    "times_places",
    "on_the_way",
    "thanks",
    "youre_welcome",
    "apologies",
    "congratulations",
    "sympathy",
    "get_well",
    "encouragement",
    "greetings",
    "goodbyes",
    "affection",
    "laughter",
    "surprise",
    "answers",
    "questions",
    "compliments",
    "food_drink",
    "calls",
    "moments",
    "opinions",
    "wishes",
}
REQUIRED_INTENTS = {
    "ok",
    "got_it",
    "makes_sense",
    "sounds_good",
    "cant_make_it",
    "what_time",
    "where_to_meet",
    "usual_place",
    "on_my_way",
    "running_late",
    "almost_there",
    "im_here",
    "thanks",
    "youre_welcome",
    "no_worries",
    "sorry",
    "forgive",
    "congrats",
    "sorry_for_your_loss",
    "thinking_of_you",
    "sorry_to_hear",
    "here_for_you",
    "need_anything",
    "get_well_soon",
    "you_got_this",
    "good_luck",
    "good_morning",
    "good_night",
    "talk_later",
    "love_you",
    "miss_you",
    "haha",
    "lol",
    "hilarious",
    "wow",
    "no_way",
    "yes",
    "no",
    "maybe",
    "not_sure",
    "let_me_check",
    "how_about_you",
    "are_you_ok",
    "what_happened",
    "how_did_it_go",
    "can_i_call",
    "call_you_later",
    "one_sec",
    "give_me_a_minute",
    "agree",
    "disagree",
    "have_a_good_weekend",
    "happy_birthday",
}
# What someone with bad news may be sent: each of these is sympathetic.
BAD_NEWS_INTENTS = {
    "sorry_for_your_loss",
    "condolences",
    "sorry_to_hear",
    "thinking_of_you",
    "here_for_you",
    "need_anything",
    "want_to_talk",
    "sounds_hard",
    "are_you_ok",
    "get_well_soon",
}
# Cheerful or flippant words, written here apart from models.catalogue.CHEERFUL_WORDS so the
# shipped data is checked against a list the module under test does not supply.
CHEERFUL = {
    "haha",
    "hahaha",
    "hehe",
    "lol",
    "yay",
    "woohoo",
    "hooray",
    "awesome",
    "amazing",
    "congrats",
    "congratulations",
    "fun",
    "funny",
    "great",
    "cool",
    "nice",
    "party",
    "jk",
}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def test_the_shipped_catalogue_loads_with_no_problem(catalogue: Catalogue) -> None:
    assert catalogue.version == 1
    assert validate(catalogue) == []
    assert load_catalogue() is catalogue  # read once, then cached


def test_the_shipped_catalogue_is_large_enough_and_each_intent_has_2_to_6_replies(
    catalogue: Catalogue,
) -> None:
    assert len(catalogue.intents) >= 150
    assert sum(len(i.replies) for i in catalogue.intents) >= 600
    assert [i.name for i in catalogue.intents if not 2 <= len(i.replies) <= 6] == []


def test_every_shipped_reply_passes_the_response_set_rules(catalogue: Catalogue) -> None:
    refused = [
        (intent.name, reply, rule)
        for intent, reply in catalogue.replies()
        if (rule := refusal(reply, ResponseSetConfig(), Curation())) is not None
    ]
    assert refused == []


def test_no_shipped_reply_is_repeated_within_or_across_intents(catalogue: Catalogue) -> None:
    keys = Counter(surface_key(reply) for _, reply in catalogue.replies())
    assert [key for key, n in keys.items() if n > 1] == []


def test_names_are_unique_and_names_and_groups_snake_case(catalogue: Catalogue) -> None:
    names = Counter(catalogue.names())
    assert [n for n, count in names.items() if count > 1] == []
    for intent in catalogue.intents:
        for value in (intent.name, intent.group):
            assert value.isascii() and value == value.lower() and " " not in value, intent
            assert value.replace("_", "").isalnum(), intent


def test_the_families_the_product_named_are_present(catalogue: Catalogue) -> None:
    assert REQUIRED_GROUPS - set(catalogue.groups()) == set()
    assert REQUIRED_INTENTS - set(catalogue.names()) == set()
    assert {t.value for t in Tone} == {i.tone.value for i in catalogue.intents}


def test_every_yes_stands_beside_a_no_of_its_group(catalogue: Catalogue) -> None:
    yes = [i for i in catalogue.intents if i.stance == Stance.YES]
    assert len(yes) >= 10
    alone = [
        i.name for i in yes if not any(o.stance == Stance.NO for o in catalogue.in_group(i.group))
    ]
    assert alone == []
    assert catalogue["yes"].stance == Stance.YES
    assert catalogue["no"].stance == Stance.NO
    # Yes is cheerful agreement, no is declining.
    for intent in catalogue.intents:
        if intent.stance == Stance.YES:
            assert intent.tone == Tone.POSITIVE, intent.name
        elif intent.stance == Stance.NO:
            assert intent.tone == Tone.NEGATIVE, intent.name


def test_sympathetic_replies_are_calm(catalogue: Catalogue) -> None:
    sympathetic = catalogue.with_tone(Tone.SYMPATHETIC)
    assert len(sympathetic) >= 20
    assert {i.name for i in sympathetic} >= BAD_NEWS_INTENTS
    cheerful = [
        (intent.name, reply)
        for intent in sympathetic
        for reply in intent.replies
        if "!" in reply or set(surface_key(reply).split()) & CHEERFUL
    ]
    assert cheerful == []


def test_lookups(catalogue: Catalogue) -> None:
    thanks = catalogue["thanks"]
    assert (thanks.group, thanks.tone, thanks.stance) == ("thanks", Tone.POSITIVE, None)
    assert "Thanks!" in thanks.replies
    assert "thanks" in catalogue and "no_such_intent" not in catalogue
    assert catalogue.get("no_such_intent") is None
    with pytest.raises(KeyError, match="no_such_intent"):
        catalogue["no_such_intent"]
    pairs = list(catalogue.replies())
    assert len(pairs) == sum(len(i.replies) for i in catalogue.intents)
    assert pairs[0] == (catalogue.intents[0], catalogue.intents[0].replies[0])
    groups = catalogue.groups()
    assert sum(len(members) for members in groups.values()) == len(catalogue)
    assert groups["sympathy"] == catalogue.in_group("sympathy")
    assert catalogue.in_group("no_such_group") == ()


def test_the_catalogue_is_package_data_of_models() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "catalogue.yaml" in pyproject["tool"]["setuptools"]["package-data"]["models"]
    assert (ROOT / "models" / "catalogue.yaml").is_file()


# Catalogues that break a rule.


def entry(
    name: str,
    replies: list[Any],
    group: str = "answers",
    tone: str = "neutral",
    stance: str | None = None,
) -> dict[str, Any]:
    return {"name": name, "group": group, "tone": tone, "stance": stance, "replies": replies}


GOOD = [
    entry("yes", ["Yes", "Yep"], tone="positive", stance="yes"),
    entry("no", ["No", "Nope"], tone="negative", stance="no"),
]


def write(tmp_path: Path, intents: list[dict[str, Any]], version: int = 1) -> Path:
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump({"version": version, "intents": intents}), encoding="utf-8")
    return path


def build(intents: list[dict[str, Any]]) -> Catalogue:
    return Catalogue(
        1,
        tuple(
            Intent(
                e["name"],
                e["group"],
                e["tone"],
                e["stance"],
                tuple(e["replies"]),
                general=e.get("general", False),
            )
            for e in intents
        ),
    )


def test_a_small_good_catalogue_loads(tmp_path: Path) -> None:
    loaded = load_catalogue(write(tmp_path, GOOD))
    assert loaded.names() == ("yes", "no")
    assert loaded["no"].replies == ("No", "Nope")
    assert loaded["no"].stance is Stance.NO and loaded["no"].tone is Tone.NEGATIVE
    assert validate(loaded) == []


@pytest.mark.parametrize(
    ("reply", "rule"),
    [
        ("Sure, I will be there at the usual time, see you", Rule.SHORT_AND_PLAIN),
        ("x" * 60, Rule.SHORT_AND_PLAIN),
        ("Call me on 415 555 0132", Rule.PERSONAL_DATA),
        ("Mail me at someone@example.com", Rule.PERSONAL_DATA),
        ("Damn it", Rule.SENSITIVE),
    ],
)
def test_a_reply_that_breaks_a_rule_is_named_with_the_rule(
    tmp_path: Path, reply: str, rule: Rule
) -> None:
    intents = [*GOOD, entry("ask", ["Ok", reply])]
    problems = validate(build(intents))
    assert len(problems) == 1, problems
    assert repr(reply) in problems[0] and rule.value in problems[0]
    assert "'ask'" in problems[0]
    with pytest.raises(ValueError, match=rule.value) as raised:
        load_catalogue(write(tmp_path, intents))
    assert repr(reply) in str(raised.value)


def test_a_blocked_reply_is_named_when_the_product_blocks_it() -> None:
    catalogue = build(GOOD)
    assert validate(catalogue) == []
    problems = validate(catalogue, curation=Curation(blocks=(Block("text", "nope!"),)))
    assert len(problems) == 1 and "'Nope'" in problems[0] and "blocked" in problems[0]


def test_a_reply_repeated_across_intents_is_named(tmp_path: Path) -> None:
    intents = [*GOOD, entry("agree", ["Yes!", "Agreed"], stance="yes", tone="positive")]
    problems = validate(build(intents))
    assert len(problems) == 1, problems
    assert "'Yes!'" in problems[0] and "'Yes'" in problems[0]
    assert "'agree'" in problems[0] and "'yes'" in problems[0]
    with pytest.raises(ValueError, match="belongs to one intent"):
        load_catalogue(write(tmp_path, intents))


def test_a_reply_repeated_within_an_intent_is_named() -> None:
    problems = validate(build([*GOOD, entry("ok", ["Ok", "ok!", "Okay"])]))
    assert len(problems) == 1 and "'ok!'" in problems[0] and "'ok'" in problems[0]


@pytest.mark.parametrize("replies", [["Ok"], ["A", "B", "C", "D", "E", "F", "G"], []])
def test_too_few_or_too_many_replies_are_named(replies: list[str]) -> None:
    problems = validate(build([*GOOD, entry("ok", replies)]))
    assert problems == [f"intent 'ok' has {len(replies)} replies; an intent has 2 to 6"]


def test_unknown_tones_and_stances_duplicate_names_and_bad_names_are_named() -> None:
    intents = [
        *GOOD,
        entry("cheer", ["Woo", "Wahey"], tone="cheerful"),
        entry("perhaps", ["Perhaps", "Could be"], stance="maybe"),
        entry("yes", ["Yes indeed", "Aye"], tone="positive"),
        entry("Bad Name", ["Hmm", "Well"], group="Odd-Group"),
    ]
    problems = validate(build(intents))
    assert any("'cheer'" in p and "tone 'cheerful'" in p for p in problems), problems
    assert any("'perhaps'" in p and "stance 'maybe'" in p for p in problems), problems
    assert any("'yes' is defined more than once" in p for p in problems), problems
    assert any("'Bad Name'" in p and "snake_case" in p for p in problems), problems
    assert any("'Odd-Group'" in p and "snake_case" in p for p in problems), problems
    assert len(problems) == 5


def test_a_cheerful_sympathetic_reply_and_a_yes_without_a_no_are_named() -> None:
    intents = [
        *GOOD,
        entry("loss", ["So sorry!", "Sorry lol", "Thinking of you"], tone="sympathetic"),
        entry("sure", ["Sure", "Sure thing"], group="plans", tone="positive", stance="yes"),
    ]
    problems = validate(build(intents))
    assert len(problems) == 3, problems
    assert "'So sorry!'" in problems[0] and "exclamation mark" in problems[0]
    assert "'Sorry lol'" in problems[1] and "'lol'" in problems[1]
    assert "group 'plans'" in problems[2] and "'sure'" in problems[2]


def test_only_a_sympathetic_intent_is_general() -> None:
    intents = [
        *GOOD,
        {**entry("sorry", ["So sorry", "Thinking of you"], tone="sympathetic"), "general": True},
        {**entry("cool", ["Cool", "Nice one"], tone="positive"), "general": True},
    ]
    problems = validate(build(intents))
    assert problems == [
        "intent 'cool' is general but its tone is positive: only a sympathetic intent "
        "answers any bad news"
    ]


def test_the_shipped_catalogue_has_general_and_specific_sympathy() -> None:
    sympathetic = [i for i in load_catalogue().intents if i.tone == Tone.SYMPATHETIC]
    general = {i.name for i in sympathetic if i.general}
    assert "sorry_to_hear" in general and "sorry_for_your_loss" not in general
    assert 0 < len(general) < len(sympathetic)


def test_a_malformed_file_is_refused_naming_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(
        "version: 1\n"
        "intents:\n"
        "  - {name: yes, group: answers, tone: positive, stance: yes, replies: [Yep, Sure]}\n"
        "  - {name: nah, group: answers, tone: negative, stance: no, replies: [No, Nope]}\n"
        "  - {name: wave, group: greetings, replies: [Hi, Hello]}\n"
        "  - {name: extra, group: greetings, tone: neutral, replies: [Hey, Yo], colour: red}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError) as raised:
        load_catalogue(path)
    assert isinstance(raised.value, InvalidCatalogue)
    assert len(raised.value.problems) == 4, raised.value.problems
    message = str(raised.value)
    # name: yes is read as a boolean (the entry is named by its number), and so is reply No.
    assert "entry 1: name: Input should be a valid string" in message
    assert "intent 'nah' (entry 2): replies.0" in message and "quote it" in message
    assert "intent 'wave' (entry 3): tone: Field required" in message
    assert "intent 'extra' (entry 4): colour: Extra inputs are not permitted" in message


def test_a_bare_yes_or_no_stance_is_read_as_the_stance(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(
        "version: 1\n"
        "intents:\n"
        "  - {name: 'yes', group: answers, tone: positive, stance: yes, replies: [Yep, Sure]}\n"
        "  - {name: 'no', group: answers, tone: negative, stance: no, replies: [Nope, Nah]}\n",
        encoding="utf-8",
    )
    loaded = load_catalogue(path)
    assert loaded["yes"].stance is Stance.YES
    assert loaded["no"].stance is Stance.NO


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nintents:\n  - name: [\n", "not valid YAML at line"),
        ("", "not a mapping"),
        ("version: 2\nintents: []\n", "version 2"),
        ("version: 1\nintents: []\n", "no intents"),
    ],
)
def test_a_file_that_is_not_a_catalogue_is_refused(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=expected):
        load_catalogue(path)
