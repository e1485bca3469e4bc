"""`replyguard run` (what `make run` starts): serves, and stops everything on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import LIBRARY_LINES
from webapp.launch import free_port
from webapp.launch import stop_server
from webapp.launch import wait_ready

pytestmark = pytest.mark.integration

# A progress line of `run`: what is encoded, or which stage of which generation; its share.
LABELLED = re.compile(
    r"^(encoding [\d,]+ [a-z ]+ of the [a-z ]+( \([\d,]+ more from the cache\))?"
    r"|generation \d+, stage \d+/\d+ [a-z]+ \([a-z ]+\)): \d{1,3}%( .*)?$"
)


def processes_with(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (the test's own data folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def test_run_serves_then_stops_its_children_and_redis_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "run-data"
    port = free_port()
    replyguard = str(Path(sys.executable).parent / "replyguard")
    # The tests' small corpus: what is tested is starting and stopping, not the demo's size.
    env = dict(
        os.environ,
        REPLYGUARD_DATA_DIR=str(data_dir),
        REPLYGUARD_DEMO_DATASET="chatterbot",
        REPLYGUARD_RESPONSE_MIN_SUPPORT="1",
        HF_HUB_OFFLINE="1",
    )
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [replyguard, "run", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, timeout=180)
        assert len(processes_with(str(data_dir))) >= 3  # run, worker, web (and redis)
        # To the whole process group, as Ctrl-C in a terminal does: the worker stops too.
        # Right after ready the first generation is usually still being followed; the stop
        # must interrupt that, not wait for a generation whose worker is gone.
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            stop_server(process)
        # A failed wait leaves the pipe open; closed here, not by a later test's collection.
        if process.stdout is not None:
            process.stdout.close()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-2000:]
    assert "SIGTERM: stopping the web server, the worker and Redis" in text
    # Sentences on the console; the JSON log lines in the data folder.
    assert '"level"' not in text
    assert '"level": "INFO"' in (data_dir / "logs" / "run.log").read_text()
    assert text.rstrip().endswith(f"Stopped. Everything is kept in {data_dir.resolve()}.")
    assert processes_with(str(data_dir)) == []
    # Into a pipe (a log file, a container's log): no library's lines, and progress as plain
    # lines that say what they count, never a bar redrawn with carriage returns.
    assert "\r" not in text
    assert not [line for line in LIBRARY_LINES if line in text], text[-4000:]
    progress = [line for line in text.splitlines() if re.search(r": \d{1,3}%", line)]
    unlabelled = [line for line in progress if not LABELLED.match(line)]
    assert not unlabelled, text[-4000:]
    assert any(
        re.match(r"encoding [\d,]+ messages of the training set: 100% \(", line)
        for line in progress
    ), text[-4000:]
