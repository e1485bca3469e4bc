"""What a reply contains: every personal-data kind refused, ordinary numbers kept."""

from __future__ import annotations

import pytest

from core.content import is_sensitive
from core.content import looks_like_code
from core.content import personal_data
from models.reply_rules import Curation
from models.reply_rules import ResponseSetConfig
from models.reply_rules import Rule
from models.reply_rules import refusal

PERSONAL = [
    ("text me at 415-555-0199", "phone"),
    ("call me on (415) 555 0199", "phone"),
    ("my cell is 4155550199", "phone"),
    ("ring +44 20 7946 0958", "phone"),
    ("ring 020 7946 0958", "phone"),
    ("call me on 07700 900123", "phone"),
    ("+33 1 42 68 53 00", "phone"),
    ("+49 30 901820", "phone"),
    ("+91 98765 43210", "phone"),
    ("mail me@example.com", "email"),
    ("first.last+tag@mail.co.uk", "email"),
    ("see https://example.org/x", "url"),
    ("go to www.example.net", "url"),
    ("check example.com", "url"),
    ("card 4111 1111 1111 1111", "payment_card"),
    ("4012-8888-8888-1881", "payment_card"),
    ("acct 12345678", "digit_run"),
    ("order 998877", "digit_run"),
    ("DE89 3704 0044 0532 0130 00", "iban"),
    ("I live at 221b Baker Street", "street_address"),
    ("1600 Pennsylvania Ave", "street_address"),
]

ORDINARY = [
    "see you at 7",
    "2 more minutes",
    "meet at 10:30 on 12/05",
    "in 2019 I moved",
    "it costs $5",
    "top 10 for sure",
    "room 12 please",
    "ok!",
    "haha <3",
    "yes :)",
]


@pytest.mark.parametrize(("text", "kind"), PERSONAL)
def test_each_personal_data_kind_is_found_and_refused(text: str, kind: str) -> None:
    assert kind in personal_data(text)
    config = ResponseSetConfig(max_chars=200, max_words=40)
    assert refusal(text, config, Curation()) is Rule.PERSONAL_DATA


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_replies_with_numbers_are_kept(text: str) -> None:
    assert personal_data(text) == []
    assert refusal(text, ResponseSetConfig(), Curation()) is None


@pytest.mark.parametrize(
    ("text", "sensitive"),
    [
        ("you are a fucking idiot", True),
        ("I will kill you", True),
        ("sh1t happens", True),
        ("blow job", True),
        ("classic", False),
        ("assistant", False),
        ("scunthorpe", False),
        ("see you soon", False),
    ],
)
def test_sensitive_words_and_their_leetspeak_are_found_whole_words_only(
    text: str, sensitive: bool
) -> None:
    assert is_sensitive(text) is sensitive


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("0 3 * * * /usr/bin/backup.sh", True),
        ("<b>hi</b>", True),
        ("x = 1", True),
        ("`ls -la`", True),
        ("a [link](x)", True),
        ("sudo rm it", True),
        ("haha <3", False),
        ("sounds good; see you", False),
        ("what?!", False),
    ],
)
def test_code_and_markup_are_told_from_chat(text: str, code: bool) -> None:
    assert looks_like_code(text) is code


def test_short_and_plain_bounds_lines_characters_and_words() -> None:
    config = ResponseSetConfig(max_chars=20, max_words=4)
    assert refusal("one\ntwo", config, Curation()) is Rule.SHORT_AND_PLAIN
    assert refusal("x" * 21, config, Curation()) is Rule.SHORT_AND_PLAIN
    assert refusal("a b c d e", config, Curation()) is Rule.SHORT_AND_PLAIN
    assert refusal("x" * 20, config, Curation()) is None
    assert refusal("a b c d", config, Curation()) is None


# --- Hostile input: disguised profanity, ordinary words, personal data ------------------------

# The instances: each was accepted as a curated reply and served.
DISGUISED = [
    "f*ck",
    "fck",
    "fuuuck",
    "fuckyou",
    "f u c k",
    "sl*t",
    "ｆｕｃｋ",
    "𝐟𝐮𝐜𝐤",
    "f\u200buck",
    "fu\u00adck",
    "fuсk",  # a Cyrillic es
    "shît",
    "sh\u0301it",  # a combining accent
]


@pytest.mark.parametrize("text", DISGUISED)
def test_disguised_profanity_is_refused(text: str) -> None:
    assert is_sensitive(text)
    assert refusal(text, ResponseSetConfig(), Curation()) is Rule.SENSITIVE


@pytest.mark.parametrize(
    "text", ["kill it!", "hell yes", "cum laude", "Dick Van Dyke", "oh my god", "hot pot?"]
)
def test_ordinary_words_the_list_holds_pass(text: str) -> None:
    assert not is_sensitive(text)
    assert refusal(text, ResponseSetConfig(), Curation()) is None


def test_the_labelled_list() -> None:
    # tests/data/sensitive_check.tsv: docs/safeguards.md has the figures before and after.
    from bench.sensitive_check import labelled
    from bench.sensitive_check import misses

    rows = labelled()
    assert len(rows) >= 80
    negatives, positives = misses(is_sensitive, rows)
    assert negatives == []
    # A mild word the list holds, kept refused by choice (core/content.py ORDINARY).
    assert positives == [("damn, nice!", "a mild word the list holds")]


def test_one_normalisation_feeds_every_rule() -> None:
    # Fullwidth digits, zero-width spaces and a fullwidth brace hide nothing from the rules.
    assert "phone" in personal_data("４１５-５５５-０１９９")
    assert "phone" in personal_data("415\u200b555\u200b0199")
    assert "email" in personal_data("kim＠example．com")
    assert looks_like_code("｛x｝")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("kim at example dot com", "email"),
        ("kim (at) example (dot) com", "email"),
        ("kim at gmail", "email"),
        ("write to kim@hotmail", "email"),
        ("1-800-FLOWERS", "phone"),
        ("call 1 888 GO FEDEX", "phone"),
        ("see example dot com", "url"),
    ],
)
def test_spelled_out_addresses_and_vanity_numbers_are_found(text: str, kind: str) -> None:
    assert kind in personal_data(text)


@pytest.mark.parametrize(
    "text",
    [
        "it's 2024-05-12 today",
        "from 2019-2023",
        "score was 21-19 21-17",
        "born 12.05.1990",
        "open 9-5",
        "in 2019 I moved",
        "I work at yahoo",
    ],
)
def test_dates_ranges_and_scores_are_not_digit_runs(text: str) -> None:
    assert personal_data(text) == []
    assert refusal(text, ResponseSetConfig(), Curation()) is None
