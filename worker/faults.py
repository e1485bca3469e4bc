"""Fault injection: a place inside each stage where a test can stop a worker and kill it.

Off unless the test-only variable ``REPLYGUARD_FAULT_PAUSE_STAGE`` names a stage when the
process starts (tests/test_faults.py sets it on the Celery workers it starts). The runner
(worker/pipeline.py) calls :func:`fault_point` after each stage has written its work and
before it records the stage done, which is where "a stage killed half-way leaves nothing
half-kept" is at stake; the stage that records itself done as it ends the generation
(promote) passes it inside that transaction (``GenerationRun.record_done``), and the encode
stage after each chunk it writes, on whichever worker.
When off, a call costs one string comparison.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from core.files import atomic_write

# Read once, at import: never set in production.
PAUSE_STAGE = os.environ.get("REPLYGUARD_FAULT_PAUSE_STAGE") or None
# A pause nobody ends fails its stage after this long, rather than holding a worker forever.
PAUSE_LIMIT_SECONDS = 600.0


def fault_point(data_dir: Path, stage: str) -> None:
    """Pause here when ``REPLYGUARD_FAULT_PAUSE_STAGE`` is ``stage``; otherwise return at once.

    The first process of a data folder to reach the stage's point writes its process id to
    ``<data_dir>/faults/<stage>.paused`` and waits until the test kills it, or until
    ``<stage>.release`` appears (then it goes on). Any later process passes through, so the
    stage, resumed by another worker, runs to its end.

    Raises TimeoutError after PAUSE_LIMIT_SECONDS without a kill or a release.
    """
    if stage != PAUSE_STAGE:
        return
    folder = data_dir / "faults"
    folder.mkdir(parents=True, exist_ok=True)
    # The marker appears with its content at once, and only if it is not there yet.
    if not atomic_write(folder / f"{stage}.paused", str(os.getpid()).encode(), replace=False):
        return
    release = folder / f"{stage}.release"
    deadline = time.monotonic() + PAUSE_LIMIT_SECONDS
    while not release.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"fault pause in {stage} was neither killed nor released")
        time.sleep(0.05)


# Test-only, read once at import like PAUSE_STAGE: "1" arms the web worker hang below.
HANG_WEB = os.environ.get("REPLYGUARD_FAULT_HANG_WEB") == "1"


def arm_web_hang(data_dir: Path) -> None:
    """In a gunicorn web worker, when ``REPLYGUARD_FAULT_HANG_WEB=1``: a thread waits for
    ``<data_dir>/faults/web.hang`` to appear, writes this process's id to ``web.hanging``,
    and then spins in C code holding the GIL (a regular expression that backtracks for
    ever), as a request thread stuck in a C extension does. The worker's main thread then
    never runs again, its SIGTERM handler included: only SIGKILL ends it. Returns at once;
    does nothing when the variable is unset (never set it in production)."""
    if not HANG_WEB:
        return
    import re
    import threading

    folder = data_dir / "faults"

    def hang() -> None:
        while not (folder / "web.hang").exists():
            time.sleep(0.1)
        atomic_write(folder / "web.hanging", str(os.getpid()).encode())
        # 2**64 ways to split the a's, none of which matches: the engine never returns, and
        # _sre neither releases the GIL nor lets signal handlers run meanwhile.
        re.fullmatch(r"(a+)+$", "a" * 64 + "!")

    threading.Thread(target=hang, name="fault-hang", daemon=True).start()
