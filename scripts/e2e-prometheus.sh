#!/usr/bin/env bash
# End to end against a real Prometheus: what promtrack exposes, scraped by a server no one here
# wrote, must add up to exactly what was sent.
#
#   bash scripts/e2e-prometheus.sh
#
# Starts two prefork "hosts" (the multiprocess example, 2 workers and a directory each), one
# quickstart and a Pushgateway, then Prometheus (examples/prometheus/e2e.yml, every target
# scraped each second); sends a known set of requests to each app; pushes a batch job's metrics
# through the gateway; then asks Prometheus' HTTP API and asserts:
#   - sum(axum_http_request_total) equals the tracked requests sent, exactly — in total, per
#     instance (both hosts), per job and for the 404s; /healthz (#[do_not_track]) and the
#     scrapes of the quickstart's own /metrics count for nothing;
#   - the p90 of axum_http_request_duration_seconds over every route is a number;
#   - every target is up, with an empty lastError, Prometheus' log has no scrape or ingestion
#     error, and its out-of-order / duplicate / sample-limit counters are 0;
#   - batch_records_processed_total{job="promtrack_batch",instance="batch-1"} read back from
#     the gateway equals RECORDS, and the batch job fails when the gateway is down;
#   - every query of examples/grafana/promtrack-dashboard.json returns data.
#   - exemplars (Prometheus runs with --enable-feature=exemplar-storage and scrapes OpenMetrics):
#     requests carry traceparent headers of known trace ids, some sampled, some not; through
#     /api/v1/query_exemplars, on the duration buckets and the request counter, every trace id
#     returned was sent sampled on that route to that host, and every route and host sent
#     sampled traces (the two multiprocess hosts and the single-process quickstart) has one;
#   - examples/grafana/datasource.yml is valid YAML linking exemplars' trace_id to traces.
# A second Prometheus (examples/prometheus/e2e-native.yml), started with
# `--enable-feature=native-histograms`, scrapes the two hosts over protobuf; through its API:
#   - the hosts served it protobuf (promtrack_scrapes_total{format="protobuf"});
#   - histogram_count of the native histogram multiprocess_sleep_seconds equals the /sleep
#     requests sent, per host and in total;
#   - its p50 / p90 / p99 land within the schema's relative error of the known sleeps;
#   - the dashboard's native-histogram panel returns data.
#
# Settings (environment): E2E_PORT_BASE (default 47400; ports BASE+1..BASE+9 on 127.0.0.1 are
# used, see examples/prometheus/e2e.yml; BASE+8 is the second Prometheus), E2E_RECORDS (default 100), E2E_TIMEOUT (seconds per
# wait, default 30), E2E_KEEP=1 keeps the temporary directory (configs, logs, TSDB).
# Needs apt (installs prometheus, prometheus-pushgateway and curl when absent) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

started=$SECONDS
step() { printf '\n--- %s (t+%ss)\n' "$1" "$((SECONDS - started))"; }

# The committed config names the ports of the default base; other bases get a rewritten copy.
config_base=47400
base=${E2E_PORT_BASE:-$config_base}
records=${E2E_RECORDS:-100}
wait_timeout=${E2E_TIMEOUT:-30}
host_a_app=$((base + 1)) host_a_metrics=$((base + 2))
host_b_app=$((base + 3)) host_b_metrics=$((base + 4))
quickstart_port=$((base + 5))
gateway_port=$((base + 6))
prometheus_port=$((base + 7))
prometheus_native_port=$((base + 8))
dead_port=$((base + 9)) # nothing listens here: the batch job's "gateway down" case
prom=http://127.0.0.1:$prometheus_port
prom_native=http://127.0.0.1:$prometheus_native_port

step "install what the check needs"
need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v prometheus-pushgateway >/dev/null || need_apt+=(prometheus-pushgateway)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
command -v python3 >/dev/null || { echo "python3 is needed to read Prometheus' answers" >&2; exit 1; }
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install -q pyyaml
prometheus --version 2>&1 | head -1
prometheus-pushgateway --version 2>&1 | head -1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/promtrack-e2e.XXXXXX")
pids=()

# Every process is started in a session of its own (setsid): its process group then holds the
# multiprocess supervisor's workers too, and one signal to the group stops them all.
start() { # LOGFILE COMMAND...
  local log=$1
  shift
  setsid "$@" >"$log" 2>&1 &
  pids+=("$!")
}

