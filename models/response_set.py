"""The response set: which replies a model may ever suggest.

Not every reply that reached training, but the replies people write again and again, as
production reply suggestion builds its response set (Kannan et al., KDD 2016, "Smart Reply",
section 4; Henderson et al. 2017). A reply enters only when every rule holds, checked in this
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

Each cluster is served as one canonical text, its member written in the most conversations,
with the cluster's support as its prior. Curated replies (added by a reviewer) skip rule 5
but not rules 1-4.

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
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import faiss
import numpy as np

# The `regex` module for Unicode properties (dashes, invisible characters) in surface_key.
import regex

from core.content import is_sensitive
from core.content import looks_like_code
from core.content import personal_data
from core.patterns import BlockPattern
from core.text import normalize
from core.text import visible_form
from models.bank import ResponseBank

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


@dataclass
class ResponseSetReport:
    """What building the response set kept and removed (stored in the artifact's manifest
    and shown on the dashboard).

    Attributes:
        replies: distinct replies (by normalised text) among the training rows.
        removed: distinct replies removed, by the first rule that refused them; for
            ``written_by_many``, the replies of clusters below ``min_support``.
        clusters: meaning clusters among the replies that passed rules 1-4.
        served: replies in the response set (canonical texts), curated ones included.
        curated: curated replies served; ``curated_refused`` maps a refused one to its rule.
    """

    replies: int = 0
    removed: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in Rule})
    clusters: int = 0
    served: int = 0
    curated: int = 0
    curated_refused: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "replies": self.replies,
            "removed": dict(self.removed),
            "clusters": self.clusters,
            "served": self.served,
            "curated": self.curated,
            "curated_refused": dict(self.curated_refused),
            "config": dict(self.config),
        }


@dataclass
class ResponseSet:
    """The bank a model serves, and how each training row maps into it.

    Attributes:
        bank: the canonical replies, their niches, support counts and prior.
        embeddings: (m, d) float32, unit rows: each canonical reply's encoder embedding.
        row_ids: (n,) int64: the bank id of each training row's reply, -1 when its reply is
            not in the response set (such a row never votes for a suggestion).
        report: what each rule removed.
    """

    bank: ResponseBank
    embeddings: np.ndarray
    row_ids: np.ndarray
    report: ResponseSetReport


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

    Rule 5 (support) needs every training row and is checked by :func:`build_response_set`.
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


@dataclass
class _Group:
    """Rows whose replies share a surface key."""

    first_row: int
    texts: dict[str, set[str]] = field(default_factory=dict)
    conversations: set[str] = field(default_factory=set)
    niches: list[str] = field(default_factory=list)

    def canonical(self) -> str:
        # The member written in the most conversations; ties: the shorter, then the first.
        return min(self.texts, key=lambda t: (-len(self.texts[t]), len(t), t))


def build_response_set(
    replies: Sequence[str],
    embeddings: np.ndarray,
    niches: Sequence[str],
    conversations: Sequence[str | None],
    human: Sequence[bool],
    config: ResponseSetConfig,
    curation: Curation,
    encode: Callable[[list[str]], np.ndarray],
    inherited: Sequence[str] = (),
) -> ResponseSet:
    """Build the response set from training rows.

    Args:
        replies: (n,) each training row's reply.
        embeddings: (n, d) float32, unit rows: the encoder embedding of each reply.
        niches: (n,) each row's niche.
        conversations: (n,) the independent source of each row (None: the row alone).
        human: (n,) whether the row was written by a person (provenance ``human``); only
            these count toward support, so neither a model's own replies nor suggestions a
            user merely tapped can make a reply "written by many".
        config: the rules' parameters.
        curation: curated replies and blocks.
        encode: embeds curated texts: list of str -> (k, d) float32 unit rows.
        inherited: the parent model's served replies. A cluster holding one of them stays
            served below ``min_support`` (rules 1-4 still apply, so a new block removes it):
            what was vetted once stays vetted, and a generation whose rows a model wrote
            (the collapse experiment's ``replace``) keeps the set it was built on, "the
            response set held as it is". With human data accumulating, support never falls,
            so in the production pipeline this changes nothing.

    Returns:
        The response set; its report counts what each rule removed.
    """
    report = ResponseSetReport(config=asdict(config))
    verdicts: dict[str, Rule | None] = {}
    groups: dict[str, _Group] = {}
    row_keys: list[str | None] = []
    for row, reply in enumerate(replies):
        normal = normalize(reply)
        if normal not in verdicts:
            verdicts[normal] = refusal(reply, config, curation)
            rule = verdicts[normal]
            if rule is not None:
                report.removed[rule.value] += 1
        if verdicts[normal] is not None:
            row_keys.append(None)
            continue
        key = surface_key(reply)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(first_row=row)
        source = conversations[row] or f"row:{row}"
        group.texts.setdefault(reply.strip(), set())
        if human[row]:
            group.texts[reply.strip()].add(source)
            group.conversations.add(source)
        if niches[row] not in group.niches:
            group.niches.append(niches[row])
        row_keys.append(key)
    report.replies = len(verdicts)

    keys = sorted(groups, key=lambda k: (-len(groups[k].conversations), k))
    leaders = _cluster(
        embeddings[[groups[k].first_row for k in keys]] if keys else embeddings[:0],
        config.cluster_threshold,
    )
    clusters: dict[int, list[str]] = {}
    for key, leader in zip(keys, leaders, strict=True):
        clusters.setdefault(int(leader), []).append(key)
    report.clusters = len(clusters)

    texts: list[str] = []
    bank_niches: list[list[str]] = []
    counts: list[float] = []
    vectors: list[np.ndarray] = []
    bank_id_of_key: dict[str, int] = {}
    vetted = {surface_key(t) for t in inherited}
    for members in clusters.values():
        support: set[str] = set()
        for key in members:
            support |= groups[key].conversations
        if len(support) < config.min_support and vetted.isdisjoint(members):
            report.removed[Rule.WRITTEN_BY_MANY.value] += sum(len(groups[k].texts) for k in members)
            continue
        # The canonical text: the member text written in the most conversations.
        best_key = min(members, key=lambda k: (-len(groups[k].texts[groups[k].canonical()]), k))
        best = groups[best_key]
        bank_id = len(texts)
        texts.append(best.canonical())
        bank_niches.append(sorted({n for k in members for n in groups[k].niches}))
        counts.append(float(len(support)))
        vectors.append(embeddings[best.first_row])
        for key in members:
            bank_id_of_key[key] = bank_id

    _add_curated(
        curation, config, report, encode, texts, bank_niches, counts, vectors, bank_id_of_key
    )

    row_ids = np.asarray(
        [bank_id_of_key.get(k, -1) if k is not None else -1 for k in row_keys], dtype=np.int64
    )
    count_array = np.asarray(counts, dtype=np.float32)
    log_counts = np.log1p(count_array)
    prior = (log_counts / max(float(log_counts.max(initial=0.0)), 1e-12)).astype(np.float32)
    dim = embeddings.shape[1]
    matrix = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)
    report.served = len(texts)
    return ResponseSet(
        ResponseBank(texts, bank_niches, count_array, prior), matrix, row_ids, report
    )


def _add_curated(
    curation: Curation,
    config: ResponseSetConfig,
    report: ResponseSetReport,
    encode: Callable[[list[str]], np.ndarray],
    texts: list[str],
    niches: list[list[str]],
    counts: list[float],
    vectors: list[np.ndarray],
    bank_id_of_key: dict[str, int],
) -> None:
    """Curated replies join the bank as written (replacing a served text of the same
    surface form), with the support threshold as their count: a prior no higher than a
    reply many people wrote."""
    fresh: list[CuratedReply] = []
    for item in curation.curated:
        rule = refusal(item.text, config, curation)
        if rule is not None:
            report.curated_refused[item.text] = rule.value
            continue
        key = surface_key(item.text)
        if key in bank_id_of_key:
            bank_id = bank_id_of_key[key]
            texts[bank_id] = item.text
            if item.niche not in niches[bank_id]:
                niches[bank_id].append(item.niche)
        else:
            fresh.append(item)
            bank_id_of_key[key] = -2  # placeholder until its vector is encoded
        report.curated += 1
    if not fresh:
        return
    encoded = encode([c.text for c in fresh])
    for item, vector in zip(fresh, encoded, strict=True):
        bank_id_of_key[surface_key(item.text)] = len(texts)
        texts.append(item.text)
        niches.append([item.niche])
        counts.append(float(config.min_support))
        vectors.append(vector)


def _cluster(vectors: np.ndarray, threshold: float, batch: int = 1024) -> np.ndarray:
    """Leader clustering: each vector, in the given order, joins the first earlier leader it
    is at least ``threshold`` cosine to, or leads a cluster of its own.

    Args:
        vectors: (n, d) float32, unit rows, most supported first.
        threshold: cosine at which two vectors are the same meaning.

    Returns:
        (n,) int64: each vector's leader, as an index into ``vectors``.
    """
    n = len(vectors)
    leader_of = np.empty(n, dtype=np.int64)
    if n == 0:
        return leader_of
    index = faiss.IndexFlatIP(vectors.shape[1])
    leader_rows: list[int] = []
    for start in range(0, n, batch):
        chunk = np.ascontiguousarray(vectors[start : start + batch], dtype=np.float32)
        if index.ntotal:
            sims, found = index.search(chunk, 1)
        else:
            sims = np.full((len(chunk), 1), -np.inf, dtype=np.float32)
            found = np.full((len(chunk), 1), -1, dtype=np.int64)
        new: list[int] = []
        for i in range(len(chunk)):
            row = start + i
            if sims[i, 0] >= threshold:
                leader_of[row] = leader_rows[int(found[i, 0])]
                continue
            # Leaders created earlier in this chunk are not in the index yet.
            if new:
                within = vectors[new] @ chunk[i]
                best = int(np.argmax(within))
                if within[best] >= threshold:
                    leader_of[row] = new[best]
                    continue
            leader_of[row] = row
            new.append(row)
        if new:
            index.add(np.ascontiguousarray(vectors[new], dtype=np.float32))
            leader_rows.extend(new)
    return leader_of
