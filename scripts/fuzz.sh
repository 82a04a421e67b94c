#!/usr/bin/env bash
# Runs each cargo-fuzz target for N seconds (default 60) and prints libFuzzer's figures.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz if it is
# missing. CI does not run this: it replays the committed corpora instead
# (tests/tests/fuzz_corpus.rs, part of `cargo test --workspace`).
#
#   scripts/fuzz.sh --merge [target...]
#
# Each run starts from the committed corpus fuzz/corpus/<target> and writes what it finds to
# fuzz/work/<target> (not committed). A crash stops that target, leaves the input in
# fuzz/artifacts/<target>/ and makes the script exit 1 after the others ran. `--merge` then
# adds to the committed corpus only the found inputs that reach code it does not (libFuzzer's
# -merge=1 on edges alone, -use_counters=0, which keeps the corpus small); to keep a crash,
# copy its file into fuzz/corpus/<target>/ under a name saying what it was (the replay test
# then fails until the bug is fixed).
#
# libFuzzer's limits: an input taking over 10 s is a hang, one allocation over 256 MB or a
# resident set over 2 GB is a crash (a length field claiming 4 GB must never be believed).
set -euo pipefail
cd "$(dirname "$0")/.."

merge=false
if [ "${1:-}" = --merge ]; then
  merge=true
  shift
  secs=0
else
  secs=${1:-60}
  shift || true
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(multiprocess_file macro_input label_value)

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "scripts/fuzz.sh needs a nightly toolchain: rustup toolchain install nightly" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

if $merge; then
  for t in "${targets[@]}"; do
    [ -d "fuzz/work/$t" ] || continue
    before=$(ls "fuzz/corpus/$t" | wc -l)
    cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "fuzz/work/$t" -- \
      -merge=1 -use_counters=0 -malloc_limit_mb=256 >"fuzz/work/$t.merge.log" 2>&1
    echo "$t: $before -> $(ls "fuzz/corpus/$t" | wc -l) files in fuzz/corpus/$t"
  done
  exit 0
fi

status=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/work/$t"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=("-dict=fuzz/dict/$t.dict")
  log="fuzz/work/$t.log"
  echo "=== $t: ${secs}s" >&2
  if cargo +nightly fuzz run "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -malloc_limit_mb=256 -rss_limit_mb=2048 \
    -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log and fuzz/artifacts/$t/)"
    status=1
  fi
  # A crashed run leaves its scratch directory (the reader target's; named by pid).
  for d in /dev/shm/promtrack-fuzz-* "${TMPDIR:-/tmp}"/promtrack-fuzz-*; do
    [ -d "$d" ] || continue
    pid=${d##*/promtrack-fuzz-}
    pid=${pid%%-*}
    kill -0 "$pid" 2>/dev/null || rm -rf "$d"
  done
  # libFuzzer's last status line (`#N DONE cov: .. ft: .. corp: N/size ..`) and final stats.
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
  cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | tail -1 || true)
  ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | tail -1 || true)
  corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$last" | tail -1 || true)
  summary+=("$(printf '%-18s %s: execs %s, %s exec/s, %s, %s, %s, peak rss %s MB' \
    "$t" "$result" "${execs:-?}" "${rate:-?}" "${cov:-cov: ?}" "${ft:-ft: ?}" "${corp:-corp: ?}" "${rss:-?}")")
  echo "${summary[-1]}" >&2
done

echo
echo "fuzz figures (${secs}s per target, $(nproc) cores, $(cargo +nightly fuzz --version 2>/dev/null)):"
printf '  %s\n' "${summary[@]}"
exit $status
