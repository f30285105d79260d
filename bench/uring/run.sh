#!/usr/bin/env bash
# epoll-ET vs io_uring relay vs HAProxy in one run (issue 17, part 1), the
# numbers in bench/uring/README.md. Installs the contenders and wrk (through
# bench/compare/install.sh), builds uring_relay (needs liburing-dev) and
# byte_sink, then runs bench/uring/bench.py: kept-alive and Connection: close
# wrk workloads, 3 interleaved rounds, then syscall counts under strace.
#
#   bench/uring/run.sh [--rounds N] [--seconds S] [--no-strace]
# Env: BUILD_DIR (default build/), BENCH_PORT_BASE (default 21600; ~35 ports
# above it are used), KEEP_WORK=1 keeps the temp dir with configs and logs.
# Writes build/bench-uring/report.md and results.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
bash bench/compare/install.sh
if ! dpkg-query -W -f='${Status}' liburing-dev 2>/dev/null | grep -q "install ok installed"; then
  echo "bench/uring: liburing-dev is not installed (apt-get install liburing-dev)" >&2
  exit 1
fi
[ -f "$BUILD_DIR/build.ninja" ] || cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake "$BUILD_DIR" >/dev/null  # pick up liburing if it was installed after configuring
cmake --build "$BUILD_DIR" -j"${BENCH_BUILD_JOBS:-$(nproc)}" --target uring_relay byte_sink >/dev/null
BUILD_ABS=$(cd "$BUILD_DIR" && pwd)
ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/meshgate-uring-bench.XXXXXX)
cleanup() {
  local rc=$?
  for f in "$WORK"/pids/*.pid; do  # backstop: bench.py stops what it started
    [ -e "$f" ] && kill -TERM -- "-$(cat "$f")" 2>/dev/null || true
  done
  if [ "${KEEP_WORK:-0}" = 1 ] || [ "$rc" -ne 0 ]; then echo "bench: kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
mkdir -p "$BUILD_ABS/bench-uring"
python3 bench/uring/bench.py --work "$WORK" --build "$BUILD_ABS" \
  --out "$BUILD_ABS/bench-uring/report.md" --json "$BUILD_ABS/bench-uring/results.json" \
  --command "bench/uring/run.sh $*" "$@" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit 143' TERM INT
wait $pid
