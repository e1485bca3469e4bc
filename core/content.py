"""What a short text contains: personal data, sensitive words, code or markup.

These checks decide which replies may ever be *suggested* to other people
(models.response_set), and the benchmarks count them in what a model serves. They are
deliberately strict: a reply wrongly refused costs one suggestion among thousands, a reply
wrongly served can publish one user's telephone number to every other user.

What is detected (each kind has a test with its table of inputs in tests/test_content.py):

- ``email``: ``name@domain.tld``.
- ``url``: a scheme (``http://``), ``www.``, or a host name ending in a common top-level
  domain (``example.com``, ``foo.io``).
- ``phone``: telephone numbers through Google's libphonenumber (the ``phonenumbers``
  package): international numbers written with ``+`` and any national format of the
  regions in :data:`PHONE_REGIONS` that libphonenumber judges *valid* (a plausible number
  of that country), plus US-style numbers it judges merely *possible* (fictional 555 numbers
  included).
- ``payment_card``: 13 to 19 digits (spaces or dashes allowed) that pass the Luhn check.
- ``digit_run``: any other run of 6 or more digits (account, order, ID and bank numbers),
  separators allowed. Times, dates and small counts ("see you at 7", "2 more minutes",
  "10:30 on 12/05") have shorter runs and pass.
- ``iban``: an international bank account number (two letters, two digits, 10-30 more).
- ``street_address``: a house number followed within five words by a street type
  ("12 Baker Street", "1600 Pennsylvania Ave").

Not detected: names of people, dates of birth, national ID numbers written with letters,
addresses without a house number or street type, numbers spelled out in words. The support
rule (a reply must be written in several independent conversations) is what keeps such
one-person details out of the response set.

Sensitive content (profanity, slurs, sexual and violent words) is the word list of the
``better-profanity`` package (916 entries, offline), matched word by word after undoing
common leetspeak ("sh1t", "@ss"). The package's own matcher was measured at 32 ms a reply
(it tries every spelling variant), 140 s for the response set of 15,000 demo pairs; a set
look-up over the same list takes microseconds.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import phonenumbers

# Countries whose national formats (no "+") are recognised; "+" numbers are found anywhere.
PHONE_REGIONS = ("US", "GB", "CA", "AU", "IN", "DE", "FR", "ES", "IT", "BR", "MX", "JP", "NL")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(
    r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.|"
    r"\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|co|edu|gov|me|ly|app|dev|info|biz|us|uk|de|fr|"
    r"ca|au|in|ru|cn|jp|br|tv|ai|gg|xyz|site|online)\b)",
    re.IGNORECASE,
)
# Digits with single spaces or dashes between them.
_DIGIT_GROUP = re.compile(r"\d(?:[ -]?\d)+")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){10,30}\b")
_STREET_TYPES = (
    "street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
    "terrace|circle|highway|hwy|parkway|pkwy|square|sq|close|crescent|strasse|straße"
)
_STREET = re.compile(rf"\b\d{{1,6}}[a-z]?\s+(?:[\w.'-]+\s+){{0,4}}(?:{_STREET_TYPES})\b\.?", re.I)
# Characters and shapes that mark code, markup or commands rather than a chat reply.
_CODE = re.compile(
    r"[`{}\[\]\\|^~=]|</?[a-z][^>]*>|\*\*|__|#!|(?:^|\s)/\w+/|\$\(|&&|;\s*$"
    r"|\b(?:sudo|def|import|select)\s"
)

MIN_DIGIT_RUN = 6


def personal_data(text: str) -> list[str]:
    """The kinds of personal data found in ``text``, in the order of the module docstring.

    Args:
        text: any text (a reply, a message).

    Returns:
        The kinds found (``email``, ``url``, ``phone``, ``payment_card``, ``iban``,
        ``digit_run``, ``street_address``); empty when none.
    """
    found: list[str] = []
    if _EMAIL.search(text):
        found.append("email")
    if _URL.search(_EMAIL.sub(" ", text)):
        found.append("url")
    if _has_phone(text):
        found.append("phone")
    runs = [re.sub(r"\D", "", m.group()) for m in _DIGIT_GROUP.finditer(text)]
    if any(13 <= len(r) <= 19 and _luhn(r) for r in runs):
        found.append("payment_card")
    if _IBAN.search(text):
        found.append("iban")
    counted = "phone" in found or "payment_card" in found
    if not counted and any(len(r) >= MIN_DIGIT_RUN for r in runs):
        found.append("digit_run")
    if _STREET.search(text):
        found.append("street_address")
    return found


def _has_phone(text: str) -> bool:
    if sum(c.isdigit() for c in text) < 5:
        # No telephone number anywhere has fewer digits; skips the parser for most replies.
        return False
    valid = phonenumbers.Leniency.VALID
    for region in PHONE_REGIONS:
        if any(True for _ in phonenumbers.PhoneNumberMatcher(text, region, leniency=valid)):
            return True
    possible = phonenumbers.Leniency.POSSIBLE
    return any(True for _ in phonenumbers.PhoneNumberMatcher(text, "US", leniency=possible))


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


_LEET = str.maketrans("013457@$!", "oieastasi")
# Entries of the word list span up to this many words ("2 girls 1 cup").
_MAX_PHRASE_WORDS = 4


@cache
def _sensitive_words() -> frozenset[str]:
    text = (resources.files("better_profanity") / "profanity_wordlist.txt").read_text("utf-8")
    return frozenset(" ".join(line.split()).casefold() for line in text.splitlines() if line)


def is_sensitive(text: str) -> bool:
    """True when ``text`` holds a word or phrase of the ``better-profanity`` list
    (profanity, slurs, sexual or violent words), leetspeak spellings included."""
    words = _sensitive_words()
    for form in {text.casefold(), text.casefold().translate(_LEET)}:
        tokens = re.findall(r"[a-z0-9]+", form)
        for n in range(1, _MAX_PHRASE_WORDS + 1):
            for start in range(len(tokens) - n + 1):
                if " ".join(tokens[start : start + n]) in words:
                    return True
    return False


def looks_like_code(text: str) -> bool:
    """True when ``text`` has the marks of code, markup or a command (brackets, backticks,
    tags, pipes, paths, shell operators, markdown emphasis) rather than of a chat reply."""
    return bool(_CODE.search(text))
