#!/usr/bin/env bash
# Runs the `core` bench (promtrack against its peers) and prints, on standard output, a markdown
# table of the median time per group and crate, with each figure's ratio to the fastest peer
# (promtrack excluded from "fastest peer", so its ratio says how it compares to the best of the rest).
#
#   benches/report.sh                                   # full run (several minutes), then the table
#   benches/report.sh --warm-up-time 1 --measurement-time 2 counter_   # criterion args/filter
#   REPORT_ONLY=1 benches/report.sh                     # table from the last results, no run
#
# Criterion's own output goes to standard error. Only results written by this run are shown
# (unless REPORT_ONLY is set), so a filtered run gives a partial table, never stale figures.
set -euo pipefail
cd "$(dirname "$0")/.."

# Where criterion writes its results: its own rule (CRITERION_HOME, CARGO_TARGET_DIR, cargo metadata).
if [ -n "${CRITERION_HOME:-}" ]; then
    dir=$CRITERION_HOME
elif [ -n "${CARGO_TARGET_DIR:-}" ]; then
    dir=$CARGO_TARGET_DIR/criterion
else
    dir=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/criterion
fi

since=0
if [ -z "${REPORT_ONLY:-}" ]; then
    since=$(date +%s)
    cargo bench -p promtrack-benches --bench core -- "$@" >&2
fi

python3 - "$dir" "$since" <<'PY'
import json, os, platform, subprocess, sys
from pathlib import Path

root, since = Path(sys.argv[1]), float(sys.argv[2])
GROUPS = ["counter_inc_resolved", "counter_lookup_2labels", "histogram_observe", "encode_text",
          "counter_inc_contended"]
CRATES = ["prometheus", "prometheus-client", "metrics", "measured", "promtrack"]
OURS = "promtrack"

medians = {}  # (group, crate) -> ns
for bench in root.glob("*/*/new/benchmark.json"):
    estimates = bench.with_name("estimates.json")
    if not estimates.exists() or estimates.stat().st_mtime < since:
        continue
    meta = json.loads(bench.read_text())
    if meta.get("group_id") not in GROUPS:
        continue
    median = json.loads(estimates.read_text())["median"]["point_estimate"]
    medians[(meta["group_id"], meta.get("function_id") or "")] = median

if not medians:
    sys.exit(f"no results under {root}" + (" from this run" if since else ""))

def fmt(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"

crates = CRATES + sorted({c for _, c in medians} - set(CRATES))
try:
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
except OSError:
    rustc = "rustc ?"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
           platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
print(f"Median time per iteration; (×N) = ratio to the fastest peer in the row, **bold** = fastest peer.")
print(f"{rustc}; {cpu}; {os.cpu_count()} CPUs.\n")
print("| group | " + " | ".join(crates) + " |")
print("|---|" + "---:|" * len(crates))
for group in GROUPS:
    row = {c: medians[(group, c)] for c in crates if (group, c) in medians}
    if not row:
        continue
    peers = [v for c, v in row.items() if c != OURS]
    best = min(peers) if peers else None
    cells = []
    for c in crates:
        if c not in row:
            cells.append("–")
            continue
        cell = fmt(row[c])
        if best:
            cell += f" (×{row[c] / best:.2f})"
        if c != OURS and row[c] == best:
            cell = f"**{cell}**"
        cells.append(cell)
    print(f"| `{group}` | " + " | ".join(cells) + " |")
PY
