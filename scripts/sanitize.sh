#!/usr/bin/env bash
# The sanitizer pass (issue 15), run by scripts/test.sh after the normal suite
# (SANITIZE=0 skips it):
#   1. the whole ctest suite built with AddressSanitizer + UndefinedBehavior-
#      Sanitizer (and LeakSanitizer, part of ASan) in build-san, the clang
#      build scripts/fuzz.sh uses too (scripts/configure-asan.sh says how it is
#      configured), so CI compiles it once for both. Every target of that build
#      is instrumented, so the tests that spawn meshgate and meshgatectl run
#      the sanitized binaries of build-san (they are found by
#      $<TARGET_FILE:...>, compiled into the tests); the fuzz targets' seeds
#      and stored crashes run once as <target>_seeds;
#   2. the threaded tests under ThreadSanitizer (scripts/tsan.sh, build-tsan).
# Any report fails the script. Reports of spawned children (meshgate,
# meshgatectl) do not reach the test's output (their stderr goes to a log the
# test deletes), so every sanitizer report is also written under
# $SANITIZER_REPORTS (log_path) and the pass fails if any file appears there.
#
# Usage: scripts/sanitize.sh [asan|tsan|all]   (default all)
#   ASAN_BUILD_DIR overrides build-san; CTEST_ARGS adds ctest arguments
#   (e.g. CTEST_ARGS="-R Serve"); the sanitizer *_OPTIONS given in the
#   environment are appended to the ones below.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
BUILD_DIR=${ASAN_BUILD_DIR:-build-san}
JOBS=${JOBS:-$(nproc)}

asan_pass() {
  bash scripts/configure-asan.sh "$BUILD_DIR"
  local reports
  reports=${SANITIZER_REPORTS:-$(mktemp -d /tmp/meshgate-asan.XXXXXX)}
  mkdir -p "$reports"
  # halt_on_error/abort_on_error: the first finding ends the process; a test
  # that spawns it then fails too. detect_leaks: LeakSanitizer at every exit.
  # check_initialization_order + strict_init_order: static init order bugs.
  # detect_stack_use_after_return: stack frames kept alive by a callback.
  local common="halt_on_error=1:abort_on_error=1:log_path=$reports/report"
  export ASAN_OPTIONS="$common:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="$common:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  # The build runs the test binaries too (gtest_discover_tests lists them).
  cmake --build "$BUILD_DIR" -- -j"$JOBS"
  local status=0
  # Timeouts: ASan makes the binaries about 2x slower; the tests' own
  # TIMEOUT properties are scaled in tests/CMakeLists.txt (MESHGATE_SANITIZE).
  # shellcheck disable=SC2086
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS" --timeout 240 ${CTEST_ARGS:-} || status=1
  if compgen -G "$reports/report*" >/dev/null; then
    echo "sanitize: ASan/UBSan/LSan reports (including spawned meshgate/meshgatectl):" >&2
    for f in "$reports"/report*; do
      echo "---- $f" >&2
      cat "$f" >&2
    done
    status=1
  fi
  [ -n "${SANITIZER_REPORTS:-}" ] || rm -rf "$reports"
  if [ "$status" != 0 ]; then
    echo "sanitize: the ASan+UBSan pass FAILED" >&2
    return 1
  fi
  echo "sanitize: the ASan+UBSan pass is clean"
}

case "$what" in
  asan) asan_pass ;;
  tsan) bash scripts/tsan.sh ;;
  all)
    status=0
    asan_pass || status=1
    bash scripts/tsan.sh || status=1
    exit "$status"
    ;;
  *) echo "usage: scripts/sanitize.sh [asan|tsan|all]" >&2; exit 2 ;;
esac
