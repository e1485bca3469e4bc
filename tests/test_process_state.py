"""No work at import time, no process-wide state changed by a library or the app factory:
gunicorn's server hook (webapp/gunicorn_conf.py) is the one place a web worker's thread pools
and collector are set. Each check runs in a fresh interpreter, since this one has imported
everything already."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Each test starts an interpreter that loads the encoder.
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def fresh(code: str, tmp_path: Path) -> dict[str, object]:
    """Run ``code`` in a new interpreter from the repository root; it prints one JSON line."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "REPLYGUARD_DATA_DIR": str(tmp_path / "data"),
            "HF_HUB_OFFLINE": "1",
        },
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_importing_the_library_tier_loads_no_faiss_and_no_torch(tmp_path: Path) -> None:
    loaded = fresh(
        "import json, sys\n"
        "import core, safeguards, safeguards.gate, safeguards.metrics, safeguards.dedup\n"
        "print(json.dumps({m: m in sys.modules for m in ('faiss', 'torch')}))",
        tmp_path,
    )
    assert loaded == {"faiss": False, "torch": False}


def test_the_app_factory_leaves_the_process_as_it_found_it(tmp_path: Path) -> None:
    state = fresh(
        "import gc, json, os\n"
        "import faiss\n"
        "from threadpoolctl import threadpool_info\n"
        "def now():\n"
        "    # Loading the encoder loads more BLAS libraries: their thread counts are compared.\n"
        "    blas = sorted({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'})\n"
        "    return [faiss.omp_get_max_threads(), blas, gc.get_freeze_count(),\n"
        "            {k: v for k, v in os.environ.items() if 'PARALLELISM' in k or 'OFFLINE' in k}]\n"
        "before = now()\n"
        "from webapp import create_app\n"
        "create_app()\n"
        "print(json.dumps({'before': before, 'after': now()}))",
        tmp_path,
    )
    assert state["after"] == state["before"]


def test_the_web_worker_hook_sets_one_thread_and_freezes_the_loaded_objects(
    tmp_path: Path,
) -> None:
    state = fresh(
        "import gc, json\n"
        "import faiss\n"
        "from threadpoolctl import threadpool_info\n"
        "from types import SimpleNamespace as NS\n"
        "from webapp import gunicorn_conf\n"
        "from webapp.state import EXTENSION\n"
        "watched = []\n"
        "holder = NS(watch=lambda: watched.append(True))\n"
        "gunicorn_conf.post_worker_init(NS(wsgi=NS(extensions={EXTENSION: NS(holder=holder)})))\n"
        "blas = [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "print(json.dumps({'faiss': faiss.omp_get_max_threads(), 'blas': blas,\n"
        "                  'frozen': gc.get_freeze_count() > 0, 'watched': watched}))",
        tmp_path,
    )
    assert state["faiss"] == 1
    assert state["blas"] and set(state["blas"]) == {1}  # type: ignore[arg-type]
    assert state["frozen"] is True
    assert state["watched"] == [True]  # production is checked on a timer from then on
