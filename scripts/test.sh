#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: install packages, build,
# fuzz the ClientHello parser briefly, run every unit and end-to-end test, run
# them again under the sanitizers (scripts/sanitize.sh), then the short
# side-by-side benchmark (issue 7's regression guard: it fails if
# traffic does not get through meshgate or its CPU per connection is far
# behind HAProxy's; BENCH_SHORT=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh

# libFuzzer needs clang: a separate small build of just the fuzz target.
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DMESHGATE_FUZZ=ON -DMESHGATE_BUILD_BENCH=OFF >/dev/null
  fi
  cmake --build build-fuzz --target sni_fuzz dns_fuzz
  corpus=$(mktemp -d)
  cp tests/data/clienthellos/*.bin "$corpus/"
  echo "fuzzing the ClientHello parser for ${FUZZ_SECONDS}s"
  ./build-fuzz/tests/sni/sni_fuzz -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -dict=tests/sni/fuzz_client_hello.dict "$corpus" 2>&1 | tail -n 12
  rm -rf "$corpus"
  corpus=$(mktemp -d)
  echo "fuzzing the DNS query parser (meshgatectl serve's .global zone) for ${FUZZ_SECONDS}s"
  ./build-fuzz/tests/control/dns_fuzz -max_total_time="$FUZZ_SECONDS" -max_len=1024 -print_final_stats=1 \
    "$corpus" tests/data/dns 2>&1 | tail -n 12
  rm -rf "$corpus"
fi

ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 120

# Sanitizers. By default only the lb race tests under ThreadSanitizer (a small
# clang build, build-tsan), as before. SANITIZE=1 (or all) runs the whole pass
# (scripts/sanitize.sh): the whole suite again under ASan+UBSan+LSan
# (build-asan), then the threaded tests under TSan; SANITIZE=asan or tsan runs
# one half; SANITIZE=0 skips even the race tests. The whole pass is not yet
# the default: it adds an estimated 25-28 minutes on 2 cores (README, Tests).
case "${SANITIZE:-race}" in
  0) echo "SANITIZE=0: the sanitizer pass is skipped" ;;
  race) TSAN_QUICK=1 SANITIZE_CXX=clang++ TSAN_BUILD_DIR=build-tsan-race bash scripts/tsan.sh ;;
  asan | tsan) bash scripts/sanitize.sh "$SANITIZE" ;;
  *) bash scripts/sanitize.sh all ;;
esac

if [ "${BENCH_SHORT:-1}" != 0 ]; then
  BUILD_DIR=build bash bench/compare/run.sh --short
fi
