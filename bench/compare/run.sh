#!/usr/bin/env bash
# Side-by-side benchmark of meshgate against HAProxy, nginx (stream), sniproxy
# and a direct connection, on 127.0.0.1 (issue 7). Installs the contenders and
# wrk if missing, builds meshgate and the bulk/idle tools, then hands over to
# bench.py, which starts everything, measures, and writes the report.
#
#   bench/compare/run.sh           full run (~10 min on 2 cores), writes bench/RESULTS.md
#   bench/compare/run.sh --short   CI mode (~1 min once built): prints the table,
#                                  fails only if meshgate does not work through
#                                  the path or its CPU per new connection is > 3x HAProxy's;
#                                  its last "summary" line has meshgate's proxy- and
#                                  machine-CPU ratios against HAProxy
#
# Env: BUILD_DIR (default build/, like scripts/build.sh), BENCH_BUILD_JOBS
# (default nproc), BENCH_PORT_BASE (default 21400; ~15 ports above it are used),
# KEEP_WORK=1 keeps the temp dir with configs and logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
COMMAND="bench/compare/run.sh"
if (($#)); then COMMAND+=$(printf ' %q' "$@"); fi
BUILD_DIR=${BUILD_DIR:-build}

# Arguments go to bench.py (--short, and for debugging --rounds N, --out FILE,
# --contenders a,b, --note TEXT; see bench.py --help).
case "${1:-}" in -h|--help) sed -n '2,18p' "$0"; exit 0 ;; esac

bash bench/compare/install.sh

# meshgate and the tools, from the normal CMake build (configured like scripts/build.sh).
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
if ! out=$(cmake --build "$BUILD_DIR" -j"${BENCH_BUILD_JOBS:-$(nproc)}" --target meshgate bulk_client byte_sink 2>&1); then
  echo "$out" >&2
  exit 1
fi
BUILD_ABS=$(cd "$BUILD_DIR" && pwd)

# 4,000 idle sessions need ~10,000 descriptors in one proxy: raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/meshgate-bench.XXXXXX)
cleanup() {
  local rc=$?
  # bench.py stops what it started; this is the backstop if it died. Every
  # process it started leads its own process group, recorded in $WORK/pids.
  for f in "$WORK"/pids/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  sleep 0.5
  for f in "$WORK"/pids/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  if [ "${KEEP_WORK:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
    echo "bench: configs and logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT

mkdir -p "$BUILD_ABS/bench-compare"
# In the background so that a signal reaches us at once (bash runs traps only
# between commands) and we can pass it on; bench.py stops its processes on TERM.
python3 "$REPO/bench/compare/bench.py" --work "$WORK" --build "$BUILD_ABS" \
  --json "$BUILD_ABS/bench-compare/results.json" --copy "$BUILD_ABS/bench-compare/report.md" \
  --command "$COMMAND" "$@" &
bench_pid=$!
stop_bench() { kill -TERM "$bench_pid" 2>/dev/null || true; wait "$bench_pid" 2>/dev/null || true; exit "$1"; }
trap 'stop_bench 130' INT
trap 'stop_bench 143' TERM
wait "$bench_pid"
