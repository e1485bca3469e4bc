"""What the console of a command shows: progress (core/progress.py) labelled, a bar on a
terminal and plain lines in a file or a pipe, `generation start --wait`'s stage lines
(webapp/cli/generation.py); and no library's own lines (core/logs.py, the encoder's export)."""

from __future__ import annotations

import io
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.db import Database
from core.generations import end_generation
from core.generations import finish_run
from core.generations import new_generation
from core.generations import record_progress
from core.generations import start_run
from core.logs import adopt_transformers_logging
from core.logs import configure_logging
from core.progress import BYTES
from core.progress import Progress
from core.schema import Generation
from core.schema import GenerationStatus
from models import onnx_export
from webapp.cli.generation import follow
from worker.pipeline import STAGES

# A plain progress line: a label, a share, and a count when the unit is not a share.
PLAIN = re.compile(r"^(?P<label>[a-z][^:\r]*): (?P<share>\d{1,3})%( \([^)]*\))?( .*)?$")


def test_off_a_terminal_progress_is_plain_labelled_lines_at_each_tenth() -> None:
    out = io.StringIO()
    with Progress("encoding 1,000 replies of the training set", 1000, "texts", out) as bar:
        for _ in range(100):
            bar.update(10)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0] == "encoding 1,000 replies of the training set: 10% (100/1,000 texts)"
    assert lines[8] == "encoding 1,000 replies of the training set: 90% (900/1,000 texts)"
    assert re.fullmatch(
        r"encoding 1,000 replies of the training set: 100% \(1,000/1,000 texts\) in \d+\.\d s",
        lines[9],
    )
    assert len(lines) == 10
    assert all(PLAIN.match(line) for line in lines)


def test_a_slow_step_writes_a_line_every_few_seconds_even_within_a_tenth() -> None:
    out = io.StringIO()
    bar = Progress("encoding 3,085 messages", 3085, "texts", out, every_seconds=0)
    bar.update(5)
    bar.update(0)  # no progress: no line
    bar.update(5)
    assert out.getvalue().splitlines() == [
        "encoding 3,085 messages: 0% (5/3,085 texts)",
        "encoding 3,085 messages: 0% (10/3,085 texts)",
    ]


def test_shares_and_sizes_and_a_stop_are_said_plainly() -> None:
    out = io.StringIO()
    with Progress("stage 3/10 encode", 100, stream=out) as stage:
        stage.advance_to(40)
        stage.advance_to(30)  # never backwards
        stage.advance_to(100)  # the last line is the one close writes
        stage.close("in 2.0 s")
        stage.close("twice")  # closed once only
    with pytest.raises(KeyboardInterrupt), Progress("backup", 3 * 2**20, BYTES, out) as copy:
        copy.update(2**20 + 2**19)
        raise KeyboardInterrupt
    assert out.getvalue().splitlines() == [
        "stage 3/10 encode: 40%",
        "stage 3/10 encode: 100% in 2.0 s",
        "backup: 50% (1.5 MiB/3.0 MiB)",
        "backup: 50% (1.5 MiB/3.0 MiB) (stopped)",
    ]


def test_on_a_terminal_it_is_a_bar_that_carries_its_label() -> None:
    out = io.StringIO()
    with Progress("encoding 640 messages of the training set", 640, "texts", out, terminal=True):
        pass
    with Progress("nothing shown", 10, stream=out, terminal=True, show=False) as hidden:
        hidden.update(10)
    drawn = [part for part in re.split(r"[\r\n]", out.getvalue()) if part.strip()]
    assert drawn
    assert all(part.startswith("encoding 640 messages of the training set: ") for part in drawn)
    assert "0/640 texts" in drawn[0]
    assert "nothing shown" not in out.getvalue()


@dataclass
class _Context:
    """What follow() reads of the command line's context."""

    db: Database


