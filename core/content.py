"""What a short text contains: personal data, sensitive words, code or markup.

These checks decide which replies may ever be *suggested* to other people
(models.reply_rules), and the benchmarks count them in what a model serves. They are
deliberately strict: a reply wrongly refused costs one suggestion among thousands, a reply
wrongly served can publish one user's telephone number to every other user.

What is detected (each kind has a test with its table of inputs in tests/test_content.py):

Every rule reads the text through :func:`fold`, the one normalisation: what a reader sees
(NFKC, no invisible characters or combining marks, look-alike letters made Latin:
core.text.visible_form), and for the sensitive rule the words with their disguises undone.

- ``email``: ``name@domain.tld``; spelled out against scrapers (``kim at example dot com``,
  ``kim (at) example (dot) com``); at a webmail provider with the domain left out
  (``kim@hotmail``, ``kim at gmail``).
- ``url``: a scheme (``http://``), ``www.``, or a host name ending in a common top-level
  domain (``example.com``, ``foo.io``, ``example dot com``).
- ``phone``: telephone numbers through Google's libphonenumber (the ``phonenumbers``
  package): international numbers written with ``+`` and any national format of the
  regions in :data:`PHONE_REGIONS` that libphonenumber judges *valid* (a plausible number
  of that country), plus US-style numbers it judges merely *possible* (fictional 555 numbers
  included), and toll-free numbers with letters for digits (``1-800-FLOWERS``, read on a
  keypad by libphonenumber's ``convert_alpha_characters_in_number``, judged valid).
- ``payment_card``: 13 to 19 digits (spaces or dashes allowed) that pass the Luhn check.
- ``digit_run``: any other run of 6 or more digits (account, order, ID and bank numbers),
  separators allowed. Times, dates, year ranges, scores and small counts ("see you at 7",
  "10:30 on 12/05", "it's 2024-05-12 today", "from 2019-2023", "21-19 21-17") pass: dates,
  year ranges and scores are set aside before digits are counted.
- ``iban``: an international bank account number (two letters, two digits, 10-30 more).
- ``street_address``: a house number followed within five words by a street type
  ("12 Baker Street", "1600 Pennsylvania Ave").

Not detected: names of people, dates of birth, national ID numbers written with letters,
addresses without a house number or street type, numbers spelled out in words. The support
rule (a reply must be written in several independent conversations) is what keeps such
one-person details out of the response set.

Sensitive content (profanity, slurs, sexual and violent words) is the word list of the
``better-profanity`` package (916 entries, offline), matched word by word in the folded text
(:func:`is_sensitive` lists the disguises undone), less the everyday words of
:data:`ORDINARY` and with the words of :data:`CONTEXTUAL` refused only in context. The
package's own matcher was measured at 32 ms a reply (it tries every spelling variant), 140 s
for the response set of 15,000 demo pairs; matching through :func:`fold` takes 0.1 to 0.3 ms
a reply on the chitchat corpus (the plain set look-up before it, 0.05 ms). Measured on the labelled list
``tests/data/sensitive_check.tsv`` (docs/safeguards.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from functools import lru_cache
from importlib import resources

import phonenumbers

# The `regex` module for Unicode letter classes (\p{L}); block patterns use RE2 instead.
import regex

from core.text import visible_form

# Countries whose national formats (no "+") are recognised; "+" numbers are found anywhere.
PHONE_REGIONS = ("US", "GB", "CA", "AU", "IN", "DE", "FR", "ES", "IT", "BR", "MX", "JP", "NL")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(
    r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.|"
    r"\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|co|edu|gov|me|ly|app|dev|info|biz|us|uk|de|fr|"
    r"ca|au|in|ru|cn|jp|br|tv|ai|gg|xyz|site|online)\b)",
    re.IGNORECASE,
)
# An address spelled out against scrapers: "kim at example dot com", "kim (at) example
# (dot) com", "kim [at] mail [dot] co [dot] uk".
_AT = r"(?:\s*[(\[{<]\s*at\s*[)\]}>]\s*|\s+at\s+)"
_DOT = r"(?:\s*[(\[{<]\s*dot\s*[)\]}>]\s*|\s+dot\s+|\.)"
_SPELLED_EMAIL = re.compile(rf"\b[\w.+-]+{_AT}[\w-]+(?:{_DOT}[a-z]{{2,}})+\b", re.IGNORECASE)
# "kim@hotmail", "kim at gmail": an address at a webmail provider, its domain left out.
# Spelled with "at", only the providers whose name is nothing but a mail service ("I work
# at yahoo" is no address).
_WEBMAILS = (
    "gmail|googlemail|yahoo|hotmail|outlook|icloud|aol|protonmail|proton|gmx|yandex|zoho|"
    "fastmail|msn|ymail"
)
_MAIL_ONLY = "gmail|googlemail|hotmail|protonmail|ymail"
_WEBMAIL = re.compile(rf"\b[\w.+-]+(?:@(?:{_WEBMAILS})|{_AT}(?:{_MAIL_ONLY}))\b", re.IGNORECASE)
# "example dot com".
_SPELLED_URL = re.compile(
    r"\b[\w-]+(?:\s*[(\[]\s*dot\s*[)\]]\s*|\s+dot\s+)(?:com|net|org|io|co|uk|de|fr|me)\b",
    re.IGNORECASE,
)
# A North American toll-free number (800, 833, 844, 855, 866, 877, 888: where vanity numbers
# are) with letters for some digits: seven keypad characters after the prefix, at least two
# of them letters ("1-800-FLOWERS", "800 GO FEDEX").
_VANITY = re.compile(
    r"(?<![\w-])(?:\+?1[\s.-]?)?\(?8(?:00|33|44|55|66|77|88)\)?[\s.-]?"
    r"(?=(?:[\s.-]?[a-z0-9]){7}(?![\w-]))(?=(?:[\s.-]?[0-9])*[\s.-]?[a-z](?:[\s.-]?[0-9])*"
    r"[\s.-]?[a-z])(?:[\s.-]?[a-z0-9]){7}(?![\w-])",
    re.IGNORECASE,
)
# Dates, year ranges and scores: ISO and day/month dates, "2019-2023", "21-19" (one to three
# digits on each side of a dash, not part of a longer group such as "415-555-0199").
_DATE_LIKE = re.compile(
    r"\b(?:19|20)\d\d[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])\b"
    r"|\b(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|1[0-2])[-/.](?:19|20)?\d\d\b"
    r"|\b(?:19|20)\d\d\s?[-–]\s?(?:19|20)?\d\d\b"
    r"|(?<![\d-])\d{1,3}\s?[-–]\s?\d{1,3}(?![\d-])"
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

    Read in the text's visible form (:func:`fold`), so fullwidth digits, zero-width
    characters inside a number and look-alike letters hide nothing. Dates, year ranges and
    scores are set aside before digits are counted (:func:`_without_dates`).

    Args:
        text: any text (a reply, a message).

    Returns:
        The kinds found (``email``, ``url``, ``phone``, ``payment_card``, ``iban``,
        ``digit_run``, ``street_address``); empty when none.
    """
    text = fold(text).visible
    found: list[str] = []
    if _EMAIL.search(text) or _SPELLED_EMAIL.search(text) or _WEBMAIL.search(text):
        found.append("email")
    without_email = _SPELLED_EMAIL.sub(" ", _EMAIL.sub(" ", text))
    if _URL.search(without_email) or _SPELLED_URL.search(without_email):
        found.append("url")
    numbers = _without_dates(text)
    if _has_phone(numbers) or _has_vanity_phone(text):
        found.append("phone")
    runs = [re.sub(r"\D", "", m.group()) for m in _DIGIT_GROUP.finditer(numbers)]
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


