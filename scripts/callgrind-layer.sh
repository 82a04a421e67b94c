#!/usr/bin/env bash
# Instructions per request of the hello-world app of scripts/wrk-layer.sh in each of its modes,
# counted by callgrind: no socket, one thread, `oneshot` (layer_wrk_server requests MODE N).
# Instruction counts do not depend on what else the machine is doing, so they show a change of a
# few percent that wrk's rounds cannot; they do not show what costs time beyond instructions
# (cache misses, contended cache lines between server threads). Each mode runs twice, with N and
# 2N requests, and the difference divided by N is the cost of one request (start-up cancels out).
# Modes: bare axum; noop (an identity tower layer: what axum charges for any layer); the promtrack
# layer with and without one `#[histogram]`, and the attribute alone; and two peers on the bare
# handler, axum-prometheus 0.10 and tower-http's `TraceLayer` with no subscriber. Two more run the
# `layer` app with headers, for the exemplars' cost (issue 14): `layer-traced` sends a sampled
# `traceparent` with a new trace id on every request, `layer-untraced` the same value under
# another name, so they differ only in what the layer does with the header; and
# `layer-noexemplars` is the `layer` app with the layer's exemplars off (no header probe). The second
# column is the cost over noop, i.e. what the layer itself adds.
#
#   scripts/callgrind-layer.sh [N]        (default 2000)
#
# Needs valgrind (apt-get install -y valgrind). Prints a table, then a `result:` line.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
. scripts/callgrind-lib.sh
callgrind_init layer_wrk_server -p promtrack-examples --bin layer_wrk_server

result="result:"
printf '%-16s %-22s %s\n' mode instructions/request over-noop
noop=
for mode in bare noop layer-only histogram layer layer-noexemplars layer-untraced layer-traced axum-prometheus trace; do
  per=$(callgrind_per_iteration 0 "$n" requests "$mode")
  [ "$mode" = noop ] && noop=$per
  over=; [ -n "$noop" ] && over=$(( per - noop ))
  printf '%-16s %-22s %s\n' "$mode" "$per" "$over"
  result="$result ${mode//-/_}=$per"
done
echo "$result requests=$n"
