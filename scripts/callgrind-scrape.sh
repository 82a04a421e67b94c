#!/usr/bin/env bash
# Instructions per scrape of the `encode_text` fixture (benches/benches/core.rs: 10 000 counter
# + 1 000 histogram series) in each exposition format, counted by callgrind
# (examples/src/bin/scrape_callgrind.rs). Each format runs twice, with N and 2N scrapes, and the
# difference divided by N is the cost of one scrape (building the fixture cancels out).
# Instruction counts do not depend on what else the machine is doing.
#
#   scripts/callgrind-scrape.sh [N] [FORMAT...]   (default 2; text openmetrics protobuf)
#
# Needs valgrind (apt-get install -y valgrind). Prints a table, then a `result:` line.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2}
shift || true
formats=${*:-text openmetrics protobuf}
. scripts/callgrind-lib.sh
callgrind_init scrape_callgrind -p promtrack-examples --bin scrape_callgrind

result="result:"
printf '%-12s %s\n' format instructions/scrape
for format in $formats; do
  per=$(callgrind_per_iteration 0 "$n" "$format")
  printf '%-12s %s\n' "$format" "$per"
  result="$result $format=$per"
done
echo "$result scrapes=$n"
