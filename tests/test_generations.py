"""The generation store (core/generations.py): each read on an empty database and on a
history of every status, on SQLite and on PostgreSQL (the ``store`` fixture runs both); and
the rule that no other module queries the generation tables, checked on the real tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from core.actions import ActionRefused
from core.db import Database
from core.generations import ACTIVE
from core.generations import GenerationError
from core.generations import GenerationNotFound
from core.generations import active_generation
from core.generations import baseline_generation
from core.generations import finish_run
from core.generations import generation_numbered
from core.generations import generation_of
from core.generations import generation_statuses
from core.generations import generations_of
from core.generations import get_generation
from core.generations import latest_generation
from core.generations import newest_first
from core.generations import next_number
from core.generations import oldest_first
from core.generations import previous_generation
from core.generations import promoted_before
from core.generations import stage_seconds
from core.generations import start_run
from core.generations import unfinished_ids
from core.schema import Generation
from core.schema import GenerationStatus

ROOT = Path(__file__).resolve().parent.parent

# The history: (number, status, candidate version), added in this order, which is not the
# order of the numbers, so that a read ordered by id instead of number would be caught.
HISTORY = [
    (3, GenerationStatus.WARNED, "v3"),
    (0, GenerationStatus.PASSED, "v0"),
    (5, GenerationStatus.RUNNING, None),
    (1, GenerationStatus.PASSED, "v1"),
    (4, GenerationStatus.FAILED, None),
    (2, GenerationStatus.BLOCKED, "v2"),
]


@pytest.fixture
def history(store: Database) -> dict[int, int]:
    """The generations of HISTORY (5 holding the lock) in ``store``; their ids by number."""
    ids = {}
    with store.session() as session:
        for number, status, version in HISTORY:
            generation = Generation(
                number=number,
                status=status.value,
                candidate_version=version,
                lock=ACTIVE if status.active else None,
            )
            session.add(generation)
            session.flush()
            ids[number] = generation.id
    return ids


def numbers(generations: list[Generation]) -> list[int]:
    return [g.number for g in generations]


# ---------------------------------------------------------------------------------------
# Each read


def test_on_an_empty_database_every_read_finds_nothing(store: Database) -> None:
    with store.session() as session:
        with pytest.raises(GenerationNotFound, match=r"^no generation with id 1$"):
            get_generation(session, 1)
        with pytest.raises(GenerationNotFound, match=r"^no generation numbered 0$"):
            generation_numbered(session, 0)
        assert active_generation(session) is None
        assert baseline_generation(session) is None
        assert latest_generation(session) is None
        assert previous_generation(session, 1) is None
        assert promoted_before(session, 1) == []
        assert newest_first(session) == []
        assert oldest_first(session) == []
        assert generation_of(session, "v1") is None
        assert generations_of(session, ["v1"]) == {}
        assert next_number(session) == 1
        assert unfinished_ids(session) == []
        assert generation_statuses(session) == []
        assert stage_seconds(session, [1]) == {}
        assert stage_seconds(session, []) == {}


def test_get_finds_a_generation_by_id_and_raises_the_one_not_found(
    store: Database, history: dict[int, int]
) -> None:
    with store.session() as session:
        assert get_generation(session, history[2]).number == 2
        missing = max(history.values()) + 1
        with pytest.raises(GenerationNotFound) as refused:
            get_generation(session, missing)
    # The one not-found of the error vocabulary: every front end answers it as a 404.
    assert str(refused.value) == f"no generation with id {missing}"
    assert isinstance(refused.value, ActionRefused)
    assert isinstance(refused.value, GenerationError)
    assert (refused.value.status, refused.value.code) == (404, "not_found")


def test_generation_numbered_finds_by_number_and_raises_when_there_is_none(
    store: Database, history: dict[int, int]
) -> None:
    with store.session() as session:
        assert generation_numbered(session, 4).id == history[4]
        assert generation_numbered(session, 0).id == history[0]
        with pytest.raises(GenerationNotFound, match=r"^no generation numbered 6$"):
            generation_numbered(session, 6)


def test_every_generation_in_order_of_number(store: Database, history: dict[int, int]) -> None:
    with store.session() as session:
        assert numbers(newest_first(session)) == [5, 4, 3, 2, 1, 0]
        assert numbers(oldest_first(session)) == [0, 1, 2, 3, 4, 5]


def test_the_baseline_is_generation_0(store: Database, history: dict[int, int]) -> None:
    with store.session() as session:
        baseline = baseline_generation(session)
        assert baseline is not None
        assert (baseline.id, baseline.candidate_version) == (history[0], "v0")


def test_the_latest_is_the_highest_number_whatever_its_status(
    store: Database, history: dict[int, int]
) -> None:
    with store.session() as session:
        latest = latest_generation(session)
        assert latest is not None
        assert latest.id == history[5]


def test_with_the_baseline_alone_there_is_no_latest_and_the_next_is_1(store: Database) -> None:
    with store.session() as session:
        session.add(Generation(number=0, status=GenerationStatus.PASSED.value))
    with store.session() as session:
        assert latest_generation(session) is None
        assert next_number(session) == 1
        previous = previous_generation(session, 1)
        assert previous is not None
        assert previous.number == 0


@pytest.mark.parametrize(("number", "previous"), [(5, 4), (3, 2), (1, 0), (0, None), (9, 5)])
def test_previous_is_the_one_numbered_just_below(
    store: Database, history: dict[int, int], number: int, previous: int | None
) -> None:
    with store.session() as session:
        found = previous_generation(session, number)
        assert (found.number if found else None) == previous


@pytest.mark.parametrize(("number", "promoted"), [(6, [0, 1, 3]), (3, [0, 1]), (1, [0]), (0, [])])
def test_promoted_before_is_the_passed_and_warned_below_oldest_first(
    store: Database, history: dict[int, int], number: int, promoted: list[int]
) -> None:
    with store.session() as session:
        assert numbers(promoted_before(session, number)) == promoted


def test_the_generation_of_a_model_version(store: Database, history: dict[int, int]) -> None:
    with store.session() as session:
        of_v2 = generation_of(session, "v2")
        assert of_v2 is not None
        assert of_v2.id == history[2]
        assert generation_of(session, "v9") is None
        found = generations_of(session, ["v3", "v0", "v9"])
        assert {version: g.id for version, g in found.items()} == {
            "v3": history[3],
            "v0": history[0],
        }
        assert generations_of(session, []) == {}


def test_the_active_the_unfinished_and_the_next_number(
    store: Database, history: dict[int, int]
) -> None:
    with store.session() as session:
        active = active_generation(session)
        assert active is not None
        assert active.id == history[5]
        assert unfinished_ids(session) == [history[5]]
        assert next_number(session) == 6


def test_statuses_leave_out_the_baseline(store: Database, history: dict[int, int]) -> None:
    with store.session() as session:
        assert sorted(generation_statuses(session)) == sorted(
            (history[number], number, status.value) for number, status, _ in HISTORY if number > 0
        )


def test_stage_seconds_are_those_of_finished_stages_in_the_order_they_started(
    store: Database, history: dict[int, int]
) -> None:
    with store.session() as session:
        first = get_generation(session, history[1])
        for stage, seconds in [("synthesize", 2.5), ("snapshot", 0.25)]:
            finish_run(start_run(first, stage, "host:1"), {}, seconds)
        start_run(first, "encode", "host:1")  # running: no seconds yet
        start_run(get_generation(session, history[2]), "snapshot", "host:1")
    with store.session() as session:
        found = stage_seconds(session, [history[1], history[2], history[3]])
    assert found == {history[1]: {"synthesize": 2.5, "snapshot": 0.25}}
    assert list(found[history[1]]) == ["synthesize", "snapshot"]


# ---------------------------------------------------------------------------------------
# No other module queries the generation tables

# Every package the project installs, and the benchmarks (pyproject.toml); tests build their
# fixtures however they like.
SOURCES = ("core", "models", "safeguards", "worker", "webapp", "bench")
STORE = ROOT / "core" / "generations.py"
# Migrations read the tables as each revision left them, never through today's models.
MIGRATIONS = ROOT / "core" / "migrations"
MODELS = {"Generation", "GenerationStage"}
# What builds or runs a query (SQLAlchemy's constructs and the Session's methods): a call
# of one of these that names a model above is a query over its table. Constructing a row
# (``Generation(...)``) and reading its attributes are not.
QUERY_CALLS = {
    "select",
    "update",
    "delete",
    "insert",
    "exists",
    "join",
    "outerjoin",
    "where",
    "filter",
    "filter_by",
    "order_by",
    "group_by",
    "get",
    "get_one",
    "query",
    "merge",
}
# Hand-written SQL over the tables ("... FROM generations", "UPDATE generation_stages").
RAW_SQL = re.compile(r"\b(FROM|JOIN|UPDATE|INTO)\s+\"?generation(s|_stages)\b")


def generation_queries(source: str) -> list[int]:
    """The lines of ``source`` (Python) that query the generation tables, in order."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            callee = node.func
            name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
            if name in QUERY_CALLS and any(
                (isinstance(inner, ast.Name) and inner.id in MODELS)
                or (isinstance(inner, ast.Attribute) and inner.attr in MODELS)
                for inner in ast.walk(node)
            ):
                found.add(node.lineno)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and RAW_SQL.search(node.value)
        ):
            found.add(node.lineno)
    return sorted(found)


