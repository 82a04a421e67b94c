#!/usr/bin/env bash
# Instructions per update of the exemplar bench's functions (benches/benches/exemplar.rs),
# counted by callgrind: `benches/examples/exemplar_callgrind.rs` runs N and 2N iterations of one
# function, and the difference divided by N is the cost of one (start-up cancels out). The loop's
# own instructions (the value array, the counter) are included, the same in every mode. A skip
# of the rate limit is what nearly every `with-*` iteration is (one exemplar per 90 ms is
# accepted), so `with-trace-at` minus `plain` is what a skipped exemplar adds.
#
#   scripts/callgrind-exemplar.sh [N]        (default 200000)
#
# Needs valgrind (apt-get install -y valgrind). Prints a table, then a `result:` line.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install -y valgrind" >&2; exit 1; }
cargo build --release -q -p promtrack-benches --example exemplar_callgrind
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target/release/examples/exemplar_callgrind"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

instructions() { # mode iterations -> total instructions of the run
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$bin" "$1" "$2" 2>"$tmp/log"
  awk '/Collected :/ {print $NF}' "$tmp/log" | tail -1
}

result="result:"
printf '%-14s %s\n' mode instructions/update
for mode in plain with-trace with-trace-at with-labels inc inc-trace inc-trace-at clock; do
  one=$(instructions "$mode" "$n")
  two=$(instructions "$mode" $((2 * n)))
  per=$(python3 -c "print(round(($two - $one) / $n, 1))")
  printf '%-14s %s\n' "$mode" "$per"
  result="$result ${mode//-/_}=$per"
done
echo "$result iterations=$n"
