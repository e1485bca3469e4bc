"""What one web process costs to start: seconds from its first import to its first answered
suggestion, its resident memory then, and whether PyTorch was loaded.

Usage:
    .venv/bin/python -m bench.web_process --data-dir DIR [--before CHECKOUT] [--runs 3]
        [--out docs/figures/web_process.json]

DIR is a data folder with a trained model (for example one `make test` or `make run` made);
each run copies it, so the measured process starts on a fresh copy. ``--before`` measures
another checkout of ReplyGuard in the same run, in turns (for example one made with
``git worktree add /tmp/before COMMIT``), with this virtualenv.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in the measured process; create_key took no actor before the keys were audited.
PROBE = """
import json, sys, time
start = time.perf_counter()
from core.keys import create_key
from core.schema import Role
from webapp import create_app
app = create_app()
with app.extensions["replyguard"].db.session() as session:
    args = ("tester",) if create_key.__code__.co_argcount == 4 else ()
    token, _ = create_key(session, "probe", Role.CLIENT, *args)
answer = app.test_client().post(
    "/v1/suggestions", json={"message": "hello there"}, headers={"Authorization": "Bearer " + token}
)
seconds = time.perf_counter() - start
rss = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
print(json.dumps({"status": answer.status_code, "seconds": seconds, "rss_mb": rss,
                  "torch": "torch" in sys.modules}))
"""


def measure(tree: Path, data_dir: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="rg-web-") as tmp:
        copy = Path(tmp) / "data"
        shutil.copytree(data_dir, copy)
        env = dict(os.environ, PYTHONPATH=str(tree), REPLYGUARD_DATA_DIR=str(copy))
        env["HF_HUB_OFFLINE"] = "1"
        result = subprocess.run(
            [sys.executable, "-c", PROBE], cwd=tree, env=env, capture_output=True, text=True
        )
    if result.returncode != 0:
        raise SystemExit(f"{tree}: the probe failed:\n{result.stderr[-2000:]}")
    data: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--before", type=Path, help="another checkout, measured in turns")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="docs/figures/web_process.json")
    args = parser.parse_args()
    trees = {"now": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    runs: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
    for _ in range(args.runs):
        for name, tree in trees.items():
            runs[name].append(measure(tree, args.data_dir))
            print(name, json.dumps(runs[name][-1]), flush=True)
    summary = {
        name: {
            "median_seconds": round(statistics.median(float(r["seconds"]) for r in rows), 2),
            "median_rss_mb": round(statistics.median(float(r["rss_mb"]) for r in rows)),
            "torch_loaded": any(bool(r["torch"]) for r in rows),
        }
        for name, rows in runs.items()
    }
    result = {"runs": runs, "summary": summary, "load_average": round(os.getloadavg()[0], 1)}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