@pytest.fixture
def generation(empty_db: Database) -> int:
    """A queued generation's id."""
    with empty_db.session() as session:
        row = new_generation(1, "tests")
        session.add(row)
        session.flush()
        return row.id


def test_following_a_generation_off_a_terminal_prints_one_labelled_line_per_step(
    empty_db: Database, generation: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `replyguard run` shows in a log file: each stage named with its place and what it
    does, its share done, plain lines only; then the generation's report."""
    first, second = STAGES[0], STAGES[1]
    polls: list[None] = []

    def check() -> None:
        """Called at each poll: the worker's next step."""
        polls.append(None)
        with empty_db.session() as session:
            row = session.get_one(Generation, generation)
            if len(polls) == 1:
                start_run(row, first, "test:1")
            elif len(polls) == 2:
                record_progress(session, generation, first, 0.5)
            elif len(polls) == 3:
                finish_run(row.stage_runs[first], {}, 1.5)
                start_run(row, second, "test:1")
                session.flush()
                record_progress(session, generation, second, 0.3)
            else:
                end_generation(row, GenerationStatus.FAILED, f"{second}: boom")

    status = follow(_Context(empty_db), generation, check)  # type: ignore[arg-type]
    assert status == GenerationStatus.FAILED.value
    captured = capsys.readouterr()
    assert "\r" not in captured.err
    lines = captured.err.splitlines()
    assert lines == [
        "generation 1, stage 1/10 snapshot (snapshot of the data and prompts): 50%",
        "generation 1, stage 1/10 snapshot (snapshot of the data and prompts): 100% in 1.5 s",
        "generation 1, stage 2/10 synthesize (production writes synthetic replies): 30%",
        "generation 1, stage 2/10 synthesize (production writes synthetic replies): 30% (failed)",
    ]
    assert all(PLAIN.match(line) for line in lines)
    assert "failed" in captured.out


def test_the_exports_own_announcements_are_dropped_while_it_runs_and_only_then(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """sentence-transformers says it exports and advises saving, transformers that optimum
    passes a deprecated argument: warnings about the export itself, kept off every console
    and log. Errors still show, and the loggers' levels are restored afterwards."""
    backend = logging.getLogger("sentence_transformers.backend.utils")
    modeling = logging.getLogger("transformers.modeling_utils")
    before = [logging.getLogger(name).level for name in onnx_export.QUIET_DURING_EXPORT]
    with caplog.at_level(logging.INFO), onnx_export._quiet_export():
        backend.warning("No 'model.onnx' found in '/x'. Exporting the model to ONNX.")
        modeling.warning("`torch_dtype` is deprecated! Use `dtype` instead!")
        modeling.error("a real failure")
    after = [logging.getLogger(name).level for name in onnx_export.QUIET_DURING_EXPORT]
    with caplog.at_level(logging.INFO):
        backend.warning("after the export")
    assert [r.getMessage() for r in caplog.records] == ["a real failure", "after the export"]
    assert after == before


def test_transformers_lines_go_to_the_log_not_standard_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """transformers writes to standard error with a handler of its own: adopted, its lines
    reach the process's log file (here a configured one) and the console has none."""
    from transformers.utils import logging as hf_logging

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        configure_logging("INFO", path=tmp_path / "logs" / "cli.log")
        adopt_transformers_logging()
        hf_logging.get_logger("transformers.modeling_utils").warning("a transformers warning")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("a library's deprecation", DeprecationWarning, stacklevel=1)
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
        logging.captureWarnings(False)
        hf_logging.enable_default_handler()
        hf_logging.disable_propagation()
    console = capfd.readouterr()
    assert "a transformers warning" not in console.err + console.out
    assert "a library's deprecation" not in console.err + console.out
    logged = (tmp_path / "logs" / "cli.log").read_text()
    assert '"logger": "transformers.modeling_utils"' in logged
    assert "a transformers warning" in logged
    assert '"logger": "py.warnings"' in logged
