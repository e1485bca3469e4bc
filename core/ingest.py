"""Getting examples into the database: files and API batches (the demo data: core/demo.py).

Every path goes through :func:`validate_row` and :func:`add_examples`, so the rules are the
same wherever an example comes from: provenance is always explicit, a known pair is a
duplicate (never an update), and nothing is half-imported.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from core.actions import Invalid
from core.provenance import Provenance
from core.schema import Example
from core.text import CONVERSATION
from core.text import MESSAGE
from core.text import NICHE
from core.text import REPLY
from core.text import TextRule
from core.text import clean_text
from core.text import pair_hash

DEFAULT_NICHE = "general"
# Imported conversation ids live in their own namespace, so that a file can never claim
# the source of a corpus conversation or of a client key's feedback ("key:<id>").
IMPORTED_CONVERSATION = "import:"
FIELDS = {"message", "reply", "niche", "provenance", "conversation"}
# Provenances a file or an API batch may carry. A synthetic example records the generation and
# the model version that wrote it; only a generation's promotion knows those, so synthetic rows
# enter the database that way alone (worker.promotion), never through an import.
IMPORTABLE = (Provenance.HUMAN, Provenance.HUMAN_SELECTED)
SYNTHETIC_REFUSED = (
    "synthetic examples cannot be imported: they enter only through a generation, which "
    "records the generation and model version that wrote them; import text a person wrote "
    "as human, or a model suggestion a person chose as human_selected"
)


# A row without a provenance column in a batch given none. The words are the library's: each
# front end (the command line, bench.quality, the API) adds how to give one with its own
# options.
NO_PROVENANCE = (
    "no provenance: give a 'provenance' column (human or human_selected) or one provenance "
    "for the whole file"
)


class ImportFailed(Invalid):
    """A file or batch had invalid rows and nothing was imported.

    The message lists the first 20 invalid rows, by line; ``details`` has every one,
    ``{"rows": [{"line": 3, "error": "..."}]}`` (a batch's rows are numbered by their index).
    How to get past it (use the valid rows only, give one provenance for the whole file) is
    each front end's hint, in the words of its own options.

    Args:
        errors: the invalid rows, in order.
    """

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        shown = "\n".join(f"  {e}" for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(
            f"{len(errors)} invalid row(s), nothing imported:\n{shown}{more}", _rows(errors)
        )

    @property
    def missing_provenance(self) -> bool:
        """Whether a row failed for want of a provenance (:data:`NO_PROVENANCE`): a front
        end offers its own way to give one for the whole file."""
        return any(e.message == NO_PROVENANCE for e in self.errors)


class NothingToImport(Invalid):
    """No row is valid (or there is none): a run that imports nothing is not a success,
    with ``skip_invalid`` or without. ``errors`` are the invalid rows, by line; ``details``
    has them as :class:`ImportFailed`'s has.

    Args:
        errors: the invalid rows, in order; empty when there was no row at all.
    """

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        if not errors:
            super().__init__("no rows to import", _rows(errors))
            return
        shown = "\n".join(f"  {e}" for e in errors)
        super().__init__(
            f"nothing imported: all {len(errors)} row(s) are invalid:\n{shown}", _rows(errors)
        )


def _rows(errors: list[RowError]) -> dict[str, Any]:
    """An import refusal's details: every invalid row, by the number it was given."""
    return {"rows": [{"line": e.line, "error": e.message} for e in errors]}


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
    """What a load or an import stored, and what it skipped."""

    added: int = 0
    # Rows not added because their pair (core.text.pair_hash) was stored already, or came
    # earlier in the same load; ``repeated`` says how many were the latter.
    duplicates: int = 0
    # Rows that repeat the pair of an earlier row of the same file or corpus (the chitchat
    # corpus has 204): never stored twice, and not "already present" when the load began.
    repeated: int = 0
    # Demo messages stored as incoming traffic (no reply).
    traffic: int = 0
    skipped: list[RowError] = field(default_factory=list)
    # What the reader did that the caller should know, e.g. extra columns it ignored.
    notes: list[str] = field(default_factory=list)

    @property
    def already_present(self) -> int:
        """Rows whose pair was stored before the load began."""
        return self.duplicates - self.repeated

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "duplicates": self.duplicates,
            "skipped": [{"line": e.line, "error": e.message} for e in self.skipped],
        }


def count_repeats(examples: Iterable[ExampleIn]) -> int:
    """How many of ``examples`` have the pair (:func:`~core.text.pair_hash`) of an earlier
    one: those an insert skips whatever the database holds."""
    seen: set[str] = set()
    total = 0
    for example in examples:
        total += 1
        seen.add(pair_hash(example.message, example.reply))
    return total - len(seen)


