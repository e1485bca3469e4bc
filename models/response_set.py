"""The response set: which replies a model may ever suggest.

Not every reply that reached training, but the replies people write again and again, as
production reply suggestion builds its response set (Kannan et al., KDD 2016, "Smart Reply",
section 4; Henderson et al. 2017). A reply enters only when every rule of models.reply_rules
holds (short and plain, no personal data, not sensitive, not blocked, written by many),
checked in that order and each counted when it removes a reply; rule 5, ``written_by_many``,
is checked here, where every training row is seen.

Each cluster is served as one canonical text, its member written in the most conversations.
Curated replies (added by a reviewer) skip rule 5 but not rules 1-4.

The response set is organised by intent (Kannan et al. 2016, sections 4-5; docs/DESIGN):
every reply served has an intent, a tone and a source. The starter catalogue's replies
(models/catalogue.yaml) that pass rules 1-4 are served as they are (source ``catalogue``),
and a training row whose reply is one of them up to case and punctuation belongs to it. A
mined or curated reply joins a catalogue intent by propagation over the reply graph
(models.intents, measured in docs/benchmarks.md "Intent propagation"), taking its tone and
stance; the others form unnamed clusters (``unnamed-<hash>``, tone unknown) that the report
lists for a reviewer to name. A reply's prior is its intent's: log(1 + the conversations
that wrote any of its replies), scaled to [0, 1], at least the support threshold's (the
modest prior of a catalogue intent no row wrote).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import faiss
import numpy as np

from core.ingest import DEFAULT_NICHE
from core.text import normalize
from models.bank import UNKNOWN_TONE
from models.bank import ResponseBank
from models.bank import Source
from models.catalogue import Catalogue
from models.catalogue import Intent
from models.intents import PropagationConfig
from models.intents import propagate
from models.intents import unnamed_name
from models.reply_rules import CuratedReply
from models.reply_rules import Curation
from models.reply_rules import ResponseSetConfig
from models.reply_rules import Rule
from models.reply_rules import refusal
from models.reply_rules import surface_key

# Replies of no catalogue intent at or above this cosine to an unnamed cluster's leader are
# one unnamed cluster (one intent in a list): between "yes"/"no" (0.70), which must stay
# apart, and the same reply at two times, "see you at 7"/"see you at 8" (0.79), which one
# list need not show twice. Chosen between those measured pairs, not tuned.
UNNAMED_CLUSTER = 0.75
# A training row whose reply is not served votes for the nearest catalogue reply at or above
# this cosine: the nearest-seed rule's precision there is 0.978 on tests/data/intent_check.tsv
# (docs/benchmarks.md "Intent propagation"; at 0.70 it is 0.937, and sampled chitchat rows
# showed opposite stances such as "Yeah hopefully" -> "Hopefully not").
ROW_INTENT = 0.75


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
        catalogue: catalogue replies served; ``catalogue_refused`` maps a catalogue reply
            that rules 1-4 refuse (a block) to its rule.
        mined: mined replies served; ``joined`` of them (and of the curated ones not in the
            catalogue) joined a catalogue intent by propagation (models.intents).
        intents: catalogue intents with at least one served reply.
        rows_joined: training rows whose reply is not served that vote for the nearest
            catalogue reply (:func:`_rows_to_catalogue`).
        unnamed: the unnamed clusters, for a reviewer to name: each a dict with ``intent``
            (its ``unnamed-<hash>`` name), ``replies`` (its texts, the leader first),
            ``support`` (the leader's) and ``nearest`` (the catalogue intent it came closest
            to joining, and that mass), most supported first.
    """

    replies: int = 0
    removed: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in Rule})
    clusters: int = 0
    served: int = 0
    curated: int = 0
    curated_refused: dict[str, str] = field(default_factory=dict)
    catalogue: int = 0
    catalogue_refused: dict[str, str] = field(default_factory=dict)
    mined: int = 0
    joined: int = 0
    intents: int = 0
    unnamed: list[dict[str, Any]] = field(default_factory=list)
    rows_joined: int = 0
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "replies": self.replies,
            "removed": dict(self.removed),
            "clusters": self.clusters,
            "served": self.served,
            "curated": self.curated,
            "curated_refused": dict(self.curated_refused),
            "catalogue": self.catalogue,
            "catalogue_refused": dict(self.catalogue_refused),
            "mined": self.mined,
            "joined": self.joined,
            "intents": self.intents,
            "unnamed": [dict(u) for u in self.unnamed],
            "rows_joined": self.rows_joined,
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