def _without_dates(text: str) -> str:
    """``text`` with dates ("2024-05-12", "12/05/2024", "12.05.2024"), year ranges
    ("2019-2023", "2019-23") and scores or small ranges ("21-19", "5-10") replaced by a
    separator: their digits are no account or telephone number, and counted together they
    made a digit run of six or more."""
    return _DATE_LIKE.sub(" ; ", text)


def _has_vanity_phone(text: str) -> bool:
    """A telephone number with letters for digits ("1-800-FLOWERS", "1 888 GO FEDEX"), as
    libphonenumber reads letters on a keypad (``convert_alpha_characters_in_number``), that
    it judges a valid North American number."""
    for match in _VANITY.finditer(text):
        digits = phonenumbers.convert_alpha_characters_in_number(match.group())
        try:
            number = phonenumbers.parse(digits, "US")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


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


# --- The sensitive rule ---------------------------------------------------------------------


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Characters read as letters inside a word ("sh1t", "@ss", "$hit", "sh!+"): the common
# leetspeak substitutions. "1" and "|" can be an i or an l ("he11"), so a word is read both
# ways.
_LEET_I = str.maketrans("013456789@$!¡|+€", "oieasgtbgasiiite")
_LEET_L = str.maketrans("013456789@$!¡|+€", "oleasgtbgasiilte")
# Censoring marks that stand for one or two letters inside a word ("f*ck", "f**k", "sh#t").
_WILDCARDS = "*#%^"
# What may stand at the edges of a word without being part of it ("*hugs*", "no!!").
_EDGES = "*#%^!¡|+"
# A word as the rules read it: letters and digits, with the symbols above inside it. Every
# other character (spaces, hyphens, dots, apostrophes, underscores) separates words.
_WORD = regex.compile(r"[\p{L}\p{N}*#%^@$!¡|+€]+")
_LETTER = regex.compile(r"\p{L}")
_VOWELS = frozenset("aeiou")
# What follows a word in a compound that is still that word ("fuckyou", "fuckoff"). Not
# inflections: the list has the inflected forms it means ("fucker"), and "sucker", "fatter"
# or "murderers" are not insults.
_JOINERS = ("you", "u", "ya", "off", "face", "head", "hole")
# Endings of a word written without vowels ("fcking", "btches").
_SUFFIXES = ("ing", "in", "er", "ers", "ed", "es", "s", "z")
# The words people disguise by dropping vowels ("fck", "sht", "btch") or glue to another
# ("fuckyou", "shitface"): the strongest profanity and slurs of the list. Taken from the
# whole list, the vowel-less forms hit chat abbreviations ("ngl" from "niggle", "pbs",
# "hymns" from "hymen") and the compounds ordinary words ("homosexual", "fatter").
STRONG = _word_set(
    "fuck fucking fucker fucked motherfucker shit shitty bitch bitches cunt slut sluts "
    "whore whores pussy cock cocksucker twat wank wanker faggot fag nigger nigga bastard "
    "asshole"
)


