#!/usr/bin/env bash
# The race tests under ThreadSanitizer: a separate small build (build-tsan,
# clang + -fsanitize=thread) of just the race test binaries, run with
# halt_on_error so any report fails the script. Needs clang and
# libclang-rt-14-dev (scripts/install-deps.sh installs both).
# Usage: scripts/tsan.sh [extra gtest args]    TSAN_BUILD_DIR overrides build-tsan.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${TSAN_BUILD_DIR:-build-tsan}
TARGETS=(lb_race_test)

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  # Tests on (the targets are tests), benchmarks and fuzzing off. RelWithDebInfo:
  # -O2 keeps the race loops fast, -g gives reports their line numbers.
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMESHGATE_BUILD_BENCH=OFF -DMESHGATE_FUZZ=OFF \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" >/dev/null
fi
cmake --build "$BUILD_DIR" --target "${TARGETS[@]}" -- -j"$(nproc)"

# halt_on_error: the first report ends the run with exitcode, so a race cannot
# scroll by in a passing test. second_deadlock_stack: fuller lock reports.
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
status=0
for t in "${TARGETS[@]}"; do
  bin=$(find "$BUILD_DIR/tests" -type f -name "$t" -perm -u+x | head -n 1)
  if [ -z "$bin" ]; then
    echo "tsan: $t was not built" >&2
    exit 1
  fi
  echo "tsan: $bin"
  if ! "$bin" "$@"; then
    echo "tsan: $t FAILED (a ThreadSanitizer report or a failed assertion, above)" >&2
    status=1
  fi
done
exit "$status"
