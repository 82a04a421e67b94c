#!/usr/bin/env bash
# Runs each cargo-fuzz target for N seconds (default 60) and prints libFuzzer's figures.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz if it is
# missing. CI does not run this: it replays the committed corpora instead
# (tests/tests/fuzz_corpus.rs, part of `cargo test --workspace`).
#
# Each run starts from the committed corpus fuzz/corpus/<target> and writes what it finds to
# fuzz/work/<target> (not committed). A crash stops that target, leaves the input in
# fuzz/artifacts/<target>/ and makes the script exit 1 after the others ran. To keep new
# coverage: copy fuzz/work/<target>/* into fuzz/corpus/<target>/ and minimize it with
# `cargo +nightly fuzz cmin <target>`; to keep a crash, add its file there too (the replay
# test then fails until the bug is fixed).
#
# libFuzzer's limits: an input taking over 10 s is a hang, one allocation over 256 MB or a
# resident set over 2 GB is a crash (a length field claiming 4 GB must never be believed).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
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

cargo +nightly fuzz build "${targets[@]:0:1}" >/dev/null 2>&1 || true # warm the shared deps
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
