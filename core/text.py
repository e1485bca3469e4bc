"""Text: the one validation every front end applies, normalisation, and content hashes.

Every text that enters the service (the API's bodies, the dashboard's forms, the command
line's options and imported files) goes through :func:`clean_text` with the :class:`TextRule`
of its kind, so the same kind of text has the same limits wherever it comes from:

- valid Unicode only: a lone surrogate (JSON can carry ``"\\ud800"``; a command line can carry
  undecodable bytes as ``\\udcff``) cannot be encoded for hashing or storage;
- no control characters; only the kinds of text that are several lines in a chat (messages,
  replies, reasons) may hold line breaks and tabs;
- not empty once whitespace and invisible characters are removed: a zero-width space, a BOM or
  a Hangul filler alone is not a message. Invisible characters *inside* a text are kept (a
  zero-width joiner and a variation selector are part of many emoji);
- at most ``max_chars`` characters (code points, after surrounding whitespace is removed).

Texts are stored as they were written. What the content rules and the product team's blocks
read is :func:`visible_form`: the text as a reader sees it, without the tricks that change
the code points but not the look (fullwidth or mathematical letters, zero-width characters,
soft hyphens, combining accents, Cyrillic or Greek letters that look Latin, odd spaces).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from functools import cache
from functools import lru_cache
from importlib import resources

# The third-party `regex` module knows Unicode properties the standard `re` and `unicodedata`
# do not, notably Default_Ignorable_Code_Point: the characters Unicode says render as nothing.
import regex


@dataclass(frozen=True)
class TextRule:
    """What one kind of text may be.

    Attributes:
        max_chars: the most characters (code points) the text may have once stripped.
        line_breaks: whether line breaks (``\\n``, ``\\r``, U+2028, U+2029) and tabs are
            allowed; every other control character is refused everywhere.
    """

    max_chars: int
    line_breaks: bool


# The message a client asks about. 1,000 characters holds any chat message that a short reply
# answers; the body limit (256 KiB) is there for batches, not for one message.
MESSAGE = TextRule(max_chars=1_000, line_breaks=True)
# A reply (imported, typed by a person, or a suggestion a person was shown). Most are a line,
# but people's replies are longer than the messages they answer: the bundled corpus's longest
# human reply has 1,087 characters (a code sample), and 184 of its 2,377 have line breaks. So a
# reply keeps line breaks and may have 2,000 characters, the limit imports always had: no human
# reply that could be imported before is refused now, and a suggestion served from them can be
# reported back by /v1/feedback. What may be *suggested* is limited separately, tighter.
REPLY = TextRule(max_chars=2_000, line_breaks=True)
# Niche names and model versions are labels: one line, and the width of their columns.
NICHE = TextRule(max_chars=100, line_breaks=False)
MODEL_VERSION = TextRule(max_chars=64, line_breaks=False)
# An imported row's conversation id (its independent source, for the response set's
# support rule): stored as "import:<id>" in a column of 200 characters.
CONVERSATION = TextRule(max_chars=190, line_breaks=False)
# Who an API key is for (`replyguard keys create --name`): a label too.
KEY_NAME = TextRule(max_chars=100, line_breaks=False)
# What the product team adds to or blocks from the response set: a curated reply, a blocked
# reply or pattern. One line, and the width of their columns (the response set's own length
# rule, 40 characters by default, then applies to a curated reply).
CURATION = TextRule(max_chars=200, line_breaks=False)
# Why production changed, why a generation was given up, why the reservoir was rebuilt:
# written to the audit log, where a few paragraphs are plenty.
REASON = TextRule(max_chars=2_000, line_breaks=True)

# Control characters are U+0000-U+001F and U+007F-U+009F (category Cc). Texts of several lines
# may hold tab, line feed and carriage return; U+2028 and U+2029 (line and paragraph
# separators) are line breaks too, so one-line texts refuse them.
_CONTROL_MULTILINE = regex.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROL_ONE_LINE = regex.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = regex.compile(r"\p{Cs}")
_BLANK = regex.compile(r"[\s\p{Default_Ignorable_Code_Point}]+")
_IGNORABLE = regex.compile(r"\p{Default_Ignorable_Code_Point}+")
# Combining marks (accents, Zalgo stacks, enclosing circles): drawn on the letter before them.
_MARK = regex.compile(r"\p{M}+")


class InvalidText(ValueError):
    """A text broke its :class:`TextRule`; the message names the field and what is wrong."""


def clean_text(value: object, rule: TextRule, name: str) -> str:
    """Check one text against its rule and return it without surrounding whitespace.

    Args:
        value: what arrived; anything but a ``str`` is refused.
        rule: the kind of text (:data:`MESSAGE`, :data:`REPLY`, :data:`NICHE`, ...).
        name: the field's name as the caller knows it, used in the error message.

    Returns:
        The text with leading and trailing whitespace removed; nothing else is changed.

    Raises:
        InvalidText: not a string, a lone surrogate, a control character the rule does not
            allow, empty once whitespace and invisible characters are removed, or longer
            than ``rule.max_chars``. The message says which and where.
    """
    if not isinstance(value, str):
        raise InvalidText(f"{name} must be a string, not {type(value).__name__}")
    surrogate = _SURROGATE.search(value)
    if surrogate:
        raise InvalidText(
            f"{name} is not valid Unicode: a lone surrogate {_code(surrogate[0])} at "
            f"character {surrogate.start()} (send text as UTF-8, or a JSON escape of a whole "
            "surrogate pair)"
        )
    control = (_CONTROL_MULTILINE if rule.line_breaks else _CONTROL_ONE_LINE).search(value)
    if control:
        where = f"{name} has a control character {_code(control[0])} at character {control.start()}"
        if rule.line_breaks:
            raise InvalidText(f"{where}; only line breaks and tabs are allowed")
        raise InvalidText(f"{where}; a {name} is one line, without tabs or line breaks")
    text = value.strip()
    if not _BLANK.sub("", text):
        raise InvalidText(f"{name} is empty or only whitespace and invisible characters")
    if len(text) > rule.max_chars:
        raise InvalidText(f"{name} is longer than {rule.max_chars} characters (it has {len(text)})")
    return text


def _code(char: str) -> str:
    return f"U+{ord(char):04X}"


def normalize(text: str) -> str:
    """Unicode NFKC, case-folded, whitespace collapsed: the form two texts are compared in."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@lru_cache(maxsize=65_536)
