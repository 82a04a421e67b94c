#!/usr/bin/env python3
"""The observer and the judge of scripts/load-with-faults.sh (standard library only).

  load-with-faults.py monitor OUT METRICS_URL SUPERVISOR_PID METRICS_DIR STOP_FILE DEADLINE_S
      Scrapes METRICS_URL every 100 ms (each scrape's wall time measured with perf_counter,
      from connect to the last byte) into OUT/scrapes.jsonl, then the same URL in the protobuf
      format, whose native histograms it compares with the previous scrape's (see
      `native_decreases`), and every second samples the
      supervisor's VmRSS, its live worker processes and the directory's entries into
      OUT/samples.jsonl. When STOP_FILE appears (or DEADLINE_S passes) it takes one last
      scrape into OUT/final.json and exits.

  load-with-faults.py check OUT WRK_TOTALS_JSONL WORKERS CONNECTIONS KILLS BURSTS LOAD_S
      Prints the figures, checks them, exits 1 if any check fails. WRK_TOTALS_JSONL: one line
      per wrk run (the Lua script's totals): the main run first, then BURSTS runs of 2
      connections each.
"""

import json
import math
import os
import struct
import sys
import threading
import time
import urllib.request

SCRAPE_EVERY_S = 0.1
SAMPLE_EVERY_S = 1.0
SCRAPE_TIMEOUT_S = 2.0
COUNTER = "axum_http_request_total"
PROTOBUF = ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
            "encoding=delimited")


# --- native histograms in the protobuf exposition (a decoder of the few fields needed) -------

def _varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _zigzag(n):
    return (n >> 1) ^ -(n & 1)


def _fields(buf):
    """(field number, wire type, value) of a message: an int for varints, bytes otherwise."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield field, wire, value


def _double(b):
    return struct.unpack("<d", b)[0]


def _spans(spans, deltas):
    """{bucket index: count} from spans and delta-encoded counts."""
    out, idx, count, d = {}, 0, 0, iter(deltas)
    for offset, length in spans:
        idx += offset
        for _ in range(length):
            count += next(d)
            out[idx] = count
            idx += 1
    return out


def _histogram(buf):
    h = {"count": 0, "sum": 0.0, "schema": None, "zt": 0.0, "zero": 0,
         "pos": ([], []), "neg": ([], [])}
    for field, wire, v in _fields(buf):
        if field == 1:
            h["count"] = v
        elif field == 2:
            h["sum"] = _double(v)
        elif field == 5:
            h["schema"] = _zigzag(v)
        elif field == 6:
            h["zt"] = _double(v)
        elif field == 7:
            h["zero"] = v
        elif field in (9, 12):
            span = dict((f, x) for f, _, x in _fields(v))
            h["neg" if field == 9 else "pos"][0].append(
                (_zigzag(span.get(1, 0)), span.get(2, 0)))
        elif field in (10, 13):
            side = h["neg" if field == 10 else "pos"][1]
            if wire == 2:  # packed
                i = 0
                while i < len(v):
                    x, i = _varint(v, i)
                    side.append(_zigzag(x))
            else:
                side.append(_zigzag(v))
    if h["schema"] is None:
        return None  # a classic histogram
    return {"count": h["count"], "sum": h["sum"], "schema": h["schema"], "zt": h["zt"],
            "zero": h["zero"], "pos": _spans(*h["pos"]), "neg": _spans(*h["neg"])}


def parse_native(body):
    """{series (family name and labels): native histogram} of a delimited protobuf body."""
    out, i = {}, 0
    while i < len(body):
        n, i = _varint(body, i)
        fam, i = body[i:i + n], i + n
        name = ""
        for field, _, v in _fields(fam):
            if field == 1:
                name = v.decode()
            elif field == 4:
                labels, hist = [], None
                for f, _, x in _fields(v):
                    if f == 1:
                        pair = dict((g, y) for g, _, y in _fields(x))
                        labels.append(f'{pair.get(1, b"").decode()}="{pair.get(2, b"").decode()}"')
                    elif f == 7:
                        hist = _histogram(x)
                if hist is not None:
                    out[f"{name}{{{','.join(sorted(labels))}}}"] = hist
    return out


def _upper(i, schema):
    return 2.0 ** (i * 2.0 ** -schema)


def _reduce(h, schema):
    """`h` at a schema at or below its own: Prometheus' merge of 2^d buckets into one."""
    d = h["schema"] - schema
    out = {"count": h["count"], "sum": h["sum"], "schema": schema, "zt": h["zt"],
           "zero": h["zero"], "pos": {}, "neg": {}}
    for side in ("pos", "neg"):
        for i, c in h[side].items():
            j = ((i - 1) >> d) + 1
            out[side][j] = out[side].get(j, 0) + c
    return out


