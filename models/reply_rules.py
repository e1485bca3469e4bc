"""The rules a reply must pass to be suggested, and the form in which two replies are one.

The response set (models.response_set) serves the replies people write again and again; the
starter catalogue (models.catalogue) and the reviewers' curated replies (models.curation)
are checked by the same rules. A reply is served only when every rule holds, checked in this
order and each counted when it removes a reply:

1. ``short_and_plain``: one line, at most ``max_chars`` characters and ``max_words`` words,
   no code or markup (core.content.looks_like_code).
2. ``personal_data``: no email address, telephone number, URL, payment card, account or long
   digit run, IBAN or street address (core.content.personal_data).
3. ``sensitive``: no profanity, slur, sexual or violent word (core.content.is_sensitive).
4. ``blocked``: not blocked by the product team (a reply or a pattern, :class:`Block`).
5. ``written_by_many``: its meaning was written independently in at least ``min_support``
   conversations. Replies are clustered by meaning (same text up to case and punctuation,
   then encoder cosine at least ``cluster_threshold`` to the cluster's first member), and a
   cluster's support is the number of distinct conversations among its human rows. All of
   one API key's feedback is one conversation (core.schema.Example.conversation), so no
   single client can lift a reply over the threshold, however often it sends it.

Rules 1-4 look at the reply alone (:func:`refusal`); rule 5 needs every training row and is
checked where the response set is built (models.response_set.build_response_set).

Defaults, measured on the chitchat demo corpus (131,569 reply turns, docs/benchmarks.md):
among the replies written in at least three conversations, 99% are at most 31 characters
and 6 words, so ``max_chars=40`` and ``max_words=8`` keep them while cutting the long,
specific replies that repeat one person's details. ``min_support=3``: two conversations can
still be one person (two chats of one user, or a user and a colleague pasting the same
text); three independent ones are the smallest count that is a pattern, and on the demo it
keeps 784 exact replies (1,707 at two). ``cluster_threshold=0.85`` is the diversity ceiling:
at or above it two replies say the same thing ("ok"/"okay" 0.89, "haha"/"hahaha" 0.88), while
"yes"/"no" (0.70) and "see you at 7"/"see you at 8" (0.79) stay apart.
"""

from __future__ import annotations

import enum
import string
from dataclasses import dataclass
from dataclasses import field

# The `regex` module for Unicode properties (dashes, invisible characters) in surface_key.
import regex

from core.content import is_sensitive
from core.content import looks_like_code
from core.content import personal_data
from core.patterns import BlockPattern
from core.text import normalize
from core.text import visible_form

# At or above this encoder cosine two replies say the same thing (module docstring): the
# response set's clusters and the suggester's diversity ceiling (models.suggester), one value.
SAME_MEANING = 0.85


class Rule(enum.StrEnum):
    """The rules a reply must pass to be suggested, in the order they are checked."""

    SHORT_AND_PLAIN = "short_and_plain"
    PERSONAL_DATA = "personal_data"
    SENSITIVE = "sensitive"
    BLOCKED = "blocked"
    WRITTEN_BY_MANY = "written_by_many"


@dataclass(frozen=True)
class ResponseSetConfig:
    """The response set's rules (module docstring says where each default comes from).

    Attributes:
        max_chars: longest reply, in characters.
        max_words: longest reply, in words (whitespace-separated).
        min_support: distinct conversations a reply's meaning must be written in.
        cluster_threshold: encoder cosine at or above which two replies mean the same.
    """

    max_chars: int = 40
    max_words: int = 8
    min_support: int = 3
    cluster_threshold: float = SAME_MEANING


