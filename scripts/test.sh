#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: install packages, build,
# fuzz every parser briefly, run every unit and end-to-end test, then
# the short side-by-side benchmark (issue 7's regression guard: it fails if
# traffic does not get through meshgate or its CPU per connection is far
# behind HAProxy's; BENCH_SHORT=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh

# Every libFuzzer target briefly (clang, ASan+UBSan, build-fuzz): FUZZ_SECONDS
# each, 20 by default; 0 skips. scripts/fuzz.sh --long runs them for hours.
bash scripts/fuzz.sh

ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 120

# The lb race tests again under ThreadSanitizer (a separate small build).
bash scripts/tsan.sh

if [ "${BENCH_SHORT:-1}" != 0 ]; then
  BUILD_DIR=build bash bench/compare/run.sh --short
fi
