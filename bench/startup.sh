#!/usr/bin/env bash
# Time `make run` from an empty data folder until the API answers ready.
# Usage: bench/startup.sh [PORT]   (the virtualenv is reused; only the data folder is new)
# REPLYGUARD=/path/to/replyguard bench/startup.sh runs `$REPLYGUARD run` instead of `make run`
# (a checkout that uses another checkout's virtualenv). REPLYGUARD_* settings pass through,
# e.g. REPLYGUARD_DEMO_PAIRS=2000.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-8765}
data=$(mktemp -d)
export REPLYGUARD_DATA_DIR=$data
if [[ -n "${REPLYGUARD:-}" ]]; then
  command=("$REPLYGUARD" run --port "$port")
else
  command=(make run PORT="$port")
fi
start=$(date +%s.%N)
# Its own session, so the whole tree (make, replyguard, gunicorn) stops together.
setsid "${command[@]}" > "$data/run.log" 2>&1 &
pid=$!
trap 'kill -- -$pid 2>/dev/null; sleep 1; rm -rf "$data"' EXIT
until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do
  kill -0 $pid 2>/dev/null || { cat "$data/run.log"; echo "make run exited"; exit 1; }
  sleep 0.2
done
end=$(date +%s.%N)
grep -E "^(loaded the demo data|data folder)" "$data/run.log" || true
python3 -c "print(f'make run: empty data folder to serving in {$end - $start:.1f} s')"