@dataclass(frozen=True)
class Block:
    """A reply (``kind="text"``) or a pattern (``kind="pattern"``) that is never suggested.

    Both are matched against what a reader sees (core.text.visible_form: fullwidth letters,
    zero-width characters, soft hyphens, odd spaces and look-alike letters undone), so that
    "ｃａｌｌ ｍｅ" or "call\u200bme" cannot slip past a block of "call me":

    - ``text``: the same reply up to case, spacing, punctuation and hyphens (:func:`block_key`:
      "see-you-later" is "see you later");
    - ``pattern``: a case-insensitive RE2 regular expression (core.patterns: linear time,
      so no pattern can stall the service) found anywhere in the reply as a reader sees it,
      or as it is written.

    Raises:
        ValueError: an unknown kind; core.patterns.PatternError (a ValueError) for a pattern
            RE2 cannot compile, unless ``stored`` (a block added before patterns were RE2: it
            is run with a time limit per reply, core.patterns.BlockPattern).
    """

    kind: str
    value: str
    stored: bool = field(default=False, compare=False)
    _pattern: BlockPattern | None = field(default=None, init=False, repr=False, compare=False)
    _key: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("text", "pattern"):
            raise ValueError(f"a block is a 'text' or a 'pattern', not {self.kind!r}")
        if self.kind == "text":
            object.__setattr__(self, "_key", block_key(self.value))
        else:
            object.__setattr__(self, "_pattern", BlockPattern(self.value, self.stored))

    def matches(self, text: str) -> bool:
        """Whether this block refuses ``text``, as a reader sees it or as it is written."""
        if self._pattern is None:
            return block_key(text) == self._key
        return self._pattern.found_in(dict.fromkeys((visible_form(text), text)))


@dataclass(frozen=True)
class CuratedReply:
    """A reply a reviewer added: served without support, but still checked by rules 1-4."""

    text: str
    niche: str


@dataclass(frozen=True)
class Curation:
    """What the product team decided: replies added and replies blocked."""

    curated: tuple[CuratedReply, ...] = ()
    blocks: tuple[Block, ...] = ()

    def blocked(self, text: str) -> bool:
        return any(b.matches(text) for b in self.blocks)


_PUNCTUATION = str.maketrans("", "", string.punctuation + "¡¿…“”‘’")
# Dashes, underscores and slashes join words ("see-you-later", "24/7"): read as spaces.
_JOINING = regex.compile(r"[\p{Pd}_/~·]+")
_INVISIBLE = regex.compile(r"\p{Default_Ignorable_Code_Point}+")


def surface_key(text: str) -> str:
    """The form in which two replies are the same reply: normalised (core.text.normalize)
    without invisible characters (zero-width space, soft hyphen), with dashes, underscores
    and slashes as spaces, without punctuation ("Thanks!" and "thanks" are one, and so are
    "see-you-later" and "see you later"), or the normalised text when it is nothing but
    punctuation (":)")."""
    normal = normalize(_INVISIBLE.sub("", text))
    bare = " ".join(_JOINING.sub(" ", normal).translate(_PUNCTUATION).split())
    return bare or normal


def block_key(text: str) -> str:
    """The form a text block compares: :func:`surface_key` of what a reader sees
    (core.text.visible_form), so look-alike letters, fullwidth forms and accents are undone
    too ("ｓｅｅ ｙｏｕ" is "see you")."""
    return surface_key(visible_form(text))


def refusal(text: str, config: ResponseSetConfig, curation: Curation) -> Rule | None:
    """The first of rules 1-4 that refuses ``text`` as a suggestion, or None when it passes.

    Rule 5 (support) needs every training row and is checked by
    models.response_set.build_response_set.
    """
    stripped = text.strip()
    if (
        not stripped
        or "\n" in stripped
        or "\r" in stripped
        or len(stripped) > config.max_chars
        or len(stripped.split()) > config.max_words
        or looks_like_code(stripped)
    ):
        return Rule.SHORT_AND_PLAIN
    if personal_data(stripped):
        return Rule.PERSONAL_DATA
    if is_sensitive(stripped):
        return Rule.SENSITIVE
    if curation.blocked(stripped):
        return Rule.BLOCKED
    return None
