#!/usr/bin/env bash
# Load with faults, nothing lost: wrk drives the multiprocess example (a supervisor and
# WORKERS worker processes on one listening socket) for DURATION seconds while a scraper reads
# the supervisor's /metrics every 100 ms and a worker chosen at random is killed with SIGKILL
# every KILL_EVERY seconds (the supervisor restarts it); after wrk, IDLE_KILLS more workers are
# killed with no traffic, each after a short burst of requests (no growth then hides a total
# that goes down). Then it checks (scripts/load-with-faults.py, `check`):
#   - completed responses (wrk's figure, 404s included) <= axum_http_request_total (summed over
#     its series, final scrape) <= requests wrk sent; sent - completed (the requests a killed
#     worker dropped, and those in flight when wrk stopped) <= connections x (kills + 1) + 2 per
#     idle burst;
#   - between two scrapes, no sample of a counter, histogram or summary went backwards (nor the
#     counter's sum) and no series of the workers vanished, across deaths and compactions;
#   - the same for the native histogram (the example's `multiprocess_user_lookup_native_seconds`,
#     at most 20 buckets, so workers reduce it), scraped in the protobuf format after each text
#     scrape: after reducing two consecutive scrapes to their common schema and zero threshold,
#     no bucket, count or sum went down;
#   - no scrape failed, scrape wall time p99 <= 100 ms;
#   - the directory holds at most live workers + 2 files at the end (their files, archive.db
#     and compact.lock), and at every 1 s sample at most one more (a file in transit, never in
#     two samples in a row);
#   - the supervisor's RSS stayed flat (its max over the load's last 20 s and the idle kills
#     <= its max over the 10 s after warm-up x 1.10 + 512 KiB);
#   - no file was skipped as unreadable and no series dropped.
#
#   scripts/load-with-faults.sh [DURATION]        (default 60 s; or DURATION=… in the env)
#
# Environment: WORKERS (4), KILL_EVERY (10 s), IDLE_KILLS (8), CONNECTIONS (16), WRK_THREADS
# (1), WRK_NICE (10), PORT (39301), METRICS_PORT (39302), KEEP=1 to keep the run's files,
# MULTIPROCESS_BIN to test a given build of the example instead of building this tree's.
# Loopback only. Installs wrk (and curl, pgrep) with apt if missing; builds the example in
# release mode (a load test). Everything runs under timeouts, and every process it starts is
# stopped on exit, whatever happens.
#
# The load level: one wrk thread on 16 connections, at nice 10. The machine this must pass on
# has 2 cores shared by wrk, 4 workers, the supervisor and the scraper. One wrk thread already
# drives the workers at 45-70k requests a second on such a VM, every kill breaks live
# keep-alive connections, and the scrapes see files and the archive change under them: the
# point is correctness under sustained load and faults, not the highest rate. wrk at nice 10
# leaves the supervisor its share of CPU, as a service with headroom would, which keeps the
# scrape-latency check about promtrack rather than the scheduler on a noisy shared VM.
# Measured on the 2-core VM while others compiled: this level gave scrape p99 20-32 ms (p50
# 2-4 ms); WRK_THREADS=2 WRK_NICE=0 CONNECTIONS=64 (93k requests a second) gave p99 32 ms
# (p50 6 ms) — also within 100 ms, so the margin is real either way.
set -euo pipefail

duration=${1:-${DURATION:-60}}
workers=${WORKERS:-4}
kill_every=${KILL_EVERY:-10}
idle_kills=${IDLE_KILLS:-8}
connections=${CONNECTIONS:-16}
wrk_threads=${WRK_THREADS:-1}
wrk_nice=${WRK_NICE:-10}
port=${PORT:-39301}
metrics_port=${METRICS_PORT:-39302}

cd "$(dirname "$0")/.."
here=scripts

need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v curl >/dev/null || need_apt+=(curl)
command -v pgrep >/dev/null || need_apt+=(procps)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq
  timeout 300 apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if [ -n "${MULTIPROCESS_BIN:-}" ]; then
  bin=$MULTIPROCESS_BIN # a build of another revision, to compare
else
  timeout 1200 cargo build --release -q -p promtrack-examples --bin multiprocess
  bin=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/multiprocess
fi

