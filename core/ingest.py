"""Getting examples into the database: the demo corpus, files, and API batches.

Every path goes through :func:`validate_row` and :func:`add_examples`, so the rules are the
same wherever an example comes from: provenance is always explicit, a known pair is a
duplicate (never an update), and nothing is half-imported.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.actions import Invalid
from core.provenance import Provenance
from core.schema import Example
from core.schema import IncomingMessage
from core.settings import Settings
from core.splits import Candidate
from core.splits import stratified_pick
from core.text import pair_hash

MAX_TEXT_CHARS = 2_000
MAX_NICHE_CHARS = 100
DEFAULT_NICHE = "general"
FIELDS = {"message", "reply", "niche", "provenance"}


class ImportFailed(Invalid):
    """A file or batch had invalid rows and nothing was imported."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        shown = "\n".join(f"  {e}" for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(
            f"{len(errors)} invalid row(s), nothing imported:\n{shown}{more}\n"
            "Fix them, or pass --skip-invalid to import the valid rows only."
        )


class NothingToImport(Invalid):
    """No row is valid (or there is none): a run that imports nothing is not a success,
    with ``skip_invalid`` or without. ``errors`` are the invalid rows, by line."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        if not errors:
            super().__init__("no rows to import")
            return
        shown = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"nothing imported: all {len(errors)} row(s) are invalid:\n{shown}")


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class ExampleIn:
    message: str
    reply: str
    niche: str
    provenance: Provenance
    # The independent source that wrote the reply (see core.schema.Example.conversation).
    conversation: str | None = None


@dataclass
class ImportReport:
    added: int = 0
    duplicates: int = 0
    # Demo messages stored as incoming traffic (no reply).
    traffic: int = 0
    skipped: list[RowError] = field(default_factory=list)
    # What the reader did that the caller should know, e.g. extra columns it ignored.
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "duplicates": self.duplicates,
            "skipped": [{"line": e.line, "error": e.message} for e in self.skipped],
        }


def validate_row(raw: Mapping[str, Any], provenance: Provenance | None) -> ExampleIn:
    """Check one row; raise ValueError saying what is wrong.

    ``provenance`` is the batch-wide value (a CLI flag); a per-row column wins over it.
    There is no default: a row without either is invalid.
    """
    unknown = set(raw) - FIELDS
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    message = _text(raw, "message", MAX_TEXT_CHARS)
    reply = _text(raw, "reply", MAX_TEXT_CHARS)
    niche_raw = raw.get("niche")
    niche = DEFAULT_NICHE if niche_raw in (None, "") else _text(raw, "niche", MAX_NICHE_CHARS)
    row_provenance = raw.get("provenance")
    if row_provenance not in (None, ""):
        if not isinstance(row_provenance, str):
            raise ValueError("provenance must be a string")
        provenance = Provenance.parse(row_provenance)
    if provenance is None:
        raise ValueError(
            "no provenance: give a 'provenance' column (human, human_selected or synthetic) "
            "or --provenance for the whole file"
        )
    return ExampleIn(message, reply, niche, provenance)


def _text(raw: Mapping[str, Any], name: str, limit: int) -> str:
    value = raw.get(name)
    if value is None:
        raise ValueError(f"'{name}' is missing")
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be a string, not {type(value).__name__}")
    value = value.strip()
    if not value:
        raise ValueError(f"'{name}' is empty")
    if len(value) > limit:
        raise ValueError(f"'{name}' is longer than {limit} characters")
    return value


def validate_rows(
    rows: Iterable[tuple[int, Mapping[str, Any] | str]],
    provenance: Provenance | None,
    skip_invalid: bool,
) -> tuple[list[ExampleIn], list[RowError]]:
    """Validate numbered rows; a row given as a string is already a parse error.

    Returns the valid examples and the invalid rows. Raises ImportFailed when a row is
    invalid and ``skip_invalid`` is off, and NothingToImport when no row is valid."""
    valid: list[ExampleIn] = []
    errors: list[RowError] = []
    for line, raw in rows:
        try:
            if isinstance(raw, str):
                raise ValueError(raw)
            valid.append(validate_row(raw, provenance))
        except ValueError as exc:
            errors.append(RowError(line, str(exc)))
    if errors and not skip_invalid:
        raise ImportFailed(errors)
    if not valid:
        raise NothingToImport(errors)
    return valid, errors


def add_examples(
    session: Session,
    examples: Iterable[ExampleIn],
    source: str,
    generation: int | None = None,
    model_version: str | None = None,
) -> tuple[list[Example], int]:
    """Insert the examples not stored yet; return (the rows added, how many were duplicates)."""
    by_hash: dict[str, ExampleIn] = {}
    total = 0
    for example in examples:
        total += 1
        by_hash.setdefault(pair_hash(example.message, example.reply), example)
    existing = _existing_hashes(session, list(by_hash))
    added = [
        Example(
            message=ex.message,
            reply=ex.reply,
            niche=ex.niche,
            provenance=ex.provenance.value,
            source=source[:200],
            generation=generation,
            model_version=model_version,
            content_hash=digest,
            conversation=ex.conversation,
        )
        for digest, ex in by_hash.items()
        if digest not in existing
    ]
    session.add_all(added)
    session.flush()
    return added, total - len(added)


def _existing_hashes(session: Session, hashes: list[str]) -> set[str]:
    found: set[str] = set()
    # Bounded IN lists: SQLite and PostgreSQL both cap bind parameters.
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        found.update(
            session.scalars(select(Example.content_hash).where(Example.content_hash.in_(chunk)))
        )
    return found


class FileRefused(Invalid):
    """The file as a whole cannot be imported (not readable, not UTF-8, an unknown format, a
    JSON array instead of JSON Lines, a CSV file without a header, or whose header lacks
    message or reply or names a column twice); the message says why and, where there is one,
    on which line."""


@dataclass
class FileRows:
    """What :func:`read_rows` found: numbered rows (a string for a row that could not be
    parsed) and notes for the caller, e.g. extra columns that were ignored."""

    rows: list[tuple[int, Mapping[str, Any] | str]]
    notes: list[str] = field(default_factory=list)


@dataclass
class FileExamples:
    """The valid examples of a file, the rows skipped (with ``skip_invalid``) and the
    reader's notes."""

    valid: list[ExampleIn]
    skipped: list[RowError]
    notes: list[str]


