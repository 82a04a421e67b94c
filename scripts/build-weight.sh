#!/usr/bin/env bash
# The weight a user's build carries: builds three minimal axum 0.8 apps (benches/build-weight/:
# bare axum; + axum-prometheus 0.10; + promtrack with its layer, `metrics_router()` and one
# `#[histogram]`), each in a fresh target directory, and prints per app the clean debug build
# time, the clean release build time, the number of crates compiled and the release binary's size.
#
#   scripts/build-weight.sh               # 2 builds of each (app, profile), medians
#   scripts/build-weight.sh --runs 1      # one build each (what a busy machine can afford)
#   scripts/build-weight.sh --app promtrack --runs 1   # one app only (repeatable option)
#
# Downloads are excluded: each app is copied to the scratch directory
# (<cargo target dir>/build-weight/, `BUILD_WEIGHT_DIR` to change it), its `Cargo.lock` seeded from
# the workspace's so that shared dependencies resolve to the versions the workspace tests, `cargo
# fetch` run, and only then are the builds timed, with `--offline`. Every build starts from an
# empty target directory (deleted again afterwards: a release build of such an app is a few hundred
# MB); the runs alternate between the apps so that a change in the machine's load spreads over all
# of them. Times are wall-clock seconds of `cargo build` on however many cores cargo uses by
# default: on a shared machine they move with its load (the script prints the load average), so
# compare the apps within one run of this script. "crates" counts the `Compiling` lines of the
# release build: every package compiled, build dependencies and proc-macros included, the app
# itself too. The binary is `target/release/<app>` as cargo leaves it (release profile defaults).
#
# The last line is `result: runs=N <app>.debug_s=… <app>.release_s=… <app>.crates=…
# <app>.binary_bytes=… …` for scripts/benchmarks.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ALL_APPS=(bare axum-prometheus promtrack)
RUNS=2
APPS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS="${2:?--runs takes a number}"; shift 2 ;;
        --app) APPS+=("${2:?--app takes one of: ${ALL_APPS[*]}}"); shift 2 ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-weight.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "build-weight.sh: --runs takes a positive number, not '$RUNS'" >&2; exit 2; }
[[ ${#APPS[@]} -gt 0 ]] || APPS=("${ALL_APPS[@]}")
for app in "${APPS[@]}"; do
    [[ -d "$ROOT/benches/build-weight/$app" ]] || {
        echo "build-weight.sh: no app '$app' (apps: ${ALL_APPS[*]})" >&2; exit 2; }
done

if [[ -z "${BUILD_WEIGHT_DIR:-}" ]]; then
    target="${CARGO_TARGET_DIR:-$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')}"
    BUILD_WEIGHT_DIR="$target/build-weight"
fi
mkdir -p "$BUILD_WEIGHT_DIR"
SCRATCH="$(cd "$BUILD_WEIGHT_DIR" && pwd)"
# Only this script's own settings: a CARGO_TARGET_DIR or RUSTFLAGS from the caller would change
# what is measured.
unset CARGO_TARGET_DIR RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_INCREMENTAL RUSTC_WRAPPER
export CARGO_TERM_COLOR=never

echo "rustc: $(rustc --version); cores: $(nproc); load average at start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

# Copy each app and fetch its dependencies (the only step that may download).
for app in "${APPS[@]}"; do
    src="$SCRATCH/src/$app"
    rm -rf "$src"
    mkdir -p "$src"
    cp -R "$ROOT/benches/build-weight/$app/." "$src/"
    sed -i "s|path = \"../../../runtime\"|path = \"$ROOT/runtime\"|" "$src/Cargo.toml"
    cp "$ROOT/Cargo.lock" "$src/Cargo.lock"
    echo "fetching $app's dependencies" >&2
    cargo fetch --quiet --manifest-path "$src/Cargo.toml"
done

# One clean build: prints "seconds compiled_crates".
build() {
    local app="$1" profile="$2" tgt="$SCRATCH/target-$1-$2" log="$SCRATCH/$1-$2.log"
    rm -rf "$tgt"
    local flags=(--offline --manifest-path "$SCRATCH/src/$app/Cargo.toml")
    [[ "$profile" == release ]] && flags+=(--release)
    local start end
    start=$(date +%s.%N)
    if ! CARGO_TARGET_DIR="$tgt" cargo build "${flags[@]}" >"$log" 2>&1; then
        echo "build-weight.sh: the $profile build of $app failed; its output is in $log:" >&2
        tail -20 "$log" >&2
        exit 1
    fi
    end=$(date +%s.%N)
    local crates
    crates=$(grep -c '^ *Compiling ' "$log" || true)
    if [[ "$profile" == release ]]; then
        stat -c %s "$tgt/release/bw-$app" >"$SCRATCH/$app-binary"
    fi
    rm -rf "$tgt"
    echo "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}') $crates"
}

declare -A TIMES CRATES
for ((run = 1; run <= RUNS; run++)); do
    for app in "${APPS[@]}"; do
        for profile in debug release; do
            read -r seconds crates < <(build "$app" "$profile")
            printf '[run %d/%d] %-16s %-7s %6.1f s, %d crates compiled, load %s\n' "$run" "$RUNS" \
                "$app" "$profile" "$seconds" "$crates" "$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')" >&2
            TIMES[$app.$profile]+="$seconds "
            [[ "$profile" == release ]] && CRATES[$app]="$crates"
        done
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo
printf '%-16s %12s %14s %7s %15s\n' app "clean debug" "clean release" crates "release binary"
result="runs=$RUNS"
for app in "${APPS[@]}"; do
    debug=$(echo "${TIMES[$app.debug]}" | median)
    release=$(echo "${TIMES[$app.release]}" | median)
    bytes=$(cat "$SCRATCH/$app-binary")
    printf '%-16s %10.1f s %12.1f s %7d %12.2f MB\n' "$app" "$debug" "$release" "${CRATES[$app]}" \
        "$(awk -v b="$bytes" 'BEGIN {print b / 1e6}')"
    result+=" $app.debug_s=$(printf '%.1f' "$debug") $app.release_s=$(printf '%.1f' "$release")"
    result+=" $app.crates=${CRATES[$app]} $app.binary_bytes=$bytes"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
echo "result: $result"
