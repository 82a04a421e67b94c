#!/usr/bin/env bash
# End-to-end cost of the axum layer on loopback: requests per second of a bare axum
# hello-world against the same handler behind `promtrack::layer()` plus one `#[histogram]`,
# measured in alternation so that both see the same machine state. A third server, the same
# hello-world behind an identity tower layer, shows what axum itself charges for any layer
# (`Router::layer` boxes the route and its future once more). Two peers run the same way: the
# hello-world behind axum-prometheus 0.10's layer, and behind tower-http's `TraceLayer` with no
# subscriber.
#
#   scripts/wrk-layer.sh [ROUNDS] [SECONDS] [CONNECTIONS]     (defaults: 5 10 64)
#
# Needs `wrk` (apt-get install -y wrk). Prints each round, then the median of each side and
# the ratios (the issue asks for at least 0.95 of bare), and last a `result: key=value …` line
# for scripts (scripts/benchmarks.py).
set -euo pipefail

rounds=${1:-5}
seconds=${2:-10}
connections=${3:-64}
threads=${WRK_THREADS:-2}
bare_addr=127.0.0.1:18081
layer_addr=127.0.0.1:18082
noop_addr=127.0.0.1:18083
axprom_addr=127.0.0.1:18084
trace_addr=127.0.0.1:18085

cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p promtrack-examples --bin layer_wrk_server
bin="${CARGO_TARGET_DIR:-target}/release/layer_wrk_server"

"$bin" bare "$bare_addr" & bare_pid=$!
"$bin" layer "$layer_addr" & layer_pid=$!
"$bin" noop "$noop_addr" & noop_pid=$!
"$bin" axum-prometheus "$axprom_addr" & axprom_pid=$!
"$bin" trace "$trace_addr" & trace_pid=$!
trap 'kill "$bare_pid" "$layer_pid" "$noop_pid" "$axprom_pid" "$trace_pid" 2>/dev/null || true' EXIT
for addr in "$bare_addr" "$layer_addr" "$noop_addr" "$axprom_addr" "$trace_addr"; do
  for _ in $(seq 50); do curl -sf "http://$addr/" >/dev/null && break; sleep 0.1; done
done

run() { # addr -> requests per second
  wrk -t"$threads" -c"$connections" -d"${seconds}s" "http://$1/" | awk '/^Requests\/sec:/ {print $2}'
}

bare=(); layered=(); noop=(); axprom=(); trace=()
for round in $(seq "$rounds"); do
  b=$(run "$bare_addr"); l=$(run "$layer_addr"); n=$(run "$noop_addr")
  a=$(run "$axprom_addr"); t=$(run "$trace_addr")
  bare+=("$b"); layered+=("$l"); noop+=("$n"); axprom+=("$a"); trace+=("$t")
  printf 'round %d: bare %s, layer+histogram %s, identity layer %s, axum-prometheus %s, TraceLayer %s req/s\n' \
    "$round" "$b" "$l" "$n" "$a" "$t"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mb=$(median "${bare[@]}"); ml=$(median "${layered[@]}"); mn=$(median "${noop[@]}")
ma=$(median "${axprom[@]}"); mt=$(median "${trace[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
printf 'median: bare %.0f, layer+histogram %.0f, identity layer %.0f, axum-prometheus %.0f, TraceLayer %.0f req/s\n' \
  "$mb" "$ml" "$mn" "$ma" "$mt"
printf 'layer+histogram / bare = %s; identity layer / bare = %s; layer+histogram / identity layer = %s\n' \
  "$(ratio "$ml" "$mb")" "$(ratio "$mn" "$mb")" "$(ratio "$ml" "$mn")"
printf 'axum-prometheus / bare = %s; TraceLayer / bare = %s\n' "$(ratio "$ma" "$mb")" "$(ratio "$mt" "$mb")"
# The layer's own series, as a sanity check that it recorded the load.
curl -s "http://$layer_addr/metrics" | grep -E '^(axum_http_request_total|wrk_hello_seconds_count)'
spread() { # (max - min) / median of the rounds
  printf '%s\n' "$@" | sort -g | awk -v m="$(median "$@")" '{a[NR]=$1} END {printf "%.3f", (a[NR] - a[1]) / m}'
}
printf 'result: rounds=%s seconds=%s connections=%s threads=%s bare_rps=%.0f layer_rps=%.0f identity_rps=%.0f' \
  "$rounds" "$seconds" "$connections" "$threads" "$mb" "$ml" "$mn"
printf ' axum_prometheus_rps=%.0f trace_rps=%.0f' "$ma" "$mt"
printf ' layer_over_bare=%s identity_over_bare=%s axum_prometheus_over_bare=%s trace_over_bare=%s' \
  "$(ratio "$ml" "$mb")" "$(ratio "$mn" "$mb")" "$(ratio "$ma" "$mb")" "$(ratio "$mt" "$mb")"
printf ' bare_spread=%s layer_spread=%s identity_spread=%s\n' \
  "$(spread "${bare[@]}")" "$(spread "${layered[@]}")" "$(spread "${noop[@]}")"
