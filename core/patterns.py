"""Reviewers' block patterns: compiled with RE2, matched in time linear in the text.

Python's ``re`` backtracks: "(a+)+$" against "Aaaa...ah!" (35 letters) runs for hours and
holds the GIL while it does, so one pattern added through the API stopped every thread of a
web process (suggestions, /healthz, /readyz) within two seconds, and the train stage of the
next generation with it. RE2 (Google's engine, the ``google-re2`` package) builds an automaton
instead and never backtracks: any pattern it accepts costs time proportional to the text.

RE2 has no backreferences (``\\1``) and no lookarounds (``(?=``, ``(?!``, ``(?<=``, ``(?<!``);
a pattern using them is refused where it is added (API 422, CLI exit 1, dashboard 422) with
what to write instead. Blocks stored before this change are still honoured if RE2 refuses
them: the ``regex`` module runs them with a time limit per text (:class:`BlockPattern`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

# RE2: linear-time matching (the module docstring says why).
import re2

# The `regex` module: time-limited matching for stored patterns that RE2 cannot compile.
import regex

log = logging.getLogger(__name__)

# RE2's settings for block patterns: case-insensitive, errors raised rather than printed to
# stderr, and a compiled pattern held to 2 MiB (RE2 refuses a pattern whose program would be
# larger rather than build it).
_OPTIONS = re2.Options()
_OPTIONS.case_sensitive = False
_OPTIONS.log_errors = False
_OPTIONS.max_mem = 2 << 20

# A stored pattern that RE2 refuses runs with this limit per text; a text it cannot decide
# within it counts as blocked (a block errs on the side of refusing a reply).
LEGACY_SECONDS = 0.05

# The start of RE2's message, and the feature it means.
_UNSUPPORTED = (
    ("invalid perl operator: (?<", "lookbehind ((?<=...) or (?<!...))"),
    ("invalid perl operator: (?=", "lookahead ((?=...))"),
    ("invalid perl operator: (?!", "negative lookahead ((?!...))"),
    ("invalid escape sequence: \\1", "backreference (\\1)"),
    ("invalid escape sequence: \\2", "backreference (\\2)"),
)


class PatternError(ValueError):
    """A block pattern that cannot be used: the message says why and what to write instead."""


def compile_pattern(value: str) -> re2._Regexp[str]:
    """Compile a block pattern with RE2 (case-insensitive).

    Args:
        value: the pattern as the reviewer wrote it.

    Returns:
        The compiled pattern.

    Raises:
        PatternError: RE2 cannot compile it (a backreference, a lookaround, a syntax error,
            or a program over 2 MiB); the message says why and what to write instead.
    """
    try:
        return re2.compile(value, _OPTIONS)
    except re2.error as exc:
        raise PatternError(_advice(value, _reason(exc))) from None


def _reason(exc: Exception) -> str:
    said = exc.args[0] if exc.args else exc
    return said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)


def _advice(value: str, reason: str) -> str:
    for said, feature in _UNSUPPORTED:
        if reason.startswith(said):
            return (
                f"{value!r} cannot be a block pattern: it uses a {feature}. Block patterns run "
                "on RE2, which matches in time proportional to the reply (so no pattern can "
                "stall the service) and has no backreferences or lookarounds. Write the words "
                "to refuse without them, e.g. '\\bcall me\\b' rather than "
                "'(?<!never )call me', '(ha){3}' rather than '(ha)\\1\\1'; or block each form "
                "as a pattern of its own"
            )
    if "too large" in reason or "bad repetition" in reason:
        return (
            f"{value!r} cannot be a block pattern: {reason}. RE2 bounds the size of a pattern "
            "(repetition counts up to 1000, 2 MiB compiled): repeat less, e.g. '\\w+' rather "
            "than '(\\w{1,50}){1,50}'"
        )
    return f"{value!r} is not a regular expression that RE2 accepts: {reason}"


class BlockPattern:
    """A compiled block pattern: RE2, or for a stored pattern RE2 refuses, ``regex`` with a
    time limit (logged once, so the team can rewrite it).

    Raises:
        PatternError: on construction, for a pattern RE2 refuses unless ``stored``.
    """

    def __init__(self, value: str, stored: bool = False) -> None:
        self.value = value
        self._re2: re2._Regexp[str] | None = None
        self._legacy: regex.Pattern[str] | None = None
        try:
            self._re2 = compile_pattern(value)
        except PatternError as exc:
            if not stored:
                raise
            self._legacy = _legacy(value, str(exc))

    @property
    def legacy(self) -> bool:
        """Whether RE2 refused this (stored) pattern."""
        return self._re2 is None

    def found_in(self, texts: Iterable[str]) -> bool:
        """Whether the pattern is found in any of ``texts``.

        RE2: linear time. A legacy pattern: at most :data:`LEGACY_SECONDS` per text, and a
        text it cannot decide in that time counts as found. A stored pattern that no engine
        compiles finds nothing.
        """
        if self._re2 is not None:
            return any(self._re2.search(text) is not None for text in texts)
        if self._legacy is None:
            return False
        try:
            return any(self._legacy.search(t, timeout=LEGACY_SECONDS) for t in texts)
        except TimeoutError:
            return True


def _legacy(value: str, why: str) -> regex.Pattern[str] | None:
    try:
        compiled = regex.compile(value, regex.IGNORECASE)
    except regex.error as exc:
        log.error("block pattern %r is no regular expression (%s): it blocks nothing", value, exc)
        return None
    log.warning(
        "%s; it was stored before patterns were RE2, so it runs with a %.2f s limit per reply "
        "(lift it and block it again as RE2 accepts)",
        why,
        LEGACY_SECONDS,
    )
    return compiled