stop_all() {
  local i
  for i in "${!pids[@]}"; do
    kill -TERM -- "-${pids[$i]}" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    local alive=0
    for i in "${!pids[@]}"; do
      kill -0 -- "-${pids[$i]}" 2>/dev/null && alive=1
    done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for i in "${!pids[@]}"; do
    kill -KILL -- "-${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
}

show_logs() {
  local f
  for f in "$tmp"/*.log; do
    [ -e "$f" ] || continue
    printf '\n----- %s (last 40 lines)\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}

on_exit() {
  local rc=$?
  stop_all
  if [ "$rc" != 0 ]; then
    show_logs
    printf '\nE2E FAILED (exit %s) after %ss\n' "$rc" "$((SECONDS - started))" >&2
  fi
  if [ "${E2E_KEEP:-}" = 1 ]; then
    echo "kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap on_exit EXIT
# A signal would end the script without the EXIT trap, leaving the servers behind.
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Reading Prometheus' JSON: one small helper, so that each assertion below stays one line.
cat >"$tmp/prom.py" <<'PY'
"""Helpers over Prometheus' HTTP API for e2e-prometheus.sh (standard library only)."""
import datetime
import json
import math
import re
import sys
import urllib.parse
import urllib.request

def get(base, path, **params):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise SystemExit(f"{url}: {body}")
    return body["data"]

def query(base, expr):
    data = get(base, "/api/v1/query", query=expr)
    if data["resultType"] == "scalar":
        return [({}, float(data["result"][1]))]
    return [(s["metric"], float(s["value"][1])) for s in data["result"]]

def rfc3339(s):
    # Prometheus gives nanoseconds; datetime takes microseconds.
    s = re.sub(r"(\.\d{6})\d+", r"\1", s).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(s).timestamp()

def main():
    cmd, base, *args = sys.argv[1:]
    if cmd == "value":  # EXPR: the single value of an instant query, or "none"
        r = query(base, args[0])
        if len(r) != 1:
            print("none" if not r else f"{len(r)} series: {r}")
        else:
            v = r[0][1]
            print(int(v) if v == int(v) else v)
    elif cmd == "within":  # EXPR LO HI: exit 1 unless it gives one number in [LO, HI]
        r = query(base, args[0])
        lo, hi = float(args[1]), float(args[2])
        ok = len(r) == 1 and lo <= r[0][1] <= hi
        print(f"{r[0][1]:.6g}" if len(r) == 1 else f"{len(r)} series: {r}")
        sys.exit(0 if ok else 1)
    elif cmd == "series":  # EXPR LABEL: "label=value" per series, sorted
        for m, v in sorted(query(base, args[0]), key=lambda s: s[0].get(args[1], "")):
            print(f"{m.get(args[1], '')}={int(v) if v == int(v) else v}")
    elif cmd == "number":  # EXPR: exit 1 unless it gives one finite number
        r = query(base, args[0])
        ok = len(r) == 1 and math.isfinite(r[0][1])
        print(f"{r[0][1]:.6g}" if r else "no data")
        sys.exit(0 if ok else 1)
    elif cmd == "scraped-after":  # EPOCH N: exit 0 once every target was scraped N times since
        since, n = float(args[0]), int(args[1])
        targets = get(base, "/api/v1/targets", state="active")["activeTargets"]
        # Scrapes of one target are sequential, one interval apart: the Nth scrape started
        # after `since` began after the (N-1)th had been appended.
        need = since + (n - 1) * 1.0
        late = [t["scrapeUrl"] for t in targets
                if t["health"] != "up" or rfc3339(t["lastScrape"]) <= need]
        print(" ".join(late) or "all scraped")
        sys.exit(1 if late or not targets else 0)
    elif cmd == "targets":  # N: every active target up with no error; N of them
        targets = get(base, "/api/v1/targets", state="active")["activeTargets"]
        bad = [f'{t["scrapeUrl"]} health={t["health"]} lastError={t["lastError"]!r}'
               for t in targets if t["health"] != "up" or t["lastError"]]
        for t in targets:
            print(f'  {t["labels"]["job"]:<24} {t["scrapeUrl"]:<40} {t["health"]}'
                  f' lastError={t["lastError"]!r} {t["lastScrapeDuration"] * 1000:.1f}ms')
        if bad or len(targets) != int(args[0]):
            print(f"expected {args[0]} healthy targets, found {len(targets)}; bad: {bad}")
            sys.exit(1)
    elif cmd == "self-metrics":  # NAME...: Prometheus' own counters, summed over labels
        text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        for name in args:
            vals = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                    if re.match(re.escape(name) + r"(\{| )", l)]
            print(f"{name}={sum(vals) if vals else 'absent'}")
    elif cmd in ("dashboard", "dashboard-native"):
        # FILE SUBST...: the dashboard's shape, and data for every query. Panels titled
        # "(native histogram)" need a Prometheus with native histograms: `dashboard-native`
        # runs those, `dashboard` the others.
        native_only = cmd == "dashboard-native"
        is_native = lambda p: "(native histogram)" in p.get("title", "")
        dash = json.load(open(args[0]))
        subst = dict(a.split("=", 1) for a in args[1:])
        def fill(expr):
            for var, val in subst.items():
                expr = expr.replace("${" + var + "}", val).replace("$" + var, val)
            return expr
        def panels(ps):
            for p in ps:
                yield p
                yield from panels(p.get("panels", []))
        failed, n = [], 0
        # Shape: what an import needs, so that the file cannot drift into one Grafana refuses.
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        if variables.get("datasource", {}).get("type") != "datasource":
            failed.append("no `datasource` variable of type datasource")
        for name in ("job", "instance"):
            if variables.get(name, {}).get("type") != "query":
                failed.append(f"no `{name}` query variable")
        ids = [p["id"] for p in panels(dash["panels"])]
        if len(ids) != len(set(ids)):
            failed.append(f"panel ids repeat: {ids}")
        for p in panels(dash["panels"]):
            if p["type"] == "row":
                continue
            for t in [p] + p.get("targets", []):
                if t.get("datasource", {}).get("uid") != "${datasource}":
                    failed.append(f'{p["title"]}: datasource is not the `datasource` variable')
            if not p.get("targets"):
                failed.append(f'{p["title"]}: no query')
        # Variables: label_values(SELECTOR, LABEL) must find values.
        for v in variables.values():
            if v["type"] != "query" or native_only:
                continue
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", v["definition"])
            if not m:
                failed.append(f'variable {v["name"]}: not label_values(...): {v["definition"]}')
                continue
            n += 1
            values = get(base, f"/api/v1/label/{m.group(2)}/values", **{"match[]": fill(m.group(1))})
            print(f'  variable ${v["name"]:<33} {len(values)} values: {" ".join(values)}')
            if not values:
                failed.append(f'variable {v["name"]}: no values for {v["definition"]}')
        # Panels: every query gives at least one finite value.
        for p in panels(dash["panels"]):
            if p["type"] == "row" or is_native(p) != native_only:
                continue
            for t in p.get("targets", []):
                expr = fill(t["expr"])
                if "$" in expr:
                    failed.append(f'{p["title"]}: unknown variable left in {expr}')
                    continue
                n += 1
                r = query(base, expr)
                finite = [v for _, v in r if math.isfinite(v)]
                status = f"{len(r)} series, {len(finite)} finite" if r else "NO DATA"
                print(f'  {p["title"][:40]:<40} {t["refId"]}: {status}')
                if not finite:
                    failed.append(f'{p["title"]} ({t["refId"]}): {expr} -> {r}')
        print(f"  {n} queries")
        if failed or n == 0:
            print("\n".join(["dashboard problems:"] + failed))
            sys.exit(1)
    elif cmd == "exemplars":
        # SELECTOR TRACES START [by-instance]: Prometheus' exemplars of SELECTOR against what
        # was sent. Every returned trace id must have been sent sampled on that series'
        # instance and path (only the instance with `by-instance`: the request counter has no
        # path label); every (instance, path) sent sampled must have at least one; ids sent
        # unsampled (or never sent) must not appear.
        selector, traces, start, *by = args
        sent = [l.split() for l in open(traces)]
        if by == ["by-instance"]:
            sent = [(i, None, s, t) for i, _, s, t in sent]
        sampled = {(i, p, t) for i, p, s, t in sent if s == "sampled"}
        unsampled = {t for _, _, s, t in sent if s == "unsampled"}
        data = get(base, "/api/v1/query_exemplars", query=selector, start=start,
                   end=f"{__import__('time').time() + 60}")
        seen, problems = set(), []
        for series in data:
            labels = series["seriesLabels"]
            key = (labels.get("instance"), labels.get("path"))
            for e in series["exemplars"]:
                t = e["labels"].get("trace_id")
                if t in unsampled:
                    problems.append(f"{key}: trace {t} was sent with flags 00")
                elif (*key, t) not in sampled:
                    problems.append(f"{key}: trace {t} was not sent sampled there ({e})")
                else:
                    seen.add(key)
        wanted = {(i, p) for i, p, _ in sampled}
        for key in sorted(wanted - seen):
            problems.append(f"{key}: no exemplar of the {sum(1 for i, p, _ in sampled if (i, p) == key)} sampled traces sent")
        n = sum(len(s["exemplars"]) for s in data)
        print(f"{n} exemplars on {len(data)} series, {len(seen)} of {len(wanted)} (instance, path) covered")
        for p in problems[:20]:
            print("    " + p)
        sys.exit(1 if problems else 0)
    else:
        raise SystemExit(f"unknown command {cmd}")

main()
PY
pq() { python3 "$tmp/prom.py" "$1" "$prom" "${@:2}"; }
pqn() { python3 "$tmp/prom.py" "$1" "$prom_native" "${@:2}"; }

# Polls COMMAND... every 0.2 s until it succeeds, for at most $wait_timeout seconds.
wait_for() { # WHAT COMMAND...
  local what=$1 deadline=$((SECONDS + wait_timeout))
  shift
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "timed out after ${wait_timeout}s waiting for $what; last try said:" >&2
      "$@" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}
http_ok() { curl -fsS --max-time 2 -o /dev/null "$1"; }

step "check that the ports are free (E2E_PORT_BASE=$base moves them)"
for port in $host_a_app $host_a_metrics $host_b_app $host_b_metrics $quickstart_port \
  $gateway_port $prometheus_port $prometheus_native_port $dead_port; do
  # SO_REUSEADDR, as the servers bind: the TIME_WAIT sockets of a previous run do not count.
  if ! python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
    fail "127.0.0.1:$port is already in use; set E2E_PORT_BASE to move the ports this check uses"
  fi
done

step "build the examples"
cargo build -q -p promtrack-examples --bins
bin=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug
build_done=$SECONDS

step "start two multiprocess hosts, a quickstart and a Pushgateway"
mkdir "$tmp/dir-a" "$tmp/dir-b"
start "$tmp/host-a.log" env PORT=$host_a_app METRICS_PORT=$host_a_metrics WORKERS=2 \
  METRICS_DIR="$tmp/dir-a" "$bin/multiprocess"
start "$tmp/host-b.log" env PORT=$host_b_app METRICS_PORT=$host_b_metrics WORKERS=2 \
  METRICS_DIR="$tmp/dir-b" "$bin/multiprocess"
start "$tmp/quickstart.log" env PORT=$quickstart_port "$bin/quickstart"
start "$tmp/pushgateway.log" prometheus-pushgateway \
  --web.listen-address=127.0.0.1:$gateway_port
wait_for "host A" http_ok "http://127.0.0.1:$host_a_metrics/metrics"
wait_for "host B" http_ok "http://127.0.0.1:$host_b_metrics/metrics"
wait_for "the quickstart" http_ok "http://127.0.0.1:$quickstart_port/healthz"
wait_for "the Pushgateway" http_ok "http://127.0.0.1:$gateway_port/-/ready"

step "start two Prometheus (examples/prometheus/e2e.yml, e2e-native.yml; ports from E2E_PORT_BASE)"
moved_config() { # FILE: the config with its ports moved to E2E_PORT_BASE
  promtool check config "$1" >/dev/null
  python3 -c '
import re, sys
base, old = int(sys.argv[1]), int(sys.argv[2])
moved = lambda m: f"127.0.0.1:{base + int(m.group(1)) - old if 0 < int(m.group(1)) - old < 10 else m.group(1)}"
sys.stdout.write(re.sub(r"127\.0\.0\.1:(\d+)", moved, open(sys.argv[3]).read()))
' "$base" "$config_base" "$1"
}
moved_config examples/prometheus/e2e.yml >"$tmp/prometheus.yml"
moved_config examples/prometheus/e2e-native.yml >"$tmp/prometheus-native.yml"
promtool check config "$tmp/prometheus.yml" "$tmp/prometheus-native.yml" >/dev/null
# Debug level: Prometheus logs a failed scrape only there. The first keeps classic histograms
# (2.42 with native histograms on would drop the classic buckets of a histogram that has both).
start "$tmp/prometheus.log" prometheus --config.file="$tmp/prometheus.yml" \
  --storage.tsdb.path="$tmp/tsdb" --web.listen-address=127.0.0.1:$prometheus_port \
  --enable-feature=exemplar-storage --log.level=debug
start "$tmp/prometheus-native.log" prometheus --config.file="$tmp/prometheus-native.yml" \
  --storage.tsdb.path="$tmp/tsdb-native" --web.listen-address=127.0.0.1:$prometheus_native_port \
  --enable-feature=native-histograms --log.level=debug
wait_for "Prometheus to be ready" http_ok "$prom/-/ready"
wait_for "the native-histogram Prometheus to be ready" http_ok "$prom_native/-/ready"
wait_for "a first healthy scrape of every target" pq targets 4
wait_for "a first healthy scrape of both hosts over protobuf" pqn targets 2

# --- traffic ----------------------------------------------------------------------------------
# Each request is on a connection of its own (`Connection: close`), so that a host's two workers
# share them. Counted per scrape target: what the layer must have counted.
declare -A sent=() sent_404=()
untracked=0
request() { # TARGET METHOD PATH EXPECTED_STATUS [untracked]; $TRACEPARENT: a header to send
  local target=$1 method=$2 path=$3 want=$4 port
  case $target in
    host-a) port=$host_a_app ;;
    host-b) port=$host_b_app ;;
    quickstart) port=$quickstart_port ;;
  esac
  local got
  local trace=()
  [ -z "${TRACEPARENT:-}" ] || trace=(-H "traceparent: $TRACEPARENT")
  got=$(curl -sS --max-time 5 -o "$tmp/body" -w '%{http_code}' -X "$method" \
    -H 'Connection: close' "${trace[@]}" "http://127.0.0.1:$port$path") || got="curl failed"
  [ "$got" = "$want" ] || fail "$method $target$path answered $got, expected $want"
  if [ "${5:-}" = untracked ]; then
    untracked=$((untracked + 1))
  else
    sent[$target]=$((${sent[$target]:-0} + 1))
    [ "$want" = 404 ] && sent_404[$target]=$((${sent_404[$target]:-0} + 1))
  fi
  return 0
}

# The layer learns whether a route is tracked from its handler's first answer that is not a
# 4xx: a 4xx before that may be an extractor's rejection of an untracked route, so it is held
# back until then (runtime/src/layer/routes.rs). Each worker learns for itself; so before the
# 404s of /users/{id}, every worker of a host must have answered one with a 200. The example
# returns the worker's pid: ask until every one has answered (bounded).
learn_users_route() { # TARGET WORKERS
  local target=$1 want=$2 port pids_seen=()
  case $target in
    host-a) port=$host_a_app ;;
    host-b) port=$host_b_app ;;
    quickstart) port=$quickstart_port ;;
  esac
  for i in $(seq 1 100); do
    request "$target" GET "/users/$((i % 9 + 1))" 200
    if [ "$target" = quickstart ]; then return 0; fi
    local pid
    pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$tmp/body")
    [[ " ${pids_seen[*]} " == *" $pid "* ]] || pids_seen+=("$pid")
    [ "${#pids_seen[@]}" -ge "$want" ] && return 0
  done
  fail "$target: only workers ${pids_seen[*]} answered 100 requests; expected $want workers"
}

# One round: every kind of answer the layer records, and one request it must not.
round() { # TARGET
  request "$1" GET / 200
  request "$1" GET /users/7 200
  request "$1" GET /users/42 200
  request "$1" GET /users/10 404        # the handler's own 404
  request "$1" GET /no/such/route 404   # no route: path="_unmatched"
  request "$1" POST /users/7 405        # a route without this method
  request "$1" GET /healthz 200 untracked # #[do_not_track]
}
# Known durations into the hosts' native histogram multiprocess_sleep_seconds: over both halves
# each host sleeps 12 × 20 ms, 7 × 100 ms and once 300 ms, so that over both hosts (40
# observations) the p50 is a 20 ms sleep, the p90 a 100 ms one and the p99 the 300 ms one.
declare -A slept=()
sleeps() { # TARGET N MS
  for _ in $(seq 1 "$2"); do request "$1" GET "/sleep/$3" 200; done
  slept[$1]=$((${slept[$1]:-0} + $2))
}
# Requests with W3C traceparent headers of known trace ids, on two routes of every app: per
# route, three sampled (flags 01, at least 100 ms apart so that the 90 ms exemplar rate limit
# lets each replace the last), then two not sampled (flags 00) and one without a header. Each
# is recorded in $tmp/traces as "INSTANCE ROUTE sampled|unsampled TRACE_ID" for the exemplar
# checks (the metrics port is the instance Prometheus labels a host's series with).
trace_seq=0
traced() { # TARGET
  local target=$1 instance path flags trace state
  case $target in
    host-a) instance=127.0.0.1:$host_a_metrics ;;
    host-b) instance=127.0.0.1:$host_b_metrics ;;
    quickstart) instance=127.0.0.1:$quickstart_port ;;
  esac
  for path in / /users/7; do
    for flags in 01 01 01 00 00; do
      trace_seq=$((trace_seq + 1))
      trace=$(printf '%08x%024x' "$run_id" "$trace_seq")
      TRACEPARENT="00-$trace-00f067aa0ba902b7-$flags" request "$target" GET "$path" 200
      [ "$flags" = 01 ] && state=sampled || state=unsampled
      # The series' path label is the route, not the URI.
      echo "$instance ${path/7/\{id\}} $state $trace" >>"$tmp/traces"
      sleep 0.1
    done
    request "$target" GET "$path" 200
  done
}
# Trace ids of this run: a random first word, so that no id repeats an earlier run's.
run_id=$((RANDOM * 32768 + RANDOM + 1))
traffic() { # ROUNDS_A ROUNDS_B ROUNDS_QUICKSTART
  local target n
  for target in host-a host-b quickstart; do
    case $target in host-a) n=$1 ;; host-b) n=$2 ;; quickstart) n=$3 ;; esac
    for _ in $(seq 1 "$n"); do round "$target"; done
  done
}
now() { python3 -c 'import time; print(time.time())'; }

run_started=$(now)
step "traffic, first half"
learn_users_route host-a 2
learn_users_route host-b 2
learn_users_route quickstart 1
traffic 4 3 2
for target in host-a host-b; do sleeps $target 6 20; sleeps $target 3 100; done
# rate() needs two samples of a series that differ: let every target be scraped once between
# the two halves, so that each series exists before the second half raises it.
first_half_end=$(now)
wait_for "a scrape of every target after the first half" pq scraped-after "$first_half_end" 1

step "traffic, second half, and a batch job through the Pushgateway"
traffic 4 3 2
for target in host-a host-b; do sleeps $target 6 20; sleeps $target 4 100; sleeps $target 1 300; done
for target in host-a host-b quickstart; do traced $target; done
batch_started=$(now)
PUSHGATEWAY_URL=http://127.0.0.1:$gateway_port RECORDS=$records \
  timeout 30 "$bin/batch_job" >"$tmp/batch_job.log" 2>&1 ||
  fail "batch_job failed to push to a running gateway (exit $?)"
cat "$tmp/batch_job.log"
# The same job with the gateway down: a non-zero exit and an error message, within bounds.
rc=0
PUSHGATEWAY_URL=http://127.0.0.1:$dead_port RECORDS=1 \
  timeout 30 "$bin/batch_job" >"$tmp/batch_job_down.log" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "batch_job exited 0 with no gateway at 127.0.0.1:$dead_port"
[ "$rc" != 124 ] || fail "batch_job hung for 30 s with no gateway at 127.0.0.1:$dead_port"
grep -q "127.0.0.1:$dead_port" "$tmp/batch_job_down.log" ||
  fail "batch_job's error with the gateway down does not name the gateway's address"
echo "with the gateway down: exit $rc, $(tail -n 1 "$tmp/batch_job_down.log")"
last_request=$(now)

step "wait until Prometheus has scraped everything sent"
# Two scrapes after the last request: the first has surely been appended once the second ran.
wait_for "two scrapes of every target after the last request" \
  pq scraped-after "$last_request" 2
wait_for "two protobuf scrapes of both hosts after the last request" \
  pqn scraped-after "$last_request" 2

step "assertions"
total_sent=0
for target in host-a host-b quickstart; do total_sent=$((total_sent + sent[$target])); done
total_404=0
for target in host-a host-b quickstart; do total_404=$((total_404 + sent_404[$target])); done
failures=0
check_eq() { # WHAT EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then
    printf '  ok    %-62s %s\n' "$1" "$3"
  else
    printf '  FAIL  %-62s expected %s, Prometheus says %s\n' "$1" "$2" "$3"
    failures=$((failures + 1))
  fi
}

check_eq "sum(axum_http_request_total)" "$total_sent" \
  "$(pq value 'sum(axum_http_request_total)')"
check_eq "sum(axum_http_request_total{status=\"404\"})" "$total_404" \
  "$(pq value 'sum(axum_http_request_total{status="404"})')"
check_eq "per instance, job promtrack_multiprocess" \
  "127.0.0.1:$host_a_metrics=${sent[host-a]} 127.0.0.1:$host_b_metrics=${sent[host-b]}" \
  "$(pq series 'sum by (instance) (axum_http_request_total{job="promtrack_multiprocess"})' instance | xargs)"
check_eq "job promtrack_quickstart (its /metrics scrapes not counted)" "${sent[quickstart]}" \
  "$(pq value 'sum(axum_http_request_total{job="promtrack_quickstart"})')"
check_eq "sum(axum_http_request_duration_seconds_count)" "$total_sent" \
  "$(pq value 'sum(axum_http_request_duration_seconds_count)')"
check_eq "series of the untracked /healthz" "none" \
  "$(pq value 'count({path="/healthz"})')"
check_eq "sum(multiprocess_workers)" 4 "$(pq value 'sum(multiprocess_workers)')"
check_eq "count(up == 1)" 4 "$(pq value 'count(up == 1)')"

p90_expr='histogram_quantile(0.9, sum by (le) (rate(axum_http_request_duration_seconds_bucket[1m])))'
if p90=$(pq number "$p90_expr"); then
  printf '  ok    %-62s %s s\n' "p90 latency is a number" "$p90"
else
  printf '  FAIL  %-62s %s\n' "p90 latency is a number" "$p90"
  failures=$((failures + 1))
fi

echo "  targets:"
if ! pq targets 4; then failures=$((failures + 1)); fi

self=$(pq self-metrics prometheus_target_scrapes_sample_out_of_order_total \
  prometheus_target_scrapes_sample_duplicate_timestamp_total \
  prometheus_target_scrapes_sample_out_of_bounds_total \
  prometheus_target_scrapes_exceeded_sample_limit_total \
  prometheus_target_scrapes_exceeded_body_size_limit_total \
  prometheus_target_scrape_pool_exceeded_label_limits_total)
while IFS='=' read -r name value; do
  check_eq "$name" 0 "${value%.0}"
done <<<"$self"

# Scrape failures are logged at debug level; ingestion problems (out of order, duplicates,
# limits) as warnings of the scrape manager; anything at error level counts too.
log_errors=$(grep -E 'Scrape failed|Append failed|Error on ingesting|level=error|level=warn component="scrape manager"' \
  "$tmp/prometheus.log" || true)
check_eq "scrape or ingestion errors in Prometheus' log" 0 \
  "$(printf '%s' "$log_errors" | grep -c . || true)"
[ -z "$log_errors" ] || printf '%s\n' "$log_errors" | head -n 20

check_eq 'batch_records_processed_total{job="promtrack_batch",instance="batch-1"}' "$records" \
  "$(pq value 'batch_records_processed_total{job="promtrack_batch",instance="batch-1"}')"
check_eq "batch_last_success_timestamp_seconds within this run" 1 \
  "$(pq value "count(batch_last_success_timestamp_seconds{job=\"promtrack_batch\",instance=\"batch-1\"} >= $batch_started - 1 <= $(now) + 1)")"
check_eq "batch_duration_seconds >= 0" 1 \
  "$(pq value 'count(batch_duration_seconds{job="promtrack_batch",instance="batch-1"} >= 0)')"

echo "  dashboard examples/grafana/promtrack-dashboard.json:"
if ! pq dashboard examples/grafana/promtrack-dashboard.json \
  'job=.+' 'instance=.+' '__rate_interval=1m' '__interval=15s' '__range=5m'; then
  failures=$((failures + 1))
fi

echo "  examples/grafana/datasource.yml (the exemplars' trace links):"
if python3 - examples/grafana/datasource.yml <<'PY'
import sys
import yaml  # PyYAML: python3-yaml on Debian
doc = yaml.safe_load(open(sys.argv[1]))
sources = [d for d in doc["datasources"] if d.get("type") == "prometheus"]
links = [l for d in sources for l in d.get("jsonData", {}).get("exemplarTraceIdDestinations", [])]
names = sorted({l["name"] for l in links})
print(f"    {len(sources)} Prometheus data source(s), exemplar links on {names}")
sys.exit(0 if sources and "trace_id" in names and all("datasourceUid" in l or "url" in l for l in links) else 1)
PY
then
  printf '  ok    %-62s\n' "valid YAML, an exemplar trace link named trace_id"
else
  printf '  FAIL  %-62s\n' "valid YAML, an exemplar trace link named trace_id"
  failures=$((failures + 1))
fi
echo "  exemplars (--enable-feature=exemplar-storage, OpenMetrics scrapes):"
for metric in "axum_http_request_duration_seconds_bucket route" "axum_http_request_total by-instance"; do
  set -- $metric
  [ "$2" = route ] && what="per host and route" || what="per host"
  if got=$(pq exemplars "$1" "$tmp/traces" "$(python3 -c "print($run_started - 60)")" $2); then
    printf '  ok    %-62s %s\n' "$1: the sampled traces sent, $what" "$got"
  else
    printf '  FAIL  %-62s %s\n' "$1: the sampled traces sent, $what" "$got"
    failures=$((failures + 1))
  fi
done
echo "  the native-histogram Prometheus (--enable-feature=native-histograms, protobuf):"
echo "  targets:"
if ! pqn targets 2; then failures=$((failures + 1)); fi
check_eq "hosts that answered protobuf scrapes" 2 \
  "$(pqn value 'count(sum by (instance) (promtrack_scrapes_total{format="protobuf"}) > 0)')"
total_slept=$((slept[host-a] + slept[host-b]))
check_eq "histogram_count(sum(multiprocess_sleep_seconds))" "$total_slept" \
  "$(pqn value 'histogram_count(sum(multiprocess_sleep_seconds))')"
check_eq "per instance, histogram_count of multiprocess_sleep_seconds" \
  "127.0.0.1:$host_a_metrics=${slept[host-a]} 127.0.0.1:$host_b_metrics=${slept[host-b]}" \
  "$(pqn series 'histogram_count(sum by (instance) (multiprocess_sleep_seconds))' instance | xargs)"
# The default bucket factor 1.1 gives schema 3: a bucket spans a factor 2^(1/8) ≈ 1.0905, so a
# quantile lies within that factor of the observations in its bucket. A sleep lasts at least
# what was asked and, on a loaded machine, a few milliseconds more.
for q in "0.5 0.020" "0.9 0.100" "0.99 0.300"; do
  set -- $q
  lo=$(python3 -c "print($2 / 1.0905)") hi=$(python3 -c "print(($2 + 0.010) * 1.0905)")
  if got=$(pqn within "histogram_quantile($1, sum(multiprocess_sleep_seconds))" "$lo" "$hi"); then
    printf '  ok    %-62s %s s\n' "p$1 of the native histogram within [$lo, $hi]" "$got"
  else
    printf '  FAIL  %-62s %s s\n' "p$1 of the native histogram within [$lo, $hi]" "$got"
    failures=$((failures + 1))
  fi
done
native_log_errors=$(grep -E 'Scrape failed|Append failed|Error on ingesting|level=error|level=warn component="scrape manager"' \
  "$tmp/prometheus-native.log" || true)
check_eq "scrape or ingestion errors in the native Prometheus' log" 0 \
  "$(printf '%s' "$native_log_errors" | grep -c . || true)"
[ -z "$native_log_errors" ] || printf '%s\n' "$native_log_errors" | head -n 20
echo "  the dashboard's native-histogram panel, on the native-histogram Prometheus:"
if ! pqn dashboard-native examples/grafana/promtrack-dashboard.json \
  'job=.+' 'instance=.+' '__rate_interval=1m' '__interval=15s' '__range=5m' \
  'native_histogram=multiprocess_sleep_seconds'; then
  failures=$((failures + 1))
fi

step "summary"
printf 'sent (tracked): host A %s, host B %s, quickstart %s = %s, of them %s 404s; untracked /healthz: %s\n' \
  "${sent[host-a]}" "${sent[host-b]}" "${sent[quickstart]}" "$total_sent" "$total_404" "$untracked"
printf 'Prometheus:     sum(axum_http_request_total) = %s; p90 = %s s; batch: %s\n' \
  "$(pq value 'sum(axum_http_request_total)')" "${p90:-?}" \
  "$(pq value 'batch_records_processed_total{job="promtrack_batch",instance="batch-1"}')"
printf 'time: %ss after the build (%ss in all)\n' "$((SECONDS - build_done))" "$((SECONDS - started))"
if [ "$failures" != 0 ]; then
  fail "$failures check(s) failed"
fi
echo "E2E OK"
