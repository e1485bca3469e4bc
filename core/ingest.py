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

from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.provenance import Provenance
from core.schema import Example
from core.text import pair_hash

MAX_TEXT_CHARS = 2_000
MAX_NICHE_CHARS = 100
DEFAULT_NICHE = "general"
FIELDS = {"message", "reply", "niche", "provenance"}


class ImportFailed(ValueError):
    """A file or batch had invalid rows and nothing was imported."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        shown = "\n".join(f"  {e}" for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(
            f"{len(errors)} invalid row(s), nothing imported:\n{shown}{more}\n"
            "Fix them, or pass --skip-invalid to import the valid rows only."
        )


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
    """Validate numbered rows; a row given as a string is already a parse error."""
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
    return valid, errors


def add_examples(
    session: Session,
    examples: Iterable[ExampleIn],
    source: str,
    generation: int | None = None,
    model_version: str | None = None,
) -> tuple[list[Example], int]:
    """Insert the examples not stored yet; return (the rows added, how many were duplicates)."""
    rows, duplicates = _new_rows(session, examples, source, generation, model_version)
    added = [Example(**row) for row in rows]
    session.add_all(added)
    session.flush()
    return added, duplicates


def insert_examples(
    session: Session, examples: Iterable[ExampleIn], source: str
) -> tuple[int, int]:
    """:func:`add_examples` for bulk loads such as the demo data: the same rows, written by one
    ORM bulk INSERT with no object per row (the whole chitchat corpus, 105,000 rows, took 28 s
    through :func:`add_examples` and 4 s here: docs/benchmarks.md).

    Returns:
        (how many rows were added, how many were duplicates).
    """
    rows, duplicates = _new_rows(session, examples, source)
    if rows:
        session.execute(insert(Example), rows)
    return len(rows), duplicates


def _new_rows(
    session: Session,
    examples: Iterable[ExampleIn],
    source: str,
    generation: int | None = None,
    model_version: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The column values of the examples not stored yet (the first of equal pairs), and how
    many examples were duplicates."""
    by_hash: dict[str, ExampleIn] = {}
    total = 0
    for example in examples:
        total += 1
        by_hash.setdefault(pair_hash(example.message, example.reply), example)
    existing = _existing_hashes(session, list(by_hash))
    rows = [
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
        if digest not in existing
    ]
    return rows, total - len(rows)


def _existing_hashes(session: Session, hashes: list[str]) -> set[str]:
    found: set[str] = set()
    # Bounded IN lists: SQLite and PostgreSQL both cap bind parameters.
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        found.update(
            session.scalars(select(Example.content_hash).where(Example.content_hash.in_(chunk)))
        )
    return found


def import_file(
    session: Session, path: Path, provenance: Provenance | None, skip_invalid: bool
) -> ImportReport:
    """Import a JSONL or CSV file of message/reply[/niche][/provenance] rows."""
    valid, errors = validate_rows(read_rows(path), provenance, skip_invalid)
    added, duplicates = add_examples(session, valid, source=f"import:{path.name}")
    return ImportReport(added=len(added), duplicates=duplicates, skipped=errors)


def read_rows(path: Path) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    """Yield (line number, row) from a .jsonl/.json or .csv file; a row that cannot be parsed
    comes back as a string saying why."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".json", ".ndjson"}:
        yield from _jsonl_rows(text)
    elif suffix == ".csv":
        yield from _csv_rows(text)
    else:
        raise ValueError(f"{path.name}: unknown format {suffix!r}; use .jsonl or .csv")


def _jsonl_rows(text: str) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON ({exc.msg})"
            continue
        yield number, row if isinstance(row, dict) else "each line must be a JSON object"


def _csv_rows(text: str) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"message", "reply"} - set(reader.fieldnames or [])
    if missing:
        raise ValueError(f"the CSV header must name {', '.join(sorted(missing))}")
    for row in reader:
        if None in row:
            yield reader.line_num, "more values than header columns"
            continue
        yield reader.line_num, {k: v for k, v in row.items() if v is not None}