# Words of the list that are everyday words in a chat reply, never refused: exclamations
# ("omg", "oh my god", "lmao") and nouns whose listed sense is not their usual one (a flower
# pot, a heart organ, a stroke of luck, a slope, a pawn shop, a hookah bar). With the words of
# CONTEXTUAL below, they were 58 of the 161 short chitchat replies the list refused, none of
# them offensive (bench/sensitive_check.py --corpus).
# "xx" and "xxx" are kisses at the end of a message (and "xxxxxxxx" the same, drawn out). Two
# list entries are not words at all ("aSanchez", "LEN").
ORDINARY = _word_set(
    "xx xxx "
    "omg lmao god pot stroke organ revue sandbar seaman seamen slope pawn pasty paddy "
    "maxi loin loins hemp hookah toots vodka rum urinal ovary ovum ovums uterus womb "
    "menses tampon hiv herpes pms asanchez len"
)
# Listed words with an ordinary sense that are refused only in the context that makes them
# offensive (each has its rule in _in_context): "kill it!" and "hell yes" pass, "I will kill
# you" and "go to hell" do not; "cum laude" passes; "Dick Van Dyke" is a name.
CONTEXTUAL = frozenset({"kill", "hell", "cum", "dick", "dyke", "willy", "woody", "fanny", "hooker"})
# "kill" is violent with a person as its object, within the next two words.
_PEOPLE = _word_set(
    "you u ya ye em yall yourself urself yourselves him her them myself himself herself "
    "themselves us everyone everybody someone somebody people"
)
# "hell" is a curse after these ("go to hell"), and in "to hell with".
_HELL_PHRASES = frozenset({("go", "to"), ("burn", "in"), ("rot", "in")})
# A listed word that is also a name ("Dick Van Dyke", "Philip K. Dick", "Willy Wonka") is
# read as one when it is capitalised beside another capitalised word that is not one of these.
_NOT_NAMES = _word_set("i you your ur u a an the big little fat stupid what such my")


