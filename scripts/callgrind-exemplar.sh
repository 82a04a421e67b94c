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
. scripts/callgrind-lib.sh
callgrind_init examples/exemplar_callgrind -p promtrack-benches --example exemplar_callgrind

result="result:"
printf '%-14s %s\n' mode instructions/update
for mode in plain with-trace with-trace-at with-labels inc inc-trace inc-trace-at clock; do
  per=$(callgrind_per_iteration 1 "$n" "$mode")
  printf '%-14s %s\n' "$mode" "$per"
  result="$result ${mode//-/_}=$per"
done
echo "$result iterations=$n"