for p in "$port" "$metrics_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port $p is in use: set PORT / METRICS_PORT to free ports" >&2
    exit 1
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/load-with-faults.XXXXXX")
metrics_dir=$tmp/metrics # created 0700 by the supervisor
pids=()
ok=0
cleanup() {
  local status=$?
  touch "$tmp/stop"
  # Children first (the killer, the monitor, wrk), then the supervisor, which stops its
  # workers on SIGTERM; anything still there after 5 s gets SIGKILL, workers included.
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  local workers_left
  if [ -n "${sup:-}" ]; then
    workers_left=$(pgrep -P "$sup" || true)
    kill "$sup" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$sup" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$sup" $workers_left 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  if [ "$ok" != 1 ]; then
    echo "--- FAILED (exit $status); logs from $tmp:" >&2
    for f in supervisor.log wrk.out monitor.log killer.log; do
      [ -f "$tmp/$f" ] && { echo "--- $f (last 40 lines)" >&2; tail -n 40 "$tmp/$f" >&2; }
    done
  fi
  if [ "${KEEP:-0}" = 1 ] || [ "$ok" != 1 ]; then
    echo "run files kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "load with faults: ${duration}s, $workers workers, a SIGKILL every ${kill_every}s, " \
  "wrk -t$wrk_threads -c$connections at nice $wrk_nice, scrapes every 100 ms; files in $tmp"

PORT=$port METRICS_PORT=$metrics_port WORKERS=$workers METRICS_DIR=$metrics_dir \
  timeout $((duration + 5 * idle_kills + 180)) "$bin" >"$tmp/supervisor.log" 2>&1 &
sup=$!
ready=0
for _ in $(seq 100); do
  if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 &&
    curl -fsS "http://127.0.0.1:$metrics_port/metrics" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
[ "$ready" = 1 ] || { echo "the example did not come up within 10 s" >&2; exit 1; }
# `timeout` runs the supervisor as its only child: the pid to watch is the example's own.
sup=$(pgrep -P "$sup")
for _ in $(seq 100); do
  [ "$(pgrep -c -P "$sup" || true)" -ge "$workers" ] && break
  sleep 0.1
done

timeout $((duration + 5 * idle_kills + 150)) python3 "$here/load-with-faults.py" monitor "$tmp" \
  "http://127.0.0.1:$metrics_port/metrics" "$sup" "$metrics_dir" "$tmp/stop" \
  $((duration + 5 * idle_kills + 120)) >"$tmp/monitor.log" 2>&1 &
monitor=$!
pids+=($monitor)

# The killer: a random live worker every KILL_EVERY seconds while wrk runs.
(
  n=0
  for ((t = kill_every; t < duration; t += kill_every)); do
    sleep "$kill_every"
    victims=($(pgrep -P "$sup" || true))
    [ ${#victims[@]} -gt 0 ] || continue
    v=${victims[RANDOM % ${#victims[@]}]}
    kill -9 "$v" 2>/dev/null && n=$((n + 1)) && echo "t=${t}s killed worker $v"
  done
  echo "kills $n"
) >"$tmp/killer.log" 2>&1 &
killer=$!
pids+=($killer)

# In the background, so that a signal to this script is handled at once (bash runs traps only
# between foreground commands).
timeout $((duration + 30)) nice -n "$wrk_nice" wrk -t"$wrk_threads" -c"$connections" \
  -d"${duration}s" --timeout 5s -s "$here/load-with-faults.lua" "http://127.0.0.1:$port/" \
  >"$tmp/wrk.out" 2>&1 &
wrk_pid=$!
pids+=($wrk_pid)
wait "$wrk_pid"
grep -q '^WRK_TOTALS ' "$tmp/wrk.out" || { echo "wrk printed no totals" >&2; exit 1; }
wait "$killer"
kills=$(awk '/^kills/ {print $2}' "$tmp/killer.log")

wait_for_workers() { # every worker restarted
  for _ in $(seq 50); do
    [ "$(pgrep -c -P "$sup" || true)" -ge "$workers" ] && break
    sleep 0.1
  done
}
# Settle: requests wrk abandoned at its stop answered and counted.
wait_for_workers
sleep 1
# Idle kills: a short burst of requests (2 connections), a pause, then a kill with no traffic:
# growth no longer hides a total that a fold makes go down by one ulp (found this way: a
# histogram's _sum, fixed in multiprocess_store/exact.rs; about one fold in six showed it before).
# The scrapes go on; the bursts' totals join wrk's.
for _ in $(seq "$idle_kills"); do
  timeout 10 wrk -t1 -c2 -d1s -s "$here/load-with-faults.lua" "http://127.0.0.1:$port/" \
    >>"$tmp/idle-wrk.out" 2>&1 || true
  sleep 0.5
  victims=($(pgrep -P "$sup" || true))
  [ ${#victims[@]} -gt 0 ] && kill -9 "${victims[RANDOM % ${#victims[@]}]}" 2>/dev/null || true
  sleep 0.3
  wait_for_workers
  sleep 0.3
done
touch "$tmp/stop"
wait "$monitor"
cat "$tmp/wrk.out" "$tmp/idle-wrk.out" 2>/dev/null | grep '^WRK_TOTALS ' | cut -d' ' -f2- \
  >"$tmp/wrk.jsonl"

echo "kills: $kills under load, then $idle_kills while idle; supervisor restarts:" \
  "$(grep -c restarting "$tmp/supervisor.log" || true)"
if python3 "$here/load-with-faults.py" check "$tmp" "$tmp/wrk.jsonl" "$workers" \
  "$connections" "$kills" "$idle_kills" "$duration"; then
  ok=1
else
  exit 1
fi
