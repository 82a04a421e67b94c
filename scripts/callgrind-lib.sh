# Shared by scripts/callgrind-*.sh (sourced, not run): builds one release binary, counts the
# instructions of a run of it under callgrind, and the cost of one iteration as the difference
# between a run of N and one of 2N iterations divided by N, so start-up and teardown cancel out.
# Instruction counts do not depend on what else the machine is doing; they do not show what costs
# time beyond instructions (atomics, cache misses, dependent loads).

# callgrind_init <binary under target/release> <cargo build arguments…>
callgrind_init() {
  command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install -y valgrind" >&2; exit 1; }
  local binary=$1 target
  shift
  cargo build --release -q "$@"
  target=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  CALLGRIND_BIN="$target/release/$binary"
  CALLGRIND_TMP=$(mktemp -d)
  trap 'rm -rf "$CALLGRIND_TMP"' EXIT
}

# callgrind_instructions <arguments…>: the total instructions of one run of the binary.
callgrind_instructions() {
  valgrind --tool=callgrind --callgrind-out-file="$CALLGRIND_TMP/out" "$CALLGRIND_BIN" "$@" \
    2>"$CALLGRIND_TMP/log"
  awk '/Collected :/ {print $NF}' "$CALLGRIND_TMP/log" | tail -1
}

# callgrind_per_iteration <decimals> <N> <arguments…>: instructions per iteration, the binary
# taking its iteration count after the arguments; 0 decimals prints a whole number (rounded down).
callgrind_per_iteration() {
  local decimals=$1 n=$2 one two
  shift 2
  one=$(callgrind_instructions "$@" "$n")
  two=$(callgrind_instructions "$@" $((2 * n)))
  python3 -c "d = $decimals; per = ($two - $one) / $n; print(round(per, d) if d else ($two - $one) // $n)"
}
