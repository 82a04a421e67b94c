#!/usr/bin/env bash
# Instructions per request of the hello-world app of scripts/wrk-layer.sh in each of its modes,
# counted by callgrind: no socket, one thread, `oneshot` (layer_wrk_server requests MODE N).
# Instruction counts do not depend on what else the machine is doing, so they show a change of a
# few percent that wrk's rounds cannot; they do not show what costs time beyond instructions
# (cache misses, contended cache lines between server threads). Each mode runs twice, with N and
# 2N requests, and the difference divided by N is the cost of one request (start-up cancels out).
#
#   scripts/callgrind-layer.sh [N]        (default 2000)
#
# Needs valgrind (apt-get install -y valgrind). Prints a table, then a `result:` line.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install -y valgrind" >&2; exit 1; }
cargo build --release -q -p promtrack-examples --bin layer_wrk_server
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target/release/layer_wrk_server"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

instructions() { # mode requests -> total instructions of the run
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$bin" requests "$1" "$2" 2>"$tmp/log"
  awk '/Collected :/ {print $NF}' "$tmp/log" | tail -1
}

result="result:"
printf '%-12s %s\n' mode instructions/request
for mode in bare noop layer-only histogram layer; do
  one=$(instructions "$mode" "$n")
  two=$(instructions "$mode" $((2 * n)))
  per=$(( (two - one) / n ))
  printf '%-12s %s\n' "$mode" "$per"
  result="$result ${mode//-/_}=$per"
done
echo "$result requests=$n"