def read_examples(path: Path, provenance: Provenance | None, skip_invalid: bool) -> FileExamples:
    """Read and validate a JSONL or CSV file of examples; shared by ``replyguard data import``
    and ``replyguard simulate --data``.

    Raises FileRefused when the file cannot be read as a whole, ImportFailed when a row is
    invalid and ``skip_invalid`` is off (every invalid row listed with its line), and
    NothingToImport when no row is valid."""
    found = read_rows(path)
    valid, skipped = validate_rows(found.rows, provenance, skip_invalid)
    return FileExamples(valid, skipped, found.notes)


def import_file(
    session: Session, path: Path, provenance: Provenance | None, skip_invalid: bool
) -> ImportReport:
    """Import a JSONL or CSV file of message/reply[/niche][/provenance] rows.

    Raises as :func:`read_examples` does; nothing is stored unless the file is imported."""
    read = read_examples(path, provenance, skip_invalid)
    added, duplicates = add_examples(session, read.valid, source=f"import:{path.name}")
    return ImportReport(
        added=len(added), duplicates=duplicates, skipped=read.skipped, notes=read.notes
    )


def read_rows(path: Path) -> FileRows:
    """The numbered rows of a .jsonl/.ndjson/.json (one JSON object a line) or .csv file.

    A row that cannot be parsed comes back as a string saying why, with the line it starts
    on. Columns other than message, reply, niche and provenance are dropped from every row
    and named in a note (exported data often carries a source or id column). Line numbers
    count "\\n" line breaks, as editors do.

    Raises FileRefused for a file that cannot be read as a whole."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FileRefused(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRefused(
            f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".json", ".ndjson"}:
        rows = list(_jsonl_rows(text, path.name))
    elif suffix == ".csv":
        rows = list(_csv_rows(text, path.name))
    else:
        raise FileRefused(f"{path.name}: unknown format {suffix!r}; use .jsonl or .csv")
    return _known_columns(rows)


def _known_columns(rows: list[tuple[int, Mapping[str, Any] | str]]) -> FileRows:
    """Drop the columns the importer does not know, and say which and how often."""
    ignored: dict[str, int] = {}
    kept: list[tuple[int, Mapping[str, Any] | str]] = []
    for line, row in rows:
        if isinstance(row, str):
            kept.append((line, row))
            continue
        for name in set(row) - FIELDS:
            ignored[name] = ignored.get(name, 0) + 1
        kept.append((line, {k: v for k, v in row.items() if k in FIELDS}))
    notes = [
        f"ignored column {name!r} ({count} row(s)): only {', '.join(sorted(FIELDS))} are imported"
        for name, count in sorted(ignored.items())
    ]
    return FileRows(kept, notes)


def _jsonl_rows(text: str, name: str) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and other characters that
    # splitlines() breaks on, which would cut a valid row in two.
    lines = text.split("\n")
    first = next((line.strip() for line in lines if line.strip()), "")
    if first.startswith("["):
        raise FileRefused(
            f"{name}: line 1: a JSON array; give one JSON object per line (JSON Lines)"
        )
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON ({exc.msg} at column {exc.colno})"
            continue
        except RecursionError:
            yield number, "not valid JSON (nested too deeply)"
            continue
        yield number, row if isinstance(row, dict) else "each line must be a JSON object"


def _csv_rows(text: str, name: str) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    """Rows of a CSV file with a header line. Header names are matched without surrounding
    spaces and case ("Message, Reply" works); a name given twice is refused. A row that spans
    several lines (a quoted field holding a line break, most often an unterminated quote
    swallowing the rows after it) is reported with its first and last line: message, reply
    and niche are one-line texts."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise FileRefused(f"{name}: line 1: the header is not valid CSV ({exc})") from None
    if header is None:
        raise FileRefused(f"{name} is empty: expected a header line naming message and reply")
    columns = [column.strip().lower() for column in header]
    seen: dict[str, int] = {}
    for position, column in enumerate(columns, start=1):
        if column in seen:
            raise FileRefused(
                f"{name}: line 1: column {column!r} appears twice in the header "
                f"(columns {seen[column]} and {position}); give each column once"
            )
        seen[column] = position
    missing = {"message", "reply"} - set(columns)
    if missing:
        raise FileRefused(
            f"{name}: line 1: the CSV header must name {', '.join(sorted(missing))} "
            f"(it has {', '.join(repr(c) for c in columns)})"
        )
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, f"not valid CSV ({exc})"
            if reader.line_num < start:
                return  # nothing was consumed: the reader cannot go on
            continue
        end = reader.line_num
        if not values:
            continue
        if end > start:
            yield (
                start,
                (
                    f"this row runs from line {start} to line {end}: a quoted field holds a line "
                    "break, most often a quote that is never closed; message, reply and niche "
                    "are one line each"
                ),
            )
            continue
        if len(values) > len(columns):
            yield start, "more values than header columns"
            continue
        yield start, dict(zip(columns, values, strict=False))


