#!/usr/bin/env bash
# The rolling-deploy proof for the multiprocess file format (runtime/src/multiprocess_store/file.rs,
# "Extension records"): the reader of the last release before extension records, built from git,
# reads a directory of new files — native histogram state and exemplar slots attached — and keeps
# every counter, gauge and classic histogram total; the new reader reads that release's files.
#
# 1. Exports promtrack at $ROLLING_DEPLOY_BASE (default: 3ee8245, main before extension records;
#    .ci/run also runs c68a1f8, the last release writing the twin-window native state)
#    with `git archive` into a scratch directory, and builds a small reader/writer against it (a
#    debug build of promtrack with the `multiprocess` feature only, in the usual target directory,
#    so CI builds it once and caches the third-party crates it shares with the workspace).
# 2. Runs the runtime's ignored test `rolling_deploy_against_todays_reader`
#    (multiprocess_store/extension_tests.rs), which writes the new files with real worker
#    processes and asserts on both readers' totals; it finds the old binary in
#    PROMTRACK_OLD_READER.
#
# Why a script and not a tests/ integration test gated by tests/build.rs: the old reader is a
# second copy of the crate built from another commit; building it from a test would nest a cargo
# build inside `cargo test` (lock contention on the target directory), and the new files need
# the crate-private writer (extension records have no public API yet), which only the runtime's
# own unit tests reach.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
base=${ROLLING_DEPLOY_BASE:-3ee8245}
target=${CARGO_TARGET_DIR:-$repo/target}
work=$(mktemp -d "${TMPDIR:-/tmp}/promtrack-rolling.XXXXXX")
trap 'rm -rf "$work"' EXIT

if ! git cat-file -e "$base^{commit}" 2>/dev/null; then
  echo "rolling-deploy: commit $base is not in this clone (a shallow checkout?): fetch it with" \
    "'git fetch --unshallow' or set ROLLING_DEPLOY_BASE to a commit before extension records" >&2
  exit 1
fi
echo "today's reader: promtrack at $(git rev-parse --short "$base") ($(git log -1 --format=%s "$base" | cut -c1-60)…)"
mkdir -p "$work/old/reader/src"
git archive "$base" runtime macros Cargo.toml Cargo.lock | tar -x -C "$work/old"
# The old crates inherit their dependencies from the workspace manifest: keep it, with the
# reader as its only other member (and the lock file, so that the versions already built are
# the ones used).
python3 - "$work/old/Cargo.toml" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
s = re.sub(r"(?m)^members = .*$", 'members = ["runtime", "macros", "reader"]', s)
s = re.sub(r"(?m)^default-members = .*$", "", s)
s = re.sub(r"(?m)^exclude = .*$", "", s)
open(p, "w").write(s)
PY
cat >"$work/old/reader/Cargo.toml" <<EOF
[package]
name = "promtrack-rolling-reader"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
promtrack = { path = "../runtime", default-features = false, features = ["multiprocess"] }
EOF
cat >"$work/old/reader/src/main.rs" <<'EOF'
//! `read DIR`: the totals a reader of this promtrack shows for a multiprocess directory, one line
//! per series (the format of `totals` in multiprocess_store/extension_tests.rs).
//! `write-dead DIR` / `write-exit DIR`: a process of this promtrack writing a counter, a gauge
//! and a histogram into DIR, then aborting (its file left dead) or exiting (folded at exit).
use promtrack::model::Value;
use promtrack::multiprocess::DirCollector;
use promtrack::{Counter, Family, Gauge, GaugeMode, Histogram};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, dir) = (args[1].as_str(), &args[2]);
    if mode == "read" {
        let fams = DirCollector::new(dir).unwrap().compaction(false).collect_families();
        for f in fams.iter().filter(|f| !f.name.starts_with("promtrack_")) {
            for s in &f.series {
                let labels: Vec<String> = s.labels.iter().map(|(n, v)| format!("{n}={v}")).collect();
                let v = match &s.value {
                    Value::Counter(v) | Value::Gauge(v) => format!("{v:?}"),
                    Value::Histogram { bounds, counts, sum, .. }
                        if bounds.is_empty() || bounds[..] == [f64::MAX] =>
                    {
                        format!("{} {sum:?}", counts.iter().sum::<u64>())
                    }
                    Value::Histogram { counts, sum, .. } => format!("{counts:?} {sum:?}"),
                    Value::Summary { count, sum } => format!("{count} {sum:?}"),
                    other => format!("{other:?}"),
                };
                println!("{} {{{}}} {v}", f.name, labels.join(","));
            }
        }
        return;
    }
    promtrack::multiprocess::dir(dir).unwrap();
    let jobs = Family::<[String; 1], Counter>::new("old_jobs_total", "Jobs.").label_names(["k"]);
    jobs.with(&["a".to_string()]).inc_by(2.5);
    let g = Family::<(), Gauge>::new("old_g", "A gauge.").mode(GaugeMode::Sum);
    g.set(4.0);
    let h = Family::<(), Histogram>::new("old_seconds", "Latency.").buckets(&[0.1, 1.0]);
    h.observe(0.05);
    h.observe(3.0);
    if mode == "write-dead" {
        std::process::abort();
    }
}
EOF
echo "building it (debug, target directory $target)"
(cd "$work/old" && CARGO_TARGET_DIR=$target cargo build -q -p promtrack-rolling-reader)
old_reader=$target/debug/promtrack-rolling-reader
echo "the new side: cargo test -p promtrack --lib rolling_deploy_against_todays_reader -- --ignored"
ulimit -c 0 # the `write-dead` process aborts: no core file
# A release that reads native state (sub-tag 1 in its file.rs) but not this release's shared
# window shows a native-only histogram's count from the states it can read: the test allows that
# one difference for it (README, "Native histograms").
if git show "$base:runtime/src/multiprocess_store/file.rs" 2>/dev/null | grep -q EXT_NATIVE_SETTINGS; then
  export PROMTRACK_OLD_READER_KNOWS_NATIVE=1
  echo "that reader knows native state: a native-only histogram's count may be lower there"
fi
PROMTRACK_OLD_READER=$old_reader cargo test -q -p promtrack --lib --all-features \
  multiprocess_store::extension_tests::rolling_deploy_against_todays_reader -- --ignored --exact
echo "rolling deploy: today's reader keeps every total of new files, and the new reader reads today's files"
