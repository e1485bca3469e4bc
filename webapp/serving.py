"""The production model inside a web process, swapped without a restart.

Every request asks the holder for the model, and in a web worker a timer thread asks too
(:meth:`ModelHolder.watch`); at most once per ``check_seconds`` the holder reads which
version is production, so an idle process swaps before its next request. A change is loaded in a background thread while requests
keep using the model they have; the swap is one reference assignment, so requests in flight
finish on the model they started with. A version that fails to load (corrupt, partial) is
logged and skipped, and the current model keeps serving.

The same check reads the product team's curation (models.curation): a new block is applied
to the served model's bank at once (its ids are never suggested), a lifted one is no longer
applied, and a new curated reply is encoded and added to the served bank, so each takes
effect within ``check_seconds`` on every web process, without waiting for a generation.
Block patterns run on RE2 (core.patterns), so applying one to the bank in a request thread
costs time linear in the bank, whatever the pattern. It reads the reviewers' edits to the
intents too (models.intent_edits): the replies of a disabled intent are never suggested, from
the next check on, in a model whose bank records each reply's intent.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from core.actions import Unavailable
from core.db import Database
from core.ingest import DEFAULT_NICHE
from models.artifact import ArtifactError
from models.artifact import load_model
from models.bank import Source
from models.curation import load_curation
from models.curation import revision
from models.encoder import Encoder
from models.intent_edits import Overlay
from models.intent_edits import load_overlay
from models.intent_edits import revision as intents_revision
from models.registry import production
from models.reply_rules import Curation
from models.reply_rules import surface_key
from models.suggester import ReplyLabel
from models.suggester import SuggestionModel
from webapp import metrics

log = logging.getLogger(__name__)

# A version that failed to load is retried after this long (the file may have been repaired).
RETRY_FAILED_SECONDS = 60.0


@dataclass(frozen=True)
class Loaded:
    version: str
    checksum: str
    # What requests are served with: ``trained`` plus the team's curation.
    model: SuggestionModel
    # The model as its artifact holds it.
    trained: SuggestionModel
    # The curation revision (models.curation.revision) ``model`` reflects.
    curation: tuple[int, ...] = (0, 0, 0)
    # The revision of the intents' edits (models.intent_edits.revision) ``model`` reflects.
    intents: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class _Target:
    version: str
    checksum: str
    path: str


class NoModelError(Unavailable):
    """No production model can be served yet (none was trained, or its artifact is refused);
    the message says why and what to do."""

    code = "no_model"


def _without_paths(reason: str, directory: Path, version: str) -> str:
    """A loader's error said to anyone (/readyz needs no key): without the server's paths.

    The artifact's folder becomes ``<version>``; any other absolute path (an OS error's file
    name) becomes ``<path>``.
    """
    return _ABSOLUTE_PATH.sub("<path>", reason.replace(str(directory), f"<{version}>"))


# An absolute POSIX path: a slash not inside a word or a relative path, then a file name.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/[^\s'\"():,;]+")


class ModelHolder:
    def __init__(self, db: Database, encoder: Encoder, check_seconds: float) -> None:
        self.db = db
        self.data_dir = db.settings.data_dir
        self.encoder = encoder
        self.check_seconds = check_seconds
        self._current: Loaded | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        # One thread loads every model, for the life of the process. A new thread per load
        # took a new malloc arena of its own (glibc) for each, and the memory of the model it
        # replaced stayed with the old arena: a web worker grew by about a model's size at
        # every swap (tests/test_soak.py). The same thread reuses that memory.
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        self._loading: Future[None] | None = None
        self._watcher: threading.Thread | None = None
        self._failed: dict[tuple[str, str], float] = {}
        # Why the production version is not served: for the log (with file paths), and for
        # clients and probes (without them).
        self.last_error: str | None = None
        self.public_error: str | None = None

    @property
    def current(self) -> Loaded | None:
        return self._current

    def watch(self) -> threading.Thread:
        """Check production every ``check_seconds`` in a daemon thread of this process, and
        return the thread (started; one per holder, however often this is called).

        Requests check too (:meth:`get`), but an idle process would otherwise serve the old
        model to its next requests while the new one loads, and say so: 16 answers came from
        an archived v1 two minutes after v2 became production, and /readyz and /v1/models
        (which read :attr:`current`, never check) said "serving v1" all along. With the timer
        an idle process has loaded the change before its next request. A web worker starts
        it once it has forked (webapp/gunicorn_conf.py post_worker_init): threads do not
        survive a fork. The interval is ``production_check_seconds`` (1 s by default,
        core/settings.py). Errors of a round are logged; the thread goes on."""
        with self._lock:
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(
                    target=self._watch, name="production-watch", daemon=True
                )
                self._watcher.start()
            return self._watcher

    def _watch(self) -> None:
        while True:
            time.sleep(max(self.check_seconds, 0.05))
            try:
                # The same throttle as requests: together they check once an interval.
                now = time.monotonic()
                if now - self._checked_at >= self.check_seconds:
                    self._checked_at = now
                    self._check(background=self._current is not None)
            except Exception:
                log.exception("checking the production model failed; checking again")

    def get(self) -> Loaded:
        """The model to serve this request with; raises NoModelError (:attr:`absent_reason`)
        when none can be served."""
        loaded = self.find()
        if loaded is None:
            raise NoModelError(self.absent_reason)
        return loaded

    def find(self) -> Loaded | None:
        """The model to serve this request with, production checked as :meth:`get` checks it;
        None when none can be served (pages that show what they can without one)."""
        now = time.monotonic()
        if now - self._checked_at >= self.check_seconds:
            self._checked_at = now
            self._check(background=self._current is not None)
        return self._current

    @property
    def absent_reason(self) -> str:
        """Why no model is served, for anyone (without the server's paths)."""
        return self.public_error or (
            "no production model yet: run `replyguard models train-baseline` "
            "(make run does it for you)"
        )

    def refresh(self) -> Loaded | None:
        """Check production now and load a change before returning (start-up, tests)."""
        self._checked_at = time.monotonic()
        self._check(background=False)
        return self._current

    def _check(self, background: bool) -> None:
        try:
            with self.db.session() as session:
                row = production(session)
                target = _Target(row.version, row.checksum, row.artifact_path) if row else None
                current = self._current
                if current and target and current.checksum == target.checksum:
                    changed, edited = revision(session), intents_revision(session)
                    if changed != current.curation or edited != current.intents:
                        self._current = _curated(
                            current, load_curation(session), changed, load_overlay(session), edited
                        )
                    return
        except SQLAlchemyError as exc:
            # The database being briefly unreachable must not stop suggestions.
            log.warning("cannot read the production version: %s", exc)
            return
        if target is None:
            return
        failed_at = self._failed.get((target.version, target.checksum))
        if failed_at is not None and time.monotonic() - failed_at < RETRY_FAILED_SECONDS:
            return
        if not background:
            self._load(target)
            return
        with self._lock:
            if self._loading is not None and not self._loading.done():
                return
            self._loading = self._loader.submit(self._load, target)
            self._loading.add_done_callback(_log_failure)

    def wait_for_load(self, timeout: float = 60.0) -> None:
        loading = self._loading
        if loading is not None:
            wait([loading], timeout)

    def _load(self, target: _Target) -> None:
        try:
            model, _ = load_model(self.data_dir / target.path, self.encoder, target.checksum)
        except ArtifactError as exc:
            self._failed[(target.version, target.checksum)] = time.monotonic()
            serving = self._current.version if self._current else "nothing"
            self.last_error = f"production model {target.version} was refused: {exc}"
            self.public_error = (
                f"production model {target.version} was refused: "
                f"{_without_paths(str(exc), self.data_dir / target.path, target.version)}"
            )
            log.error("%s; still serving %s", self.last_error, serving)
            metrics.MODEL_LOAD_FAILURES.inc()
            return
        try:
            with self.db.session() as session:
                changed, curation = revision(session), load_curation(session)
                edited, overlay = intents_revision(session), load_overlay(session)
        except SQLAlchemyError as exc:
            log.warning("cannot read the curation, serving %s without it: %s", target.version, exc)
            changed, curation, edited, overlay = (-1, -1, -1), Curation(), (-1, -1), None
        previous = self._current
        self._current = _curated(
            Loaded(target.version, target.checksum, model, model),
            curation,
            changed,
            overlay,
            edited,
        )
        self.last_error = self.public_error = None
        log.info("now serving model %s", target.version)
        metrics.model_loaded(previous.version if previous else None, target.version)


def _log_failure(loading: Future[None]) -> None:
    """What a thread would have printed: a load that raised (other than a refused artifact,
    which _load reports itself)."""
    error = loading.exception()
    if error is not None:
        log.error("loading the production model failed: %s", error, exc_info=error)


def _curated(
    loaded: Loaded,
    curation: Curation,
    changed: tuple[int, ...],
    overlay: Overlay | None = None,
    edited: tuple[int, int] = (0, 0),
) -> Loaded:
    """``loaded`` with the team's hand on it: curated replies and the replies of intents
    reviewers added or extended (``overlay``, models.intent_edits) joined to its bank, its
    blocks applied, and the replies of disabled intents never suggested (where its bank
    records each reply's intent).

    Starts again from the trained model each time (a few added replies are encoded in
    milliseconds), so a model never carries a stale overlay: a lifted block is simply absent
    from ``curation``.
    """
    base = loaded.trained
    known = {surface_key(t) for t in base.bank.texts}
    texts: list[str] = []
    niches: list[str] = []
    labels: list[ReplyLabel | None] = []
    for item in curation.curated:
        if surface_key(item.text) not in known and not curation.blocked(item.text):
            known.add(surface_key(item.text))
            texts.append(item.text)
            niches.append(item.niche)
            labels.append(None)
    disabled: frozenset[str] = frozenset()
    if overlay is not None:
        disabled = overlay.disabled_names()
        for state in overlay.intents:
            if state.disabled:
                continue
            # What a trained bank lacks: the replies reviewers added (an intent of their own,
            # or one more reply of a shipped intent), served under their intent at once.
            fresh = state.intent.replies if state.source == "reviewer" else state.added
            for text in fresh:
                if surface_key(text) in known or curation.blocked(text):
                    continue
                known.add(surface_key(text))
                texts.append(text)
                niches.append(DEFAULT_NICHE)
                stance = state.intent.stance
                labels.append(
                    ReplyLabel(
                        state.name,
                        state.intent.tone.value,
                        stance.value if stance else None,
                        Source.CATALOGUE.value,
                    )
                )
    model = base
    if texts:
        model = base.with_curated(texts, niches, base.encoder.encode(texts), labels)
    intents = model.bank.intents
    model.blocked_ids = frozenset(
        i
        for i, text in enumerate(model.bank.texts)
        if curation.blocked(text) or intents[i] in disabled
    )
    return Loaded(loaded.version, loaded.checksum, model, base, changed, edited)