def demo_rows() -> Iterator[tuple[str, ExampleIn]]:
    """The English chatterbot corpus as (source, example): each consecutive pair of turns is an
    example and the file is its niche (21 niches, heavily skewed)."""
    root = resources.files("chatterbot_corpus") / "data" / "english"
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yml"):
            continue
        niche = entry.name.removesuffix(".yml")
        corpus = yaml.safe_load(entry.read_text(encoding="utf-8"))
        for conversation in corpus.get("conversations", []):
            turns = [str(turn).strip() for turn in conversation if str(turn).strip()]
            for message, reply in itertools.pairwise(turns):
                yield f"demo:{niche}", ExampleIn(message, reply, niche, Provenance.HUMAN)


def load_demo(session: Session, settings: Settings) -> ImportReport:
    """Load the demo corpus: most of it as human examples, and a share of its messages as
    *incoming traffic* (their replies never stored, so no generation ever trains on them).

    The traffic is what synthetic generations label: ``demo_traffic_fraction`` of each niche,
    chosen by message with a seeded hash (see core.splits).
    """
    return load_with_traffic(session, settings, list(demo_rows()))


def load_with_traffic(
    session: Session, settings: Settings, rows: list[tuple[str, ExampleIn]]
) -> ImportReport:
    """Load (source, example) rows, keeping a share of their messages as incoming traffic
    with the replies hidden (see :func:`load_demo`)."""
    traffic = set(
        stratified_pick(
            (
                Candidate(i, ex.niche, ex.message, pair_hash(ex.message, ex.reply))
                for i, (_, ex) in enumerate(rows)
            ),
            settings.demo_traffic_fraction,
            minimum=1,
            seed=settings.seed,
            salt="demo-traffic",
        )
    )
    report = ImportReport()
    by_source: dict[str, list[ExampleIn]] = {}
    for i, (source, example) in enumerate(rows):
        if i not in traffic:
            by_source.setdefault(source, []).append(example)
    for source, examples in by_source.items():
        added, duplicates = add_examples(session, examples, source=source)
        report.added += len(added)
        report.duplicates += duplicates
    known = set(session.scalars(select(IncomingMessage.message)))
    for message, niche in sorted({(rows[i][1].message, rows[i][1].niche) for i in traffic}):
        if message not in known:
            session.add(IncomingMessage(message=message, niche=niche))
            report.traffic += 1
    session.flush()
    return report