def _widen(h, t):
    """Moves every bucket reaching down to `t` or below into the zero bucket, growing `t` to the
    upper bound of a bucket it falls inside; returns the threshold reached."""
    moved = True
    while moved:
        moved = False
        for side in ("pos", "neg"):
            for i in sorted(h[side]):
                if _upper(i - 1, h["schema"]) >= t:
                    break
                t = max(t, _upper(i, h["schema"]))
                h["zero"] += h[side].pop(i)
                moved = True
    h["zt"] = t
    return t


def native_decreases(before, after):
    """What went down from `before` to `after` (two scrapes' native histograms of one series),
    once both are reduced to the lower schema and widened to the wider zero threshold, as
    Prometheus compares them: the count, the sum, the zero bucket or any bucket."""
    schema = min(before["schema"], after["schema"])
    a, b = _reduce(before, schema), _reduce(after, schema)
    t = max(a["zt"], b["zt"])
    while True:
        ta, tb = _widen(a, t), _widen(b, t)
        if ta == tb:
            break
        t = max(ta, tb)
    out = [f"{k} {a[k]!r} -> {b[k]!r}" for k in ("count", "sum", "zero") if b[k] < a[k]]
    for side in ("pos", "neg"):
        out += [f"{side}[{i}] {c} -> {b[side].get(i, 0)}" for i, c in sorted(a[side].items())
                if b[side].get(i, 0) < c]
    return out


def parse(text):
    """({metric name: sum of its series' values}, {sample line's name and labels: value} for
    the samples that may only grow: every sample of a counter, histogram or summary family but
    summary quantiles) for a text-format exposition."""
    sums, growing, kinds = {}, {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            kinds[family] = kind
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        name = key.split("{", 1)[0]
        value = float(value)
        sums[name] = sums.get(name, 0.0) + value
        family = name
        for suffix in ("_bucket", "_count", "_sum"):
            if name.endswith(suffix) and name[: -len(suffix)] in kinds:
                family = name[: -len(suffix)]
        if kinds.get(family) in ("counter", "histogram", "summary") and "quantile=" not in key:
            growing[key] = value
    return sums, growing


def scrape(url):
    """(ok, wall seconds, sums or error text)."""
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as r:
            body = r.read().decode()
            status = r.status
        elapsed = time.perf_counter() - start
        if status != 200:
            return False, elapsed, f"HTTP {status}"
        return True, elapsed, parse(body)
    except Exception as e:  # any failure is a failed scrape, reported as such
        return False, time.perf_counter() - start, f"{type(e).__name__}: {e}"


def scrape_native(url):
    """{series: native histogram} of a protobuf scrape, or the error text."""
    try:
        req = urllib.request.Request(url, headers={"Accept": PROTOBUF})
        with urllib.request.urlopen(req, timeout=SCRAPE_TIMEOUT_S) as r:
            body = r.read()
            kind = r.headers.get("Content-Type", "")
        if not kind.startswith("application/vnd.google.protobuf"):
            return f"answered {kind!r}, not protobuf"
        return parse_native(body)
    except Exception as e:  # reported, and failed by the check
        return f"{type(e).__name__}: {e}"


def live_workers(sup):
    """Pids of the supervisor's children that are not zombies."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == sup and fields[0] != "Z":
            pids.append(int(entry))
    return sorted(pids)


def rss_kb(sup):
    """The supervisor's VmRSS, or -1 if it is gone (the scrapes then fail and say so)."""
    try:
        with open(f"/proc/{sup}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def monitor(out, url, sup, metrics_dir, stop_file, deadline_s):
    sup = int(sup)
    deadline = time.monotonic() + float(deadline_s)
    t0 = time.monotonic()
    stop = threading.Event()

    def sampler():
        with open(os.path.join(out, "samples.jsonl"), "w") as f:
            while not stop.is_set():
                tick = time.monotonic()
                try:
                    files = sorted(os.listdir(metrics_dir))
                except OSError as e:
                    files = [f"<cannot list: {e}>"]
                sample = {
                    "t": round(tick - t0, 3),
                    "rss_kb": rss_kb(sup),
                    "live": live_workers(sup),
                    "files": files,
                }
                f.write(json.dumps(sample) + "\n")
                f.flush()
                stop.wait(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - tick)))

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    previous = None  # the last successful scrape's growing samples
    previous_native = None  # the last protobuf scrape's native histograms
    with open(os.path.join(out, "scrapes.jsonl"), "w") as f:
        next_at = time.monotonic()
        while not os.path.exists(stop_file) and time.monotonic() < deadline:
            ok, wall, result = scrape(url)
            rec = {"t": round(next_at - t0, 3), "ok": ok, "ms": round(wall * 1000, 3)}
            if ok:
                sums, growing = result
                rec["total"] = sums.get(COUNTER, 0.0)
                if previous is not None:
                    # Any sample of a counter, histogram or summary that went down, and any
                    # such series of the workers (the `axum_` and `multiprocess_` families; a
                    # `process_*` series goes with its pid) that vanished.
                    rec["back"] = [[k, v, growing[k]] for k, v in previous.items()
                                   if k in growing and growing[k] < v]
                    rec["vanished"] = [k for k in previous if k not in growing
                                       and k.startswith(("axum_", "multiprocess_"))]
                previous = growing
            else:
                rec["error"] = result
            native = scrape_native(url)
            if isinstance(native, str):
                rec["native_error"] = native
            else:
                rec["native"] = {k: [h["schema"], h["zt"], h["count"]] for k, h in native.items()}
                if previous_native is not None:
                    rec["native_back"] = [[k, d] for k, h in native.items()
                                          if k in previous_native
                                          for d in native_decreases(previous_native[k], h)]
                    rec["native_vanished"] = [k for k in previous_native if k not in native]
                previous_native = native
            f.write(json.dumps(rec) + "\n")
            next_at += SCRAPE_EVERY_S
            # A slow scrape delays the next one; it never makes two run at once.
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic())
    stop.set()
    th.join()
    ok, wall, result = scrape(url)
    final = {"ok": ok, "ms": round(wall * 1000, 3)}
    final.update({"sums": result[0]} if ok else {"error": result})
    final["live"] = live_workers(sup)
    final["files"] = sorted(os.listdir(metrics_dir))
    with open(os.path.join(out, "final.json"), "w") as f:
        json.dump(final, f)