@dataclass(frozen=True)
class Folded:
    """A text as every content rule reads it (:func:`fold`).

    Attributes:
        visible: the text as a reader sees it (core.text.visible_form): NFKC, invisible
            characters and combining marks removed, confusable letters made Latin, spaces
            collapsed; case kept. The personal-data and code rules read this (an ``@`` in an
            email address and the digits of a number are what they look for, so no symbol
            or digit is read as a letter for them).
        cased: the words of ``visible`` (:data:`_WORD`), edges trimmed, case kept.
        words: ``cased`` casefolded.
        spellings: for each word, the ways it can be read: as written, with symbols and
            digits read as letters ("sh1t", "@ss", "sh!+"; "1" as i and as l), untrimmed.
        joined: ``words`` read with symbols as letters, with every run of three or more
            single letters joined into one word ("f u c k", "f.u.c.k", "f-u-c-k").
    """

    visible: str
    cased: tuple[str, ...]
    words: tuple[str, ...]
    spellings: tuple[tuple[str, ...], ...]
    joined: tuple[str, ...]


# Remembered: a training run checks each distinct reply once per rule, and web processes check
# the same bank texts at every curation change. Replies are at most 2,000 characters.
@lru_cache(maxsize=65_536)
def fold(text: str) -> Folded:
    """Normalise ``text`` for the content rules: the one function every rule of this module
    (and so the response set's rules 1-3) starts from.

    The steps, each against a way of hiding a word or a number from a rule: Unicode NFKC,
    invisible characters and combining marks removed, confusable letters mapped to Latin
    (core.text.visible_form); then, for the words, leetspeak read as letters, runs of
    single letters joined. Repeated letters ("fuuuck"), missing vowels ("fck"), censoring
    marks ("f*ck") and glued words ("fuckyou") are matched against the word list by
    :func:`is_sensitive`, since they need the list to be undone.

    Args:
        text: any text.

    Returns:
        The :class:`Folded` forms.
    """
    visible = visible_form(text)
    raw = [m.group() for m in _WORD.finditer(visible)]
    cased = tuple(w.strip(_EDGES) or w for w in raw)
    words = tuple(w.casefold() for w in cased)
    spellings = tuple(_spellings(w.casefold(), c) for w, c in zip(raw, words, strict=True))
    read = [s[1] if len(s) > 1 and _has_letter(s[0]) else s[0] for s in spellings]
    return Folded(visible, cased, words, spellings, _join_single_letters(read))


def _has_letter(word: str) -> bool:
    return _LETTER.search(word) is not None


def _spellings(raw: str, trimmed: str) -> tuple[str, ...]:
    """``trimmed`` first, then its readings with symbols as letters (i, then l), then the
    untrimmed word's ("sh!+": the edges are part of it)."""
    forms = [trimmed]
    if raw.isalpha():
        return (trimmed,)
    # A word that starts with a digit is a number with a unit or an ordinal ("1st", "600k",
    # "10pm"), not leetspeak ("600k" would read as a slur).
    if _has_letter(raw) and not raw[0].isdigit():
        for table in (_LEET_I, _LEET_L):
            forms.append(trimmed.translate(table))
            forms.append(raw.translate(table))
    return tuple(dict.fromkeys(forms))


def _join_single_letters(words: list[str]) -> tuple[str, ...]:
    joined: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1 and word.isalpha():
            run.append(word)
            continue
        if len(run) >= 3:
            joined.append("".join(run))
        else:
            joined.extend(run)
        run = []
        if word:
            joined.append(word)
    return tuple(joined)


_REPEATS = re.compile(r"(.)\1+")


def squeeze(word: str) -> str:
    """``word`` with every run of a repeated character written once ("fuuuck" -> "fuck")."""
    return _REPEATS.sub(r"\1", word)


def _runs(word: str) -> list[int]:
    counts: list[int] = []
    for i, ch in enumerate(word):
        if i and ch == word[i - 1]:
            counts[-1] += 1
        else:
            counts.append(1)
    return counts


