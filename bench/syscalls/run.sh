#!/usr/bin/env bash
# Syscall census (issue 17): system calls per new TLS connection and per
# kept-alive request for meshgate, HAProxy, sniproxy and nginx (stream), from
# `strace -c -f` attached to each proxy for exactly the measured interval.
# Same backends and proxy configs as bench/compare (its bench.py is imported).
#
#   bench/syscalls/run.sh                       meshgate from $BUILD_DIR/meshgate (built if needed)
#   MESHGATE=/path/to/meshgate bench/syscalls/run.sh     another meshgate binary
#   MESHGATE_ARGS="--some-flag x" bench/syscalls/run.sh  extra meshgate arguments
#   bench/syscalls/run.sh --contenders meshgate,haproxy --conns 1000 --requests 10000
#
# Prints Markdown tables (calls per connection / per request) and writes them,
# with the raw counts as JSON, to $BUILD_DIR/bench-syscalls/. About 2 min on
# 2 cores; --conns/--requests/--detail-conns trade time for precision (-h).
# Env: BUILD_DIR (default build), MESHGATE, BENCH_PORT_BASE (default 22400;
# ~15 ports above it are used), KEEP_WORK=1 keeps configs, logs and strace output.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
COMMAND="bench/syscalls/run.sh"
if [ -n "${MESHGATE_ARGS:-}" ]; then COMMAND="MESHGATE_ARGS=$(printf %q "$MESHGATE_ARGS") $COMMAND"; fi
if [ -n "${MESHGATE:-}" ]; then COMMAND="MESHGATE=$MESHGATE $COMMAND"; fi
if (($#)); then COMMAND+=$(printf ' %q' "$@"); fi
BUILD_DIR=${BUILD_DIR:-build}
case "${1:-}" in -h|--help) sed -n '2,16p' "$0"; python3 bench/syscalls/census.py --help | sed -n '/^options/,$p'; exit 0 ;; esac

command -v strace >/dev/null || { echo "syscalls: strace is not installed (apt-get install strace)" >&2; exit 1; }
bash bench/compare/install.sh

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
targets=(byte_sink)
[ -n "${MESHGATE:-}" ] || targets+=(meshgate)
if ! out=$(cmake --build "$BUILD_DIR" -j2 --target "${targets[@]}" 2>&1); then
  echo "$out" >&2
  exit 1
fi
BUILD_ABS=$(cd "$BUILD_DIR" && pwd)
mg_args=()
if [ -n "${MESHGATE:-}" ]; then
  [ -x "$MESHGATE" ] || { echo "syscalls: MESHGATE=$MESHGATE is not an executable" >&2; exit 1; }
  mg_args=(--meshgate "$(cd "$(dirname "$MESHGATE")" && pwd)/$(basename "$MESHGATE")")
fi
ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/meshgate-syscalls.XXXXXX)
cleanup() {
  local rc=$?
  # census.py stops what it started; this is the backstop if it died. Every
  # process it started leads its own process group, recorded in $WORK/pids.
  for f in "$WORK"/pids/*.pid; do
    [ -e "$f" ] || continue
    kill -KILL -- "-$(cat "$f")" 2>/dev/null || true
  done
  if [ "${KEEP_WORK:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
    echo "syscalls: configs, logs and strace output kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT

mkdir -p "$BUILD_ABS/bench-syscalls"
python3 -B "$REPO/bench/syscalls/census.py" --work "$WORK" --build "$BUILD_ABS" "${mg_args[@]}" \
  --out "$BUILD_ABS/bench-syscalls/tables.md" --json "$BUILD_ABS/bench-syscalls/counts.json" \
  --command "$COMMAND" "$@" &
pid=$!
stop() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; exit "$1"; }
trap 'stop 130' INT
trap 'stop 143' TERM
wait "$pid"
