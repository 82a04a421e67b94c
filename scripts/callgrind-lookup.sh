#!/usr/bin/env bash
# Instructions per lookup + update of `counter_lookup_2labels_static` and
# `histogram_lookup_3labels_static` (benches/benches/core.rs), promtrack and rust-prometheus's
# `with_label_values`, counted by callgrind: `benches/examples/lookup_callgrind.rs` runs N and 2N
# iterations of one case, and the difference divided by N is the cost of one (start-up cancels
# out). The loop's own instructions (the query array, the loop counter) are included, the same
# for both crates. Instruction counts do not depend on what else the machine is doing; they do
# not show what costs time beyond instructions (atomics, dependent loads).
#
#   scripts/callgrind-lookup.sh [N]        (default 100000)
#
# Needs valgrind (apt-get install -y valgrind). Prints a table, then a `result:` line.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
. scripts/callgrind-lib.sh
callgrind_init examples/lookup_callgrind -p promtrack-benches --example lookup_callgrind

result="result:"
printf '%-16s %s\n' mode instructions/lookup
for mode in counter prom-counter histogram prom-histogram; do
  per=$(callgrind_per_iteration 0 "$n" "$mode")
  printf '%-16s %s\n' "$mode" "$per"
  result="$result ${mode//-/_}=$per"
done
echo "$result iterations=$n"
