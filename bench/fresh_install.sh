#!/usr/bin/env bash
# A newcomer's first `make run`, timed: a fresh clone of this repository's HEAD, no virtualenv,
# empty package caches (pip's, uv's, and the encoder export's: XDG_CACHE_HOME in the clone's
# folder), until `make run` prints its "Serving" line. Prints the install time (command to the
# virtualenv's install stamp) and the time to serving, and writes both to
# docs/figures/fresh_install.json. TEST=1 also times `make test` in the same clone afterwards.
# Usage: bench/fresh_install.sh [PORT]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
port=${1:-8391}
work=$(mktemp -d)
git clone -q "$top" "$work/repo"
mkdir -p "$work/cache"
export PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1 XDG_CACHE_HOME="$work/cache"
cd "$work/repo"
start=$(date +%s.%N)
# Its own session, so the whole tree (make, replyguard, gunicorn, the worker) stops together.
setsid make run PORT="$port" > "$work/run.log" 2>&1 &
pid=$!
trap 'kill -INT -- -$pid 2>/dev/null; sleep 5; kill -KILL -- -$pid 2>/dev/null; rm -rf "$work"' EXIT
installed=""
until grep -q "^Serving on" "$work/run.log"; do
  kill -0 $pid 2>/dev/null || { tail -n 40 "$work/run.log"; echo "make run exited"; exit 1; }
  [[ -z "$installed" && -e .venv/.installed ]] && installed=$(date +%s.%N)
  sleep 0.2
done
serving=$(date +%s.%N)
kill -INT -- -$pid 2>/dev/null || true
wait $pid 2>/dev/null || true
test_seconds=None
if [[ "${TEST:-0}" == 1 ]]; then
  test_start=$(date +%s.%N)
  make test > "$work/test.log" 2>&1 || { tail -n 40 "$work/test.log"; echo "make test failed"; exit 1; }
  test_seconds=$(python3 -c "print(round($(date +%s.%N) - $test_start))")
  tail -n 3 "$work/test.log"
fi
python3 - "$top/docs/figures/fresh_install.json" <<EOF
import json, os, sys, datetime
figures = {
    "date": datetime.date.today().isoformat(),
    "commit": "$(git rev-parse --short HEAD)",
    "install_seconds": round($installed - $start, 1),
    "make_run_to_serving_seconds": round($serving - $start, 1),
    "make_test_seconds": $test_seconds,
    "load_average": os.getloadavg()[0],
}
print(json.dumps(figures, indent=2))
with open(sys.argv[1], "w") as handle:
    json.dump(figures, handle, indent=2)
    handle.write("\n")
EOF
