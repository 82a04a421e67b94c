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
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install -y valgrind" >&2; exit 1; }
cargo build --release -q -p promtrack-examples --bin scrape_callgrind
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target/release/scrape_callgrind"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

instructions() { # format scrapes -> total instructions of the run
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$bin" "$1" "$2" 2>"$tmp/log"
  awk '/Collected :/ {print $NF}' "$tmp/log" | tail -1
}

result="result:"
printf '%-12s %s\n' format instructions/scrape
for format in $formats; do
  one=$(instructions "$format" "$n")
  two=$(instructions "$format" $((2 * n)))
  per=$(( (two - one) / n ))
  printf '%-12s %s\n' "$format" "$per"
  result="$result $format=$per"
done
echo "$result scrapes=$n"