def validate_row(raw: Mapping[str, Any], provenance: Provenance | None) -> ExampleIn:
    """Check one row; raise ValueError saying what is wrong.

    Texts go through core.text's one validation (message and reply: :data:`~core.text.MESSAGE`
    and :data:`~core.text.REPLY`; niche: :data:`~core.text.NICHE`) and are stored stripped.
    ``provenance`` is the batch-wide value (a CLI flag); a per-row column wins over it.
    There is no default: a row without either is invalid, and so is a synthetic row
    (:data:`SYNTHETIC_REFUSED`). An optional ``conversation`` (a string or an integer id,
    :data:`~core.text.CONVERSATION`) names the row's source for the response set's support
    rule and is stored as ``import:<id>``; a row without one counts as a source of its own.
    """
    unknown = set(raw) - FIELDS
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    message = _text(raw, "message", MESSAGE)
    reply = _text(raw, "reply", REPLY)
    niche_raw = raw.get("niche")
    niche = DEFAULT_NICHE if niche_raw in (None, "") else _text(raw, "niche", NICHE)
    row_provenance = raw.get("provenance")
    if row_provenance not in (None, ""):
        if not isinstance(row_provenance, str):
            raise ValueError("provenance must be a string")
        provenance = Provenance.parse(row_provenance)
    if provenance is None:
        raise ValueError(NO_PROVENANCE)
    if provenance not in IMPORTABLE:
        raise ValueError(SYNTHETIC_REFUSED)
    conversation = raw.get("conversation")
    if conversation not in (None, ""):
        # JSON files often number their dialogues; a number is an id like any other.
        if isinstance(conversation, int) and not isinstance(conversation, bool):
            conversation = str(conversation)
        conversation = IMPORTED_CONVERSATION + clean_text(
            conversation, CONVERSATION, "'conversation'"
        )
    else:
        conversation = None
    return ExampleIn(message, reply, niche, provenance, conversation)


def _text(raw: Mapping[str, Any], name: str, rule: TextRule) -> str:
    """The row's ``name`` field checked by the one text validation (core.text)."""
    value = raw.get(name)
    if value is None:
        raise ValueError(f"'{name}' is missing")
    return clean_text(value, rule, f"'{name}'")


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
    """Insert the examples not stored yet; return (the rows added, how many were duplicates).

    A duplicate is an example whose :func:`~core.text.pair_hash` is stored already, or comes
    earlier in ``examples``. The insert skips them itself (``ON CONFLICT DO NOTHING``, on
    SQLite and PostgreSQL alike) rather than checking first and inserting after: two callers
    storing the same example at the same moment then both succeed, one adding it and the
    other counting a duplicate, where a check-then-insert let the second fail on the unique
    index. The rows added are in the order given, with their ids.
    """
    values, total = _values(examples, source, generation, model_version)
    statement = _insert_skipping_duplicates(session.get_bind().dialect.name).returning(Example)
    added: list[Example] = []
    for start in range(0, len(values), INSERT_BATCH):
        added.extend(session.scalars(statement, values[start : start + INSERT_BATCH]))
    added.sort(key=lambda row: row.id)
    return added, total - len(added)


def insert_examples(
    session: Session, examples: Iterable[ExampleIn], source: str
) -> tuple[int, int]:
    """:func:`add_examples` for bulk loads such as the demo data: the same rows and the same
    duplicate rule, with no ORM object per row (the whole chitchat corpus, 105,000 rows, took
    28 s with objects and about 5 s without: docs/benchmarks.md).

    Returns:
        (how many rows were added, how many were duplicates).
    """
    values, total = _values(examples, source)
    statement = _insert_skipping_duplicates(session.get_bind().dialect.name)
    added = 0
    for start in range(0, len(values), INSERT_BATCH):
        ids = session.scalars(statement.returning(Example.id), values[start : start + INSERT_BATCH])
        added += len(ids.all())
    return added, total - added


# Rows per INSERT: SQLite and PostgreSQL both cap bind parameters in one statement.
INSERT_BATCH = 500


def _values(
    examples: Iterable[ExampleIn],
    source: str,
    generation: int | None = None,
    model_version: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Column values of each distinct example (the first of equal pairs), and how many
    examples were given."""
    by_hash: dict[str, ExampleIn] = {}
    total = 0
    for example in examples:
        total += 1
        by_hash.setdefault(pair_hash(example.message, example.reply), example)
    values = [
        {
            "message": ex.message,
            "reply": ex.reply,
            "niche": ex.niche,
            "provenance": ex.provenance.value,
            "source": source[:200],
            "generation": generation,
            "model_version": model_version,
            "content_hash": digest,
            "conversation": ex.conversation,
        }
        for digest, ex in by_hash.items()
    ]
    return values, total


def _insert_skipping_duplicates(dialect: str) -> Any:
    """INSERT INTO examples ... ON CONFLICT (content_hash) DO NOTHING, in the dialect's SQL."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(Example).on_conflict_do_nothing(index_elements=["content_hash"])


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
        added=len(added),
        duplicates=duplicates,
        repeated=count_repeats(read.valid),
        skipped=read.skipped,
        notes=read.notes,
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