@dataclass(frozen=True)
class _WordList:
    """The better-profanity list, indexed for the ways :func:`is_sensitive` matches."""

    # One-word entries (casefolded, leetspeak read), less :data:`ORDINARY`.
    words: frozenset[str]
    # Entries of several words, as tuples ("blow job", "f u c k", "s o b").
    phrases: frozenset[tuple[str, ...]]
    # Entries ending in "*": any word that starts so ("masterbat*").
    prefixes: tuple[str, ...]
    # squeeze(word) -> the words that squeeze to it (for "fuuuck").
    squeezed: dict[str, tuple[str, ...]]
    # A word of :data:`STRONG` written without its vowels -> the word ("fck" -> "fuck").
    skeletons: dict[str, str]
    longest_phrase: int
    # The first three letters of each :data:`STRONG` word, squeezed: a word that starts
    # otherwise is no compound of one (a quick test before trying every cut).
    strong_starts: frozenset[str]


# "CCK" is a company's name in the chitchat corpus more often than a disguised "cock".
_NOT_SKELETONS = frozenset({"cck"})


@cache
def _word_list() -> _WordList:
    text = (resources.files("better_profanity") / "profanity_wordlist.txt").read_text("utf-8")
    words: set[str] = set()
    phrases: set[tuple[str, ...]] = set()
    prefixes: list[str] = []
    for line in text.splitlines():
        entry = line.strip().casefold()
        if not entry or entry in ORDINARY:
            continue
        if entry.endswith("*"):
            prefixes.append(entry.rstrip("*"))
            continue
        parts = tuple(m.group() for m in _WORD.finditer(entry))
        if len(parts) > 1:
            phrases.add(parts)
        elif parts:
            # An entry written in leetspeak is matched as written ("s0b" is not "sob": a text
            # is read both ways); one that reads as a contextual word is left to that word's
            # rule ("he11" is "hell").
            readings = {parts[0].translate(t) for t in (_LEET_I, _LEET_L)} - {parts[0]}
            if readings.isdisjoint(CONTEXTUAL):
                words.add(parts[0])
    squeezed: dict[str, list[str]] = {}
    for word in words:
        squeezed.setdefault(squeeze(word), []).append(word)
    skeletons: dict[str, str] = {}
    for word in sorted(STRONG & words):
        skeleton = "".join(ch for ch in word if ch not in _VOWELS)
        if skeleton != word and len(skeleton) >= 3 and skeleton not in _NOT_SKELETONS:
            skeletons.setdefault(skeleton, word)
    return _WordList(
        frozenset(words),
        frozenset(phrases),
        tuple(prefixes),
        {k: tuple(v) for k, v in squeezed.items()},
        skeletons,
        max((len(p) for p in phrases), default=1),
        frozenset(squeeze(w)[:3] for w in STRONG),
    )


def _listed(word: str, lexicon: _WordList) -> str | None:
    """The list word that ``word`` is, written as it is or with letters repeated
    ("fuuuck", "asss"), or None."""
    if word in lexicon.words:
        return word
    for candidate in lexicon.squeezed.get(squeeze(word), ()):
        # Each run of ``word`` as long as the list word's, or drawn out to three or more:
        # "fuuuck" and "asss" are list words; "as", "Bonner" (boner), "noob" (nob) and
        # "woop" (wop) are not.
        ours, theirs = _runs(word), _runs(candidate)
        if len(ours) == len(theirs) and all(
            a == b or (a > b and a >= 3) for a, b in zip(ours, theirs, strict=True)
        ):
            return candidate
    return None


@lru_cache(maxsize=131_072)
def _match(word: str) -> str | None:
    """:func:`_match_word` against the word list, remembered: chat repeats its words."""
    return _match_word(word, _word_list())


def _match_word(word: str, lexicon: _WordList) -> str | None:
    """The list word ``word`` stands for, however it is disguised, or None."""
    if not word:
        return None
    found = _listed(word, lexicon)
    if found is not None:
        return found
    if any(word.startswith(p) for p in lexicon.prefixes):
        return word
    inner = word.strip(_WILDCARDS)
    if any(ch in inner for ch in _WILDCARDS):
        return _wildcard(inner, lexicon)
    if not word.isalpha():
        return None
    if not _VOWELS.intersection(word) or any(
        word.endswith(s) and not _VOWELS.intersection(word[: -len(s)]) for s in _SUFFIXES
    ):
        for stem in (word, *(word[: -len(s)] for s in _SUFFIXES if word.endswith(s))):
            if len(stem) >= 3 and not _VOWELS.intersection(stem):
                hit = lexicon.skeletons.get(stem)
                if hit is not None:
                    return hit
    return _compound(word, lexicon)