def visible_form(text: str) -> str:
    """The text as a reader sees it: what every content rule and every block reads.

    In order: Unicode NFKC (fullwidth ``ｆｕｃｋ`` and mathematical bold letters become ASCII,
    a no-break space a space); default-ignorable characters removed (zero-width space and
    joiner, soft hyphen, word joiner, variation selectors: Unicode says they render as
    nothing); combining marks removed after canonical decomposition (``shît`` is ``shit``,
    ``café`` is ``cafe``); letters of other scripts that Unicode lists as confusable with a
    Latin letter replaced by it (Cyrillic ``с`` is ``c``: :func:`_confusables`); whitespace
    runs collapsed to one space and the ends stripped. Case is kept (the personal-data rule
    reads an IBAN's capitals, the sensitive rule a name's); callers casefold as they need.

    The result is for checking only, never stored or shown: it turns non-Latin text that
    happens to look Latin into Latin letters, and drops the accents of every script.

    Args:
        text: any text.

    Returns:
        The folded text (may be empty when ``text`` was only invisible characters).
    """
    if text.isascii():
        # No ASCII character is invisible, combining, confusable or changed by NFKC.
        return " ".join(text.split())
    text = unicodedata.normalize("NFKC", text)
    text = _IGNORABLE.sub("", text)
    text = _MARK.sub("", unicodedata.normalize("NFD", text))
    text = unicodedata.normalize("NFC", text).translate(_confusables())
    return " ".join(text.split())


@cache
def _confusables() -> dict[int, str]:
    """Each non-ASCII character that Unicode's confusables data (UTS #39 confusables.txt,
    as shipped by the ``confusable-homoglyphs`` package) lists as looking like one ASCII
    letter, mapped to that letter (1,225 characters: Cyrillic, Greek, Armenian, Cherokee,
    Latin look-alikes such as dotless i, and more).

    Read from the package's data file rather than through its API, whose look-ups go one
    character at a time; nothing is fetched (the package's ``update`` command, which
    downloads a newer table, is never called)."""
    data = json.loads(
        (resources.files("confusable_homoglyphs") / "confusables.json").read_text("utf-8")
    )
    table: dict[int, str] = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        latin = [g["c"] for g in glyphs if len(g["c"]) == 1 and g["c"].isascii()]
        letters = [c for c in latin if c.isalpha()]
        if letters:
            table[ord(char)] = letters[0]
    return table


def text_hash(text: str) -> str:
    """Hash of the exact text (for embedding caches: the encoder sees case and spacing)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def pair_hash(message: str, reply: str) -> str:
    """Identity of an example: its normalised message and reply.

    Provenance and niche are deliberately not part of it, so re-importing a known pair
    under another provenance is a duplicate and can never relabel the stored row.
    """
    joined = normalize(message) + "\x1f" + normalize(reply)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()
