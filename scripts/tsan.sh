#!/usr/bin/env bash
# The threaded tests under ThreadSanitizer: a separate build (build-tsan,
# GCC, MESHGATE_SANITIZE=thread on every target) of meshgate, meshgatectl
# and the test binaries below, whose tests then run under ctest. The tests
# that spawn meshgate/meshgatectl run the TSan binaries of build-tsan (found by
# $<TARGET_FILE:...>), so races inside the real gateway count too: its worker
# threads against the control thread (reloads, the health checker, the control
# and Kubernetes sources), the access-log thread, serve's DNS thread.
# halt_on_error: the first report ends that process with exitcode 66, and a
# report from a spawned child is also caught through log_path (below).
# Needs libtsan2 (with build-essential's g++; clang's runtime is
# libclang-rt-14-dev), from scripts/install-deps.sh.
# Usage: scripts/tsan.sh [extra ctest args]    TSAN_BUILD_DIR overrides build-tsan.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${TSAN_BUILD_DIR:-build-tsan}
JOBS=${JOBS:-$(nproc)}

# The binaries (ctest names below say which tests of each run).
TARGETS=(
  meshgate meshgatectl
  lb_race_test             # a worker and the health checker on one endpoint's health word; leases
  incremental_update_test  # the runtime installing routes into a live worker thread
  runtime_test             # meshgate.yaml reloads (SIGHUP, file watch) in the real binary
  e2e_test                 # reloads under load, health checks, ejection, DNS endpoints: the real binary
  ops_test                 # drain, admin, the access-log thread
  control_test             # meshgatectl serve, and meshgate following it (the control source)
  control_dns_test         # serve's DNS server thread
  kube_test                # the Kubernetes watch client
  kube_follow_test         # meshgate following the API server (the kube source)
  takeover_test            # a binary upgrade: listeners handed over while workers accept, then the drain
)
# The ctest names run: every test of those binaries except the single-threaded
# ones of e2e_test (relay modes, CLI and refusal cases are the ASan pass's).
TESTS='^(HealthWordRaceTest|ClusterStateRaceTest|Incremental[A-Za-z]*Test|SettingsReloadTest|LiveStatsTest'
TESTS+='|E2eTest\.(HotReloadUnderLoad|SighupReloads|ActiveHealthChecks|DeadEndpoint|ConnectFailure|DnsResolved|TwoEndpoints|ConsistentHash)'
TESTS+='|OpsTest|AccessLogTest|ServeTest|FollowTest|DnsServeTest|KubeWatchTest|Kube/KubeGoneTest|KubeFollowTest|KubeFollowCliTest|TakeoverTest)'

# TSAN_QUICK=1: only the lb race tests (what CI ran before the whole pass;
# they build with clang 14 too).
if [ "${TSAN_QUICK:-0}" = 1 ]; then
  TARGETS=(lb_race_test)
  TESTS='^(HealthWordRaceTest|ClusterStateRaceTest)'
fi

if ! grep -qs '^MESHGATE_SANITIZE:STRING=thread$' "$BUILD_DIR/CMakeCache.txt"; then
  # GCC, as scripts/sanitize.sh says why (clang 14 cannot build the tree;
  # SANITIZE_CXX=clang++ once it can). Benchmarks and fuzzing off. -O1: quicker
  # to compile than -O2 and fast enough for the race loops; -g1: line tables
  # give reports their line numbers.
  CXX=${SANITIZE_CXX:-g++} cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
    -DMESHGATE_BUILD_BENCH=OFF -DMESHGATE_FUZZ=OFF -DMESHGATE_SANITIZE=thread >/dev/null
fi

reports=${SANITIZER_REPORTS:-$(mktemp -d /tmp/meshgate-tsan.XXXXXX)}
mkdir -p "$reports"
# second_deadlock_stack: fuller lock-order reports. log_path: every report in
# a file too, as a spawned meshgate's stderr goes to a log its test deletes.
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 log_path=$reports/report ${TSAN_OPTIONS:-}"
cmake --build "$BUILD_DIR" --target "${TARGETS[@]}" -- -j"$JOBS"

status=0
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS" --timeout 240 -R "$TESTS" "$@" || status=1
if compgen -G "$reports/report*" >/dev/null; then
  echo "tsan: ThreadSanitizer reports (including spawned meshgate/meshgatectl):" >&2
  for f in "$reports"/report*; do
    echo "---- $f" >&2
    cat "$f" >&2
  done
  status=1
fi
[ -n "${SANITIZER_REPORTS:-}" ] || rm -rf "$reports"
if [ "$status" != 0 ]; then
  echo "tsan: FAILED (a ThreadSanitizer report or a failed test, above)" >&2
  exit 1
fi
echo "tsan: clean"
