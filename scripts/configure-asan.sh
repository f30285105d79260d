#!/usr/bin/env bash
# Configures the one AddressSanitizer build directory (default build-san) that
# both the fuzz pass (scripts/fuzz.sh) and the ASan+UBSan pass of the whole
# suite (scripts/sanitize.sh) use, so CI compiles the tree once for both:
#   clang, MESHGATE_FUZZ=ON: every library with -fsanitize=address,undefined
#     and libFuzzer's coverage (fuzzer-no-link); the fuzz targets link
#     -fsanitize=fuzzer. The coverage hooks cost the plain test binaries
#     little: ASan's runtime provides the callbacks.
#   MESHGATE_SANITIZE=address,undefined: -fno-sanitize-recover, and test
#     timeouts scaled (tests/CMakeLists.txt).
#   -O1 -g1: the usual ASan trade-off (fast enough for the e2e timeouts,
#     quicker to compile than -O2); line tables are all a stack needs.
#   UBSan's vptr check is left out (CMakeLists.txt says why).
#   Benchmarks off.
# Does nothing when DIR is already configured this way.
# Usage: scripts/configure-asan.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-san}
if grep -qs '^MESHGATE_FUZZ:BOOL=ON$' "$dir/CMakeCache.txt" &&
   grep -qs '^MESHGATE_SANITIZE:STRING=address,undefined$' "$dir/CMakeCache.txt"; then
  exit 0
fi
CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DMESHGATE_BUILD_BENCH=OFF -DMESHGATE_FUZZ=ON -DMESHGATE_SANITIZE=address,undefined >/dev/null