def test_no_module_but_the_store_queries_the_generation_tables() -> None:
    sources = [
        path
        for package in SOURCES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != STORE and MIGRATIONS not in path.parents
    ]
    assert len(sources) > 100, "the tree was not found"
    offending = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sources
        for line in generation_queries(path.read_text())
    ]
    assert offending == [], "read generations through core/generations.py instead"


def test_the_check_catches_every_way_of_writing_such_a_query() -> None:
    source = '''
from core.schema import Generation
def reads(session, n):
    session.scalars(select(Generation).where(Generation.number > n))
    session.get(Generation, n)
    session.get_one(Generation, n)
    session.scalar(select(func.max(Generation.number)))
    session.execute(select(Generation.id, Generation.status))
    session.execute(select(GenerationStage.seconds))
    session.scalars(select(ModelVersion).join(Generation))
    select(Example).where(Example.generation == Generation.number)
    session.execute(text("SELECT id FROM generations WHERE number > 0"))
    session.execute(update(GenerationStage).values(progress=1))
    session.get(schema.Generation, n)
def allowed(session, generation: Generation) -> Generation:
    session.add(Generation(number=0))
    session.get(ModelVersion, generation.id)
    """Read from generations, newest first."""
    return generation
'''
    assert generation_queries(source) == list(range(4, 15))