@dataclass
class _Entry:
    """One reply of the bank being built."""

    text: str
    niches: list[str]
    count: float
    source: Source
    # (d,) float32, unit norm: the reply's encoder embedding.
    vector: np.ndarray
    intent: str | None = None
    tone: str = UNKNOWN_TONE
    stance: str | None = None
    # The conversations that wrote it (a catalogue reply: those that wrote it word for word,
    # maybe none; a curated one: the support threshold).
    support: float = 0.0


@dataclass(frozen=True)
class ReplyRows:
    """The training rows as the response set reads them: one entry per row in each column.

    Attributes:
        replies: (n,) each row's reply.
        embeddings: (n, d) float32, unit rows: the encoder embedding of each reply.
        niches: (n,) each row's niche.
        conversations: (n,) the independent source of each row (None: the row alone).
        human: (n,) whether the row was written by a person (provenance ``human``); only
            these count toward support, so neither a model's own replies nor suggestions a
            user merely tapped can make a reply "written by many".

    Raises:
        ValueError: the columns are not all of one length.
    """

    replies: Sequence[str]
    embeddings: np.ndarray
    niches: Sequence[str]
    conversations: Sequence[str | None]
    human: Sequence[bool]

    def __post_init__(self) -> None:
        lengths = {
            "replies": len(self.replies),
            "embeddings": len(self.embeddings),
            "niches": len(self.niches),
            "conversations": len(self.conversations),
            "human": len(self.human),
        }
        if len(set(lengths.values())) != 1:
            raise ValueError(f"the reply rows' columns differ in length: {lengths}")


def build_response_set(
    rows: ReplyRows,
    *,
    config: ResponseSetConfig,
    curation: Curation,
    encode: Callable[[list[str]], np.ndarray],
    inherited_replies: Sequence[str] = (),
    catalogue: Catalogue | None = None,
    propagation: PropagationConfig | None = None,
) -> ResponseSet:
    """Build the response set from training rows and the catalogue, organised by intent.

    Args:
        rows: the training rows' replies, embeddings, niches, conversations and provenance.
        config: the rules' parameters.
        curation: curated replies and blocks.
        encode: embeds catalogue and curated texts: list of str -> (k, d) float32 unit rows
            (called once for the catalogue and once for new curated replies).
        inherited_replies: the parent model's served replies. A cluster holding one of them
            stays served below ``min_support`` (rules 1-4 still apply, so a new block removes
            it): what was vetted once stays vetted, and a generation whose rows a model wrote
            (the collapse experiment's ``replace``) keeps the set it was built on, "the
            response set held as it is". With human data accumulating, support never falls,
            so in the production pipeline this changes nothing.
        catalogue: the starter catalogue of intents (models.catalogue). Every catalogue
            reply that passes rules 1-4 is served (source ``catalogue``) with the support
            threshold as its count, a modest prior, or the support of the rows that wrote it
            when that is more; a training row whose reply is a catalogue reply up to case
            and punctuation votes for it. Mined and new curated replies join its intents by
            propagation (models.intents). None: no catalogue, every reply unnamed.
        propagation: the propagation's graph and threshold (None: its defaults).

    Returns:
        The response set; its report counts what each rule removed and lists the unnamed
        clusters.
    """
    propagation = propagation or PropagationConfig()
    report = ResponseSetReport(config={**asdict(config), "propagation": asdict(propagation)})
    verdicts: dict[str, Rule | None] = {}
    groups: dict[str, _Group] = {}
    row_keys: list[str | None] = []
    for row, reply in enumerate(rows.replies):
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
        source = rows.conversations[row] or f"row:{row}"
        group.texts.setdefault(reply.strip(), set())
        if rows.human[row]:
            group.texts[reply.strip()].add(source)
            group.conversations.add(source)
        if rows.niches[row] not in group.niches:
            group.niches.append(rows.niches[row])
        row_keys.append(key)
    report.replies = len(verdicts)

    entries: list[_Entry] = []
    bank_id_of_key: dict[str, int] = {}
    seeds = _catalogue_entries(catalogue, config, curation, report, groups, encode)
    # Rows that wrote a catalogue reply belong to it, not to a mined cluster.
    mined_keys = [k for k in groups if k not in seeds]

    keys = sorted(mined_keys, key=lambda k: (-len(groups[k].conversations), k))
    leaders = _cluster(
        rows.embeddings[[groups[k].first_row for k in keys]] if keys else rows.embeddings[:0],
        config.cluster_threshold,
    )
    clusters: dict[int, list[str]] = {}
    for key, leader in zip(keys, leaders, strict=True):
        clusters.setdefault(int(leader), []).append(key)
    report.clusters = len(clusters)

    vetted = {surface_key(t) for t in inherited_replies}
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
        for key in members:
            bank_id_of_key[key] = len(entries)
        entries.append(
            _Entry(
                best.canonical(),
                sorted({n for k in members for n in groups[k].niches}),
                float(len(support)),
                Source.MINED,
                rows.embeddings[best.first_row],
                support=float(len(support)),
            )
        )
    report.mined = len(entries)
    for key, entry in seeds.items():
        bank_id_of_key[key] = len(entries)
        entries.append(entry)
    report.catalogue = len(seeds)

    _add_curated(curation, config, report, encode, entries, bank_id_of_key)
    _name_intents(entries, catalogue, propagation, report)

    row_ids = np.asarray(
        [bank_id_of_key.get(k, -1) if k is not None else -1 for k in row_keys], dtype=np.int64
    )
    report.rows_joined = _rows_to_catalogue(row_ids, rows.embeddings, entries)
    count_array = np.asarray([e.count for e in entries], dtype=np.float32)
    prior = _intent_prior(entries, config.min_support)
    dim = rows.embeddings.shape[1]
    vectors = [e.vector for e in entries]
    matrix = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)
    report.served = len(entries)
    bank = ResponseBank(
        [e.text for e in entries],
        [e.niches for e in entries],
        count_array,
        prior,
        intents=[e.intent or "" for e in entries],
        tones=[e.tone for e in entries],
        stances=[e.stance for e in entries],
        sources=[e.source.value for e in entries],
    )
    return ResponseSet(bank, matrix, row_ids, report)


