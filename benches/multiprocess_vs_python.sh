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
# Installs prometheus-client with pip (in a virtualenv under target/) on first use.
set -euo pipefail
FILES=${1:-16}
SERIES=${2:-1000}
RESTARTS=${3:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$TARGET/py-prometheus-client
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet prometheus-client
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
for i in $(seq "$FILES"); do
  PROMETHEUS_MULTIPROC_DIR="$WORK/python" "$PY" "$WORK/gen.py"
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
echo -n "promtrack:         "; run scrape "$WORK/ours" 20
echo -n "prometheus_client: "; PROMETHEUS_MULTIPROC_DIR="$WORK/python" "$PY" "$WORK/scrape.py" 5
if [ "$RESTARTS" -gt 0 ]; then
  mkdir -m 0700 "$WORK/restarts"
  echo -n "promtrack restarts: "; run restarts "$WORK/restarts" 16 "$SERIES" "$RESTARTS" 20
fi
