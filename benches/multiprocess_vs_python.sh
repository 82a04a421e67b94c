#!/usr/bin/env bash
# Scrape of a multiprocess directory: promtrack against Python prometheus_client's
# MultiProcessCollector, on files of the same shape (FILES process files, each with SERIES label
# values of a labelled counter and a labelled histogram with the default buckets).
#
#   benches/multiprocess_vs_python.sh [FILES] [SERIES] [RESTARTS]
#
# FILES SERIES default to 16 1000 (also try 256 1000). With RESTARTS (say 1000), promtrack's
# scrape is also timed with 16 live writers of the same shape before and after RESTARTS writers
# came and went (half clean exits, half SIGKILL): the archive should keep the two close.
#
# Python's files are written by one `prometheus_client` process and copied under FILES process ids:
# its writer is deterministic, so each copy is byte for byte what another process would write,
# and 256 files take seconds to make instead of minutes. Timed: ITERS scrapes each after one
# untimed (environment: OURS_ITERS, default 20; PY_ITERS, default 5 — a 256-file Python scrape
# takes seconds).
#
# The last line, `result: key=value …`, sums up the run for scripts (scripts/benchmarks.py).
#
# Installs prometheus-client with pip (in a virtualenv under target/) on first use.
set -euo pipefail
FILES=${1:-16}
SERIES=${2:-1000}
RESTARTS=${3:-0}
OURS_ITERS=${OURS_ITERS:-20}
PY_ITERS=${PY_ITERS:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$TARGET/py-prometheus-client
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet prometheus-client
fi
PY=$VENV/bin/python
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -m 0700 "$WORK/ours" "$WORK/python"

cd "$ROOT"
cargo bench -q -p promtrack-benches --bench multiprocess --no-run 2>/dev/null
run() { cargo bench -q -p promtrack-benches --bench multiprocess -- "$@" 2>/dev/null | grep -v '^$' || true; }
run gen "$WORK/ours" "$FILES" "$SERIES"

cat > "$WORK/gen.py" <<PYEOF
import os, sys
from prometheus_client import Counter, Histogram
c = Counter("gen_requests", "Requests.", ["path"])
h = Histogram("gen_latency_seconds", "Latency.", ["path"])
n = $SERIES
for i in range(n):
    p = "/path/%d" % i
    c.labels(p).inc(i)
    h.labels(p).observe(i / n)
PYEOF
mkdir -m 0700 "$WORK/one"
PROMETHEUS_MULTIPROC_DIR="$WORK/one" "$PY" "$WORK/gen.py"
for i in $(seq "$FILES"); do
  for f in "$WORK/one"/*.db; do # <kind>_<pid>.db
    base=$(basename "$f" .db)
    cp "$f" "$WORK/python/${base%_*}_$((100000 + i)).db"
  done
done

cat > "$WORK/scrape.py" <<'PYEOF'
import sys, time
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
iters = int(sys.argv[1])
def scrape():
    r = CollectorRegistry()
    multiprocess.MultiProcessCollector(r)
    return generate_latest(r)
out = scrape()
t = time.perf_counter()
for _ in range(iters):
    scrape()
print("%.3f ms per scrape (%d bytes of text)" % ((time.perf_counter() - t) / iters * 1e3, len(out)))
PYEOF

echo "shape: $FILES process files x $SERIES label values (a counter and a histogram each)"
echo "files: promtrack $(du -sh "$WORK/ours" | cut -f1), python $(du -sh "$WORK/python" | cut -f1)"
ours=$(run scrape "$WORK/ours" "$OURS_ITERS")
echo "promtrack:         $ours"
python=$(PROMETHEUS_MULTIPROC_DIR="$WORK/python" "$PY" "$WORK/scrape.py" "$PY_ITERS")
echo "prometheus_client: $python"
ms() { awk '{print $1}' <<<"$1"; }
result="files=$FILES series=$SERIES promtrack_ms=$(ms "$ours") python_ms=$(ms "$python")"
result+=" ratio=$(awk -v p="$(ms "$python")" -v o="$(ms "$ours")" 'BEGIN {printf "%.1f", p / o}')"
result+=" prometheus_client=$("$PY" -c 'import importlib.metadata as m; print(m.version("prometheus-client"))')"
if [ "$RESTARTS" -gt 0 ]; then
  mkdir -m 0700 "$WORK/restarts"
  restarted=$(run restarts "$WORK/restarts" 16 "$SERIES" "$RESTARTS" "$OURS_ITERS")
  echo "promtrack restarts: $restarted"
  result+=" $restarted"
fi
echo "result: $result"