def _rows_to_catalogue(row_ids: np.ndarray, embeddings: np.ndarray, entries: list[_Entry]) -> int:
    """Rows whose reply is not served vote for the catalogue reply nearest to it when their
    cosine is at least :data:`ROW_INTENT`: their message then counts in the
    nearest-message signal for that reply's intent ("i'm so sorry to hear about your mom"
    for "So sorry to hear that"). Only the catalogue's text is ever shown, so no one's words
    reach anyone else. Changes ``row_ids`` in place; returns how many rows it joined.

    Args:
        row_ids: (n,) int64, -1 for a row not in the response set.
        embeddings: (n, d) float32 unit rows: each row's reply.
        entries: the bank being built.
    """
    catalogue_ids = np.asarray(
        [i for i, e in enumerate(entries) if e.source == Source.CATALOGUE], dtype=np.int64
    )
    unmatched = np.flatnonzero(row_ids == -1)
    if not len(catalogue_ids) or not len(unmatched):
        return 0
    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(np.ascontiguousarray(np.vstack([entries[i].vector for i in catalogue_ids])))
    sims, found = index.search(np.ascontiguousarray(embeddings[unmatched], dtype=np.float32), 1)
    near = sims[:, 0] >= ROW_INTENT
    row_ids[unmatched[near]] = catalogue_ids[found[near, 0]]
    return int(near.sum())


def _intent_prior(entries: list[_Entry], floor: int) -> np.ndarray:
    """(m,) float32 in [0, 1]: each reply's prior is its intent's, log(1 + support) scaled
    to [0, 1], where an intent's support is the conversations that wrote any of its
    replies (at least ``floor``, the support threshold: a catalogue intent no row wrote
    gets that modest prior). Replies of one meaning share one prior, so which of them is
    shown is the signals' choice, not their popularity's (docs/DESIGN: "top-N candidates
    by score (+ the intent's prior)")."""
    support: dict[str, float] = {}
    for entry in entries:
        key = entry.intent or ""
        support[key] = support.get(key, 0.0) + entry.support
    logs = np.log1p(np.asarray([max(support[e.intent or ""], floor) for e in entries]))
    return (logs / max(float(logs.max(initial=0.0)), 1e-12)).astype(np.float32)


def _catalogue_entries(
    catalogue: Catalogue | None,
    config: ResponseSetConfig,
    curation: Curation,
    report: ResponseSetReport,
    groups: dict[str, _Group],
    encode: Callable[[list[str]], np.ndarray],
) -> dict[str, _Entry]:
    """The catalogue's replies that pass rules 1-4, by surface key, encoded in one call; a
    reply the rows wrote takes their support (when above the threshold) and niches."""
    if catalogue is None:
        return {}
    chosen: dict[str, tuple[Intent, str]] = {}
    for intent, reply in catalogue.replies():
        rule = refusal(reply, config, curation)
        if rule is not None:
            report.catalogue_refused[reply] = rule.value
            continue
        chosen.setdefault(surface_key(reply), (intent, reply))
    if not chosen:
        return {}
    vectors = encode([reply for _, reply in chosen.values()])
    entries = {}
    for (key, (intent, reply)), vector in zip(chosen.items(), vectors, strict=True):
        group = groups.get(key)
        support = len(group.conversations) if group else 0
        entries[key] = _Entry(
            reply,
            sorted(group.niches) if group else [DEFAULT_NICHE],
            float(max(support, config.min_support)),
            Source.CATALOGUE,
            vector,
            intent.name,
            intent.tone.value,
            intent.stance.value if intent.stance else None,
            float(support),
        )
    return entries


