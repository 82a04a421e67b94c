#!/usr/bin/env bash
# Soundness of the unsafe core (issue 10), with tools made for it:
#  1. Miri over the unit tests of the modules that hold `unsafe` (the series table, keys, cells,
#     a histogram's stripes, families (their records typed and type-erased, every metric kind's
#     shape: family::tests::every_kind_is_created_scraped_and_freed_through_the_erased_records),
#     declarations, exemplar slots, the layer's series handles,
#     the scrape's word-at-a-time line writer,
#     the multiprocess writer and reader).
#     Tests that need FFI Miri cannot run (mmap, flock, fallocate of a real file) are
#     `#[cfg_attr(miri, ignore = "…")]` and show as ignored. Then the concurrent tests again
#     under many scheduler seeds.
#  2. loom over the `loom_*` models: the table's insert / grow / publish against a reader,
#     the multiprocess file's append-and-publish against a reader, the exemplar slot's
#     sequence lock against a reader and a second writer, and a contended histogram's stripes
#     claimed once and published whole (see src/sync.rs).
# Any finding fails (non-zero exit). If Miri cannot be installed, prints one line starting
# with "SOUNDNESS SKIPPED:" and exits 0 (loom needs only stable and runs regardless).
# Caps: SOUNDNESS_MIRI_SECONDS (default 1800) and SOUNDNESS_LOOM_SECONDS (default 900),
# build included; exceeding one is a failure. Prints each part's time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

miri_cap=${SOUNDNESS_MIRI_SECONDS:-1800}
loom_cap=${SOUNDNESS_LOOM_SECONDS:-900}
# Unit-test path filters: every module with `unsafe` whose tests Miri can run. (The other
# multiprocess modules hold no `unsafe` but FFI calls, or none; `multiprocess_store/mode.rs` hands out
# `Cells::external`, covered in cell.rs over a heap buffer.)
miri_filters=(cell:: key:: family:: declare:: exemplar:: exponential:: layer::families:: layer::request:: layer::service:: multiprocess_store::file:: multiprocess_store::read:: metric::stripes:: metric::histogram:: metric::native:: expose::line::)
# 20 000 random keys through code without `unsafe`: hours under Miri, nothing to find.
miri_skips=(--skip multiprocess_store::read::tests::the_fast_key_check_agrees_with_the_plain_one)
# The tests with threads, re-run under several seeds of Miri's scheduler and weak memory.
seeded_filters=(
  family::table::tests::readers_on_other_threads_see_published_entries
  family::tests::concurrent_creation_makes_one_series_per_label_set
  cell::tests::concurrent_float_adds_lose_nothing
  declare::tests::a_registered_site_hands_out_its_family_series_on_every_thread
  exemplar::tests::concurrent_writers_and_a_reader_never_see_a_torn_slot
  metric::histogram::tests::concurrent_observations_are_all_counted_striped_or_not
)
seeds=${SOUNDNESS_MIRI_SEEDS:-8}
# The multiprocess mode must not switch on from the caller's environment: it would map files.
unset PROMETHEUS_MULTIPROC_DIR prometheus_multiproc_dir

timed() { # LABEL CAP COMMAND...
  local label=$1 cap=$2 start=$SECONDS rc=0
  shift 2
  echo "--- $label"
  timeout "$cap" "$@" || rc=$?
  echo "--- $label: $((SECONDS - start)) s (exit $rc)"
  if [ "$rc" = 124 ]; then
    echo "SOUNDNESS FAILED: $label exceeded its ${cap} s cap" >&2
  fi
  return "$rc"
}

miri_ok=1
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  echo "installing Miri: rustup component add miri rust-src --toolchain nightly"
  if ! { rustup toolchain list | grep -q '^nightly' ||
    rustup toolchain install nightly --profile minimal >/dev/null 2>&1; } ||
    ! rustup component add miri rust-src --toolchain nightly >/dev/null 2>&1 ||
    ! cargo +nightly miri --version >/dev/null 2>&1; then
    miri_ok=0
  fi
fi

started=$SECONDS
if [ "$miri_ok" = 1 ]; then
  cargo +nightly miri --version
  # Isolation off: series record their creation time (clock_gettime) and the multiprocess
  # tests read /proc. Miri's own checks (Stacked Borrows, data races, weak memory, leaks) stay on.
  export MIRIFLAGS="-Zmiri-disable-isolation"
  miri_deadline=$((SECONDS + miri_cap))
  timed "Miri: unit tests of the unsafe modules" "$miri_cap" \
    cargo +nightly miri test -p promtrack --lib -- "${miri_filters[@]}" "${miri_skips[@]}"
  left=$((miri_deadline - SECONDS))
  [ "$left" -gt 0 ] || left=1
  MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-many-seeds=0..$seeds" \
    timed "Miri: the concurrent tests under $seeds scheduler seeds" "$left" \
    cargo +nightly miri test -p promtrack --lib -- --exact "${seeded_filters[@]}"
else
  echo "SOUNDNESS SKIPPED: miri could not be installed (rustup component add miri rust-src --toolchain nightly failed); the loom models still run"
fi

# loom: a build of its own (its cfg changes every crate's flags), optimised because the
# models run many thousands of interleavings.
LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-3} RUSTFLAGS="--cfg promtrack_loom" \
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom" \
  timed "loom: the table, file publication, exemplar slot and stripes models" "$loom_cap" \
  cargo test -p promtrack --lib --release -- loom_

echo "soundness: all checks passed in $((SECONDS - started)) s"
