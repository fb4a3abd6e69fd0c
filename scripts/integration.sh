#!/usr/bin/env bash
# Runs every integration-test binary of the workspace (`tests/*.rs`, `cli/tests/*.rs`, whatever
# is added later), several at once: most of their time is spent waiting on `wrangler dev` and
# the network, not on the CPU, so running them one after another (as `cargo test --test '*'`
# does) wastes the machine.
#
# Builds them once (cargo's JSON messages name each binary and its package), starts the slowest
# first (by the durations of the last run, kept in target/), at most $JOBS at a time (default 3),
# keeps each binary's output and prints it whole when the binary ends, and closes with
# `N passed, N failed` summed over all binaries. Each binary gets its own $TMPDIR, and a Worker's
# directory (`r2mpu-test-*`, hundreds of MB of local R2) left in it once the binary has exited
# fails the run: tests must clean up after themselves, or every CI run fills the disk.
# Exits non-zero if any test or binary failed.
# Arguments are passed to every binary (a test name filter, `--nocapture`, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=${JOBS:-3}
times=target/integration-durations.tsv
logs=$(mktemp -d -t r2mpu-integration-XXXXXX)
trap 'rm -rf "$logs"' EXIT

# Every binary builds the Worker (and the fault-injection variant) on first use; do it once
# here, not three times at once.
scripts/build.sh
scripts/build.sh faults

# One `executable<TAB>package directory` per integration-test binary.
cargo test --workspace --test '*' --no-run --message-format=json-render-diagnostics >"$logs/build.json"
mapfile -t binaries < <(
  jq -r 'select(.reason == "compiler-artifact" and .profile.test and (.target.kind | index("test")))
         | "\(.executable)\t\(.manifest_path | sub("/Cargo.toml$"; ""))"' "$logs/build.json"
)
[ ${#binaries[@]} -gt 0 ] || { echo "integration: no test binaries found" >&2; exit 1; }

# A binary's name: its test target, prefixed by its package's folder outside the root package
# (`tests/operate.rs` is `operate`, `cli/tests/operate.rs` is `cli-operate`).
name_of() {
  local name
  name=$(basename "$1" | sed 's/-[0-9a-f]*$//')
  if [ "$2" = "$PWD" ]; then echo "$name"; else echo "$(basename "$2")-$name"; fi
}
last_duration() { [ -f "$times" ] && awk -F'\t' -v n="$1" '$1 == n { print $2 }' "$times" | tail -1 || true; }

# Slowest first; a binary never timed before counts as the slowest.
mapfile -t binaries < <(
  for line in "${binaries[@]}"; do
    took=$(last_duration "$(name_of "${line%%$'\t'*}" "${line#*$'\t'}")")
    printf '%s\t%s\n' "${took:-999999}" "$line"
  done | sort -t$'\t' -k1,1nr | cut -f2-
)

declare -A started=() pids=()
run_one() {
  local exe=$1 dir=$2 name
  name=$(name_of "$exe" "$dir")
  mkdir -p "$logs/tmp/$name"
  (cd "$dir" && TMPDIR="$logs/tmp/$name" exec "$exe" "${@:3}") >"$logs/$name.log" 2>&1
}

finish() {
  # Reaps one finished binary (whichever ends first) and prints its output whole.
  local pid status=0 name
  wait -n -p pid || status=$?
  name=${pids[$pid]}
  unset "pids[$pid]"
  local took=$(($(date +%s) - started[$name]))
  printf '%s\t%s\n' "$name" "$took" >>"$logs/durations.tsv"
  echo "==== $name (${took}s, exit $status) ===="
  cat "$logs/$name.log"
  local left
  left=$(find "$logs/tmp/$name" -mindepth 1 -maxdepth 1 -name 'r2mpu-test-*' | wc -l)
  if [ "$left" -gt 0 ]; then
    echo "$name left $left Worker director(ies) behind in its TMPDIR"
    status=1
  fi
  [ "$status" -eq 0 ] || echo "$name" >>"$logs/failed-binaries"
}

stop_all() {
  for pid in "${!pids[@]}"; do kill -- "$pid" 2>/dev/null || true; done
  exit 130
}
trap stop_all INT TERM

for line in "${binaries[@]}"; do
  exe=${line%%$'\t'*}
  dir=${line#*$'\t'}
  while [ ${#pids[@]} -ge "$JOBS" ]; do finish; done
  name=$(name_of "$exe" "$dir")
  started[$name]=$(date +%s)
  run_one "$exe" "$dir" "$@" &
  pids[$!]=$name
done
while [ ${#pids[@]} -gt 0 ]; do finish; done

# Only a full run's durations say which binaries are slow.
[ $# -gt 0 ] || cp "$logs/durations.tsv" "$times"

# Sum libtest's `test result: ... N passed; M failed; ...` lines over every binary.
read -r passed failed < <(
  cat "$logs"/*.log | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed;.*/\1 \2/p' |
    awk '{ p += $1; f += $2 } END { print p + 0, f + 0 }'
)
echo "$passed passed, $failed failed"
if [ -f "$logs/failed-binaries" ]; then
  echo "failing binaries: $(tr '\n' ' ' <"$logs/failed-binaries")" >&2
  exit 1
fi