def _add_curated(
    curation: Curation,
    config: ResponseSetConfig,
    report: ResponseSetReport,
    encode: Callable[[list[str]], np.ndarray],
    entries: list[_Entry],
    bank_id_of_key: dict[str, int],
) -> None:
    """Curated replies join the bank as written (replacing a served text of the same
    surface form, whose intent they keep), with the support threshold as their count: a
    prior no higher than a reply many people wrote."""
    fresh: list[CuratedReply] = []
    for item in curation.curated:
        rule = refusal(item.text, config, curation)
        if rule is not None:
            report.curated_refused[item.text] = rule.value
            continue
        key = surface_key(item.text)
        if key in bank_id_of_key:
            entry = entries[bank_id_of_key[key]]
            entry.text = item.text
            entry.source = Source.CURATED
            if item.niche not in entry.niches:
                entry.niches.append(item.niche)
        else:
            fresh.append(item)
            bank_id_of_key[key] = -2  # placeholder until its vector is encoded
        report.curated += 1
    if not fresh:
        return
    encoded = encode([c.text for c in fresh])
    for item, vector in zip(fresh, encoded, strict=True):
        bank_id_of_key[surface_key(item.text)] = len(entries)
        entries.append(
            _Entry(
                item.text,
                [item.niche],
                float(config.min_support),
                Source.CURATED,
                vector,
                support=float(config.min_support),
            )
        )


def _name_intents(
    entries: list[_Entry],
    catalogue: Catalogue | None,
    propagation: PropagationConfig,
    report: ResponseSetReport,
) -> None:
    """Give every entry without an intent (mined, new curated) one: the catalogue intent
    propagation joins it to (with that intent's tone and stance), or an unnamed cluster.

    The unnamed ones are clustered among themselves (leader clustering, most supported
    first, at :data:`UNNAMED_CLUSTER` cosine) so that a list never shows two of one
    meaning the catalogue does not know, and a reviewer names each cluster once.
    """
    open_ids = [i for i, e in enumerate(entries) if e.intent is None]
    if not open_ids:
        report.intents = len({e.intent for e in entries if e.intent})
        return
    open_vectors = np.vstack([entries[i].vector for i in open_ids]).astype(np.float32)
    seed_ids = [i for i, e in enumerate(entries) if e.source == Source.CATALOGUE or e.intent]
    names = list(catalogue.names()) if catalogue is not None else []
    index = {name: i for i, name in enumerate(names)}
    seed_ids = [i for i in seed_ids if entries[i].intent in index]
    found = propagate(
        np.vstack([entries[i].vector for i in seed_ids]).astype(np.float32)
        if seed_ids
        else np.zeros((0, open_vectors.shape[1]), np.float32),
        np.asarray([index[entries[i].intent or ""] for i in seed_ids], dtype=np.int64),
        len(names),
        open_vectors,
        propagation,
    )
    unnamed: list[int] = []
    for position, (entry_id, label) in enumerate(zip(open_ids, found.labels.tolist(), strict=True)):
        entry = entries[entry_id]
        if label >= 0 and catalogue is not None:
            intent = catalogue[names[label]]
            entry.intent = intent.name
            entry.tone = intent.tone.value
            entry.stance = intent.stance.value if intent.stance else None
            report.joined += 1
        else:
            unnamed.append(position)
    order = sorted(unnamed, key=lambda p: (-entries[open_ids[p]].count, open_ids[p]))
    leaders = _cluster(open_vectors[order], UNNAMED_CLUSTER) if order else np.zeros(0, np.int64)
    members: dict[int, list[int]] = {}
    for position, leader in zip(order, leaders.tolist(), strict=True):
        members.setdefault(order[leader], []).append(position)
    for leader, cluster in members.items():
        leader_entry = entries[open_ids[leader]]
        name = unnamed_name(surface_key(leader_entry.text))
        for position in cluster:
            entries[open_ids[position]].intent = name
        best = int(found.best[leader])
        report.unnamed.append(
            {
                "intent": name,
                "replies": [entries[open_ids[p]].text for p in cluster],
                "support": leader_entry.count,
                "nearest": (
                    {"intent": names[best], "mass": round(float(found.mass[leader]), 3)}
                    if best >= 0
                    else None
                ),
            }
        )
    report.intents = len({e.intent for e in entries if e.intent in index})


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