def percentile(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def check(out, wrk_jsonl, workers, connections, kills, bursts, load_s):
    workers, connections, kills, bursts = int(workers), int(connections), int(kills), int(bursts)
    load_s = float(load_s)
    # Warm-up: the first 10 s (a quarter of shorter runs), by when every path has been
    # requested, scraped and killed through.
    warmup_s = 10.0 if load_s >= 40 else load_s / 4
    with open(wrk_jsonl) as f:
        runs = [json.loads(line) for line in f]
    main = runs[0]
    with open(os.path.join(out, "scrapes.jsonl")) as f:
        scrapes = [json.loads(line) for line in f]
    with open(os.path.join(out, "samples.jsonl")) as f:
        samples = [json.loads(line) for line in f]
    with open(os.path.join(out, "final.json")) as f:
        final = json.load(f)

    failures = []

    def expect(ok, what):
        print(f"  [{'ok' if ok else 'FAIL'}] {what}")
        if not ok:
            failures.append(what)

    print("wrk: completed {completed}, sent {sent}; errors connect {connect}, read {read}, "
          "write {write}, timeout {timeout}, status (non-2xx/3xx, also completed) {status}; "
          "client latency p99 {p99:.1f} ms; {rps:.0f} req/s".format(
              p99=main["latency_p99_us"] / 1000,
              rps=main["completed"] / (main["duration_us"] / 1e6), **main))
    # The idle bursts' requests are counted too: add them up.
    w = {k: sum(r[k] for r in runs) for k in ("completed", "sent", "connect", "read", "write",
                                              "status", "timeout")}
    print(f"   and {len(runs) - 1} idle bursts: completed {w['completed'] - main['completed']}, "
          f"sent {w['sent'] - main['sent']}")
    expect(len(runs) == bursts + 1, f"wrk reported {len(runs)} runs, {bursts + 1} expected")

    # 1. Nothing lost, nothing invented.
    print("requests:")
    expect(final["ok"], f"the final scrape succeeded ({final.get('error', 'ok')})")
    counted = int(final["sums"].get(COUNTER, 0)) if final["ok"] else -1
    completed, sent = w["completed"], w["sent"]
    socket_errors = w["connect"] + w["read"] + w["write"]
    unanswered = sent - completed
    print(f"  counter {counted}; counter - completed = {counted - completed}; "
          f"sent - completed = {unanswered} (wrk socket errors {socket_errors}, "
          f"timeouts {w['timeout']}; {kills} workers killed; {connections} connections)")
    # Every response wrk parsed was counted, 404s included: the layer records before the
    # response leaves the worker, and a SIGKILL does not undo a store to the shared mapping.
    expect(completed <= counted, f"completed {completed} <= counter {counted}")
    # Nothing counted that was not sent. `sent - completed` are the requests that got no
    # answer: those on a connection a killed worker dropped (wrk counts a reset as a read
    # error but reconnects without a word on a clean close, so its error figures alone
    # undercount them) and at most one per connection in flight when wrk stopped. wrk's
    # timeouts are not among them: wrk counts a slow response as completed AND as a timeout.
    literal = completed + socket_errors + w["timeout"]
    print(f"  (completed + wrk's socket errors + timeouts = {literal}: the counter is "
          f"{'within' if counted <= literal else f'{counted - literal} above'} it — wrk stops "
          f"with a request in flight on each connection, and a clean close is no error to it)")
    expect(counted <= sent,
           f"counter {counted} <= completed + unanswered (socket errors, silent closes, in "
           f"flight at the end) = sent {sent}")
    # ...and the unanswered are explained by the faults: each kill drops at most the
    # connections the worker held, plus one in flight per connection when wrk stopped (the
    # main run's, and each idle burst's 2).
    allowed = connections * (kills + 1) + 2 * bursts
    expect(unanswered <= allowed,
           f"unanswered {unanswered} <= connections x (kills + 1) + 2 x bursts = {allowed}")

    # 2. Counters never go backwards, across worker deaths and compactions: neither their sum
    # nor any one sample of a counter, histogram or summary (Prometheus takes any decrease
    # for a reset, and rate() then jumps), and no series of the workers vanishes.
    oks = [s for s in scrapes if s["ok"]]
    back = [(a, b) for a, b in zip(oks, oks[1:]) if b["total"] < a["total"]]
    print("scrapes:")
    for a, b in back[:5]:
        print(f"    went back at t={b['t']}s: {a['total']:.0f} -> {b['total']:.0f}")
    expect(not back, f"the counter's sum never went backwards over {len(oks)} consecutive "
                     f"scrapes ({len(back)} drops)")
    series_back = [(s["t"], *b) for s in oks for b in s.get("back", [])]
    for t, k, before, after in series_back[:5]:
        print(f"    t={t}s: {k} {before!r} -> {after!r}")
    expect(not series_back, f"no sample of a counter, histogram or summary went backwards "
                            f"({len(series_back)} decreases)")
    vanished = [(s["t"], k) for s in oks for k in s.get("vanished", [])]
    for t, k in vanished[:5]:
        print(f"    t={t}s: {k} vanished")
    expect(not vanished, f"no series of the workers vanished ({len(vanished)})")
    if final["ok"] and oks:
        expect(final["sums"].get(COUNTER, 0) >= oks[-1]["total"],
               "the final scrape is not below the last scrape of the run")

    # 2b. Native histograms (the protobuf scrapes): after reducing two consecutive scrapes of a
    # series to their common schema and zero threshold, no bucket, count or sum went down.
    natives = [s for s in scrapes if "native" in s]
    native_failed = [s for s in scrapes if "native_error" in s]
    for s in native_failed[:5]:
        print(f"    protobuf scrape failed at t={s['t']}s: {s['native_error']}")
    expect(not native_failed, f"no protobuf scrape failed ({len(native_failed)})")
    last = natives[-1]["native"] if natives else {}
    schemas = sorted({h[0] for s in natives for h in s["native"].values()})
    print(f"  {len(natives)} protobuf scrapes; native histograms at the end: "
          + ", ".join(f"{k} schema {h[0]} count {h[2]}" for k, h in sorted(last.items()))
          + f"; schemas seen {schemas}")
    expect(any(h[2] > 0 for h in last.values()),
           "the protobuf scrapes show a native histogram with observations")
    native_back = [(s["t"], k, d) for s in natives for k, d in s.get("native_back", [])]
    for t, k, d in native_back[:5]:
        print(f"    t={t}s: {k}: {d}")
    expect(not native_back, "no native bucket, count or sum went down between two scrapes, "
                            f"at their common schema and zero threshold ({len(native_back)})")
    native_vanished = [(s["t"], k) for s in natives for k in s.get("native_vanished", [])]
    expect(not native_vanished, f"no native histogram vanished ({len(native_vanished)})")

    # 3. Scrapes: none failed, p99 within 100 ms.
    failed = [s for s in scrapes if not s["ok"]]
    for s in failed[:5]:
        print(f"    failed at t={s['t']}s after {s['ms']} ms: {s['error']}")
    expect(not failed, f"no scrape failed ({len(failed)} of {len(scrapes)})")
    ms = [s["ms"] for s in scrapes]
    p50, p99, worst = percentile(ms, 50), percentile(ms, 99), max(ms)
    print(f"  {len(scrapes)} scrapes: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms")
    expect(p99 <= 100.0, f"scrape p99 {p99:.1f} ms <= 100 ms")

    # 4. The directory stays bounded: the live workers' files, archive.db and compact.lock.
    # The lock counts: it is a file of the directory like any other (empty, never growing),
    # and the store's own docs name these three kinds as what the directory holds.
    print("directory:")
    most = max(samples, key=lambda s: len(s["files"]))
    above = [len(s["files"]) > len(s["live"]) + 2 for s in samples]
    over = [s for s, a in zip(samples, above) if a]
    persistent = sum(1 for a, b in zip(above, above[1:]) if a and b)
    print(f"  {len(samples)} samples: most files {len(most['files'])} at t={most['t']}s "
          f"({', '.join(most['files'])}) with {len(most['live'])} live workers; "
          f"{len(over)} samples above live + 2")
    for s in over[:5]:
        print(f"    t={s['t']}s: {len(s['files'])} files for {len(s['live'])} live: "
              f"{', '.join(s['files'])}")
    # While the run goes on, a sample may catch one file in transit: a killed worker's file
    # before the next scrape (<= 100 ms) or its replacement folds it, a temporary name during
    # a rename; a sample races the worker list too. Never more than one, and never for long:
    # kills are 2 s apart or more and samples 1 s, so two samples in a row above live + 2
    # mean a file that stays.
    expect(len(most["files"]) <= workers + 3,
           f"at most workers + 3 = {workers + 3} files at every sample during the run")
    expect(persistent == 0, f"never above live + 2 in two samples in a row ({persistent} times)")
    live_end, files_end = len(final["live"]), len(final["files"])
    print(f"  at the end: {files_end} files ({', '.join(final['files'])}), "
          f"{live_end} live workers")
    expect(live_end == workers, f"all {workers} workers alive at the end ({live_end})")
    expect(files_end <= live_end + 2, f"{files_end} files <= live workers + 2 = {live_end + 2}")
    if final["ok"]:
        s = final["sums"]
        errors = s.get("promtrack_multiprocess_read_errors_total", 0)
        dropped = s.get("promtrack_multiprocess_dropped_total", 0)
        expect(errors == 0 and dropped == 0,
               f"no file skipped ({errors:.0f} read errors) and no series dropped ({dropped:.0f})")

    # 5. The supervisor's memory stays flat. Baseline: the largest RSS in the 10 s after the
    # warm-up. End: the largest RSS from 20 s before the load ended (the last third of short
    # runs) to the end of the idle kills. Allowed: 10 % plus 512 KiB of allocator noise (seen:
    # under 100 KiB). A leak of 3.5 KiB per scrape (10 a second) grows RSS by over 1 MiB in the
    # 30 s between the two windows of a 60-s run and fails this.
    print("memory:")
    rss = [(s["t"], s["rss_kb"]) for s in samples if s["rss_kb"] > 0]
    tail_s = min(20.0, load_s / 3)
    base = [kb for t, kb in rss if warmup_s <= t < warmup_s + 10]
    tail = [kb for t, kb in rss if t >= load_s - tail_s]
    if not base or not tail:
        expect(False, f"enough RSS samples ({len(rss)})")
    else:
        b, e = max(base), max(tail)
        limit = b * 1.10 + 512
        print(f"  supervisor VmRSS: first {rss[0][1]} KiB, baseline max {b} KiB "
              f"(t={warmup_s:.0f}..{warmup_s + 10:.0f} s), max from t={load_s - tail_s:.0f} s "
              f"to the end {e} KiB, overall max {max(kb for _, kb in rss)} KiB")
        expect(e <= limit, f"end max {e} KiB <= baseline x 1.10 + 512 = {limit:.0f} KiB")

    print("RESULT:", "PASS" if not failures else f"FAIL ({len(failures)} checks)")
    return 0 if not failures else 1


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "monitor":
        monitor(*args)
    elif cmd == "check":
        sys.exit(check(*args))
    else:
        sys.exit(f"unknown command {cmd!r}: use monitor or check")