def _wildcard(word: str, lexicon: _WordList) -> str | None:
    """A word with censoring marks inside ("f*ck", "f**k", "sl*t"): each run of marks
    stands for one letter more or less than its length."""
    parts = regex.split(r"([*#%^]+)", word)
    pattern = "".join(
        f"[a-z]{{{max(1, len(p) - 1)},{len(p) + 1}}}"
        if p and p[0] in _WILDCARDS
        else regex.escape(p)
        for p in parts
    )
    compiled = regex.compile(rf"(?:{pattern})(?:{'|'.join(_JOINERS)})?")
    for candidate in sorted(lexicon.words):
        if candidate not in CONTEXTUAL and compiled.fullmatch(candidate):
            return candidate
    return None


def _compound(word: str, lexicon: _WordList) -> str | None:
    """A word of :data:`STRONG` glued to a joiner or to another list word ("fuckyou",
    "shitface"); never one that is only sometimes offensive ("killjoy", "Dickens", "cocktail",
    "homosexual")."""
    if squeeze(word)[:3] not in lexicon.strong_starts:
        return None
    for cut in range(3, len(word)):
        head = _listed(word[:cut], lexicon)
        if head is None or head not in STRONG:
            continue
        tail = word[cut:]
        if squeeze(tail) in {squeeze(j) for j in _JOINERS}:
            return head
        rest = _listed(tail, lexicon)
        if rest is not None and rest not in CONTEXTUAL and len(rest) >= 3:
            return head
    return None


def _in_context(word: str, index: int, folded: Folded) -> bool:
    """Whether a word of :data:`CONTEXTUAL` at ``words[index]`` is used offensively."""
    words = folded.words
    before = words[max(0, index - 2) : index]
    after = words[index + 1 : index + 3]
    if word == "kill":
        return bool(_PEOPLE.intersection(after))
    if word == "hell":
        return before in _HELL_PHRASES or (before[-1:] == ("to",) and after[:1] == ("with",))
    if word == "cum":
        return not (after[:1] == ("laude",) or before[-1:] in (("magna",), ("summa",)))
    return not _is_name(index, folded)


def _is_name(index: int, folded: Folded) -> bool:
    cased = folded.cased
    if not cased[index][:1].isupper():
        return False
    neighbours = [cased[i] for i in (index - 1, index + 1) if 0 <= i < len(cased)]
    return any(n[:1].isupper() and n.casefold() not in _NOT_NAMES for n in neighbours)


def is_sensitive(text: str) -> bool:
    """True when ``text`` holds a word or phrase of the ``better-profanity`` list
    (profanity, slurs, sexual or violent words), however it is disguised.

    Read through :func:`fold`: fullwidth, mathematical, accented or look-alike letters,
    invisible characters inside a word, leetspeak ("sh1t", "@ss"), letters spaced out
    ("f u c k", "f.u.c.k"); and matched against the list with repeated letters ("fuuuck"),
    without vowels ("fck", "fcking"), with censoring marks ("f*ck", "sl*t"), glued to another
    word ("fuckyou"). Words of :data:`ORDINARY` are never refused, words of
    :data:`CONTEXTUAL` only in the context that makes them offensive.
    """
    folded = fold(text)
    lexicon = _word_list()
    for index, forms in enumerate(folded.spellings):
        for form in forms:
            word = _match(form)
            if word is None:
                continue
            if word not in CONTEXTUAL or _in_context(word, index, folded):
                return True
            break
    read = tuple(s[1] if len(s) > 1 else s[0] for s in folded.spellings)
    for sequence in {folded.words, read, folded.joined}:
        for n in range(2, lexicon.longest_phrase + 1):
            for start in range(len(sequence) - n + 1):
                if tuple(sequence[start : start + n]) in lexicon.phrases:
                    return True
    for word in folded.joined:
        if word not in folded.words and len(word) >= 3:
            hit = _match(word)
            if hit is not None and hit not in CONTEXTUAL:
                return True
    return False


def looks_like_code(text: str) -> bool:
    """True when ``text`` has the marks of code, markup or a command (brackets, backticks,
    tags, pipes, paths, shell operators, markdown emphasis) rather than of a chat reply; read
    in its visible form (:func:`fold`: a fullwidth brace is a brace)."""
    return bool(_CODE.search(fold(text).visible))
