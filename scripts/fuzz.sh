#!/usr/bin/env bash
# Builds meshgate's libFuzzer targets (clang, ASan+UBSan, in build-san, the
# build directory the ASan pass of scripts/sanitize.sh shares) and
# runs each for FUZZ_SECONDS (default 20) with a corpus seeded from
# tests/data; prints the executions per target at the end.
#   scripts/fuzz.sh                   the CI pass: every target, FUZZ_SECONDS each
#   scripts/fuzz.sh --long            FUZZ_LONG_SECONDS each (default 4 h), corpora kept
#                                     in build-san/corpus/ so the next run goes on from them
#   scripts/fuzz.sh [--long] NAME...  only these targets
#   scripts/fuzz.sh --replay NAME     every seed and stored regression input once (ctest)
# A crash stops the pass: the input is in build-san/artifacts/NAME/; copy it
# into tests/data/fuzz-regressions/NAME/ and fix it (the replay then keeps it fixed).
# FUZZ_SECONDS=0 skips the pass. FUZZ_JOBS runs that many processes per target (--long).
# The short (CI) pass uses a fixed seed (FUZZ_SEED, default 1), so CI replays
# the same mutations on every commit: a CI failure is then about the commit,
# not the luck of the draw, and a longer local run with the same seed covers
# what CI will try (`FUZZ_SECONDS=60 scripts/fuzz.sh` before pushing). New
# ground is broken by --long, which draws a random seed per run.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${FUZZ_BUILD_DIR:-build-san}
DATA=tests/data
REGRESSIONS=$DATA/fuzz-regressions

# name | binary (under $BUILD) | seed directories | libFuzzer flags
TARGETS=(
  "sni_fuzz|tests/sni/sni_fuzz|$DATA/clienthellos|-dict=tests/sni/fuzz_client_hello.dict"
  "dns_fuzz|tests/control/dns_fuzz|$DATA/dns|-max_len=1024"
  "mesh_fuzz|tests/fuzz/mesh_fuzz|$DATA/istio $DATA/k8s $DATA/mesh|-max_len=65536"
  "settings_fuzz|tests/fuzz/settings_fuzz|$DATA/fuzz-settings $DATA/mesh/gateway|-max_len=16384"
  "route_fuzz|tests/fuzz/route_fuzz|$DATA/fuzz-sni|-max_len=300"
  "control_fuzz|tests/fuzz/control_fuzz|$DATA/fuzz-control|-max_len=65536"
  "http_fuzz|tests/fuzz/http_fuzz|$DATA/fuzz-http|-max_len=20000"
  "admin_http_fuzz|tests/fuzz/admin_http_fuzz|$DATA/fuzz-admin-http|-max_len=20000"
  "serve_http_fuzz|tests/fuzz/serve_http_fuzz|$DATA/fuzz-serve-http|-max_len=20000"
  "proxy_protocol_fuzz|tests/fuzz/proxy_protocol_fuzz|$DATA/fuzz-proxy-protocol|-max_len=4200"
)

mode=short
if [ "${1:-}" = --long ]; then mode=long; shift; fi
if [ "${1:-}" = --replay ]; then mode=replay; shift; fi
seconds=${FUZZ_SECONDS:-20}
[ "$mode" = long ] && seconds=${FUZZ_LONG_SECONDS:-14400}
if [ "$mode" != replay ] && [ "$seconds" -le 0 ]; then exit 0; fi

selected() {
  local want
  for want in "${@:2}"; do [ "$want" = "$1" ] && return 0; done
  return 1
}

names=()
for t in "${TARGETS[@]}"; do
  name=${t%%|*}
  if [ $# -eq 0 ] || selected "$name" "$@"; then names+=("$name"); fi
done
[ ${#names[@]} -gt 0 ] || { echo "fuzz.sh: no target named $*" >&2; exit 2; }

if [ "$mode" != replay ]; then
  bash scripts/configure-asan.sh "$BUILD"
  cmake --build "$BUILD" --target "${names[@]}" -- -j"${FUZZ_BUILD_JOBS:-2}"
fi

summary=()
for t in "${TARGETS[@]}"; do
  IFS='|' read -r name binary seeds flags <<<"$t"
  selected "$name" "${names[@]}" || continue
  regress=$REGRESSIONS/$name
  inputs=($seeds)
  [ -d "$regress" ] && inputs+=("$regress")
  if [ "$mode" = replay ]; then
    # -runs=0: run every file of these directories once, then stop.
    "$BUILD/$binary" -runs=0 $flags "${inputs[@]}"
    continue
  fi
  artifacts=$BUILD/artifacts/$name/
  mkdir -p "$artifacts"
  if [ "$mode" = long ]; then
    corpus=$BUILD/corpus/$name
    mkdir -p "$corpus"
  else
    corpus=$(mktemp -d)
  fi
  log=$BUILD/fuzz-$name.log
  echo "fuzzing $name for ${seconds}s"
  status=0
  extra=()
  [ "$mode" = long ] && [ "${FUZZ_JOBS:-1}" -gt 1 ] && extra=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
  [ "$mode" = short ] && extra=(-seed="${FUZZ_SEED:-1}")
  "$BUILD/$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts" ${extra[@]+"${extra[@]}"} $flags "$corpus" "${inputs[@]}" >"$log" 2>&1 || status=$?
  [ "$mode" = long ] || rm -rf "$corpus"
  execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
  summary+=("$(printf '%-14s %12s executions in %ss' "$name" "$execs" "$seconds")")
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log"
    echo "fuzz.sh: $name FAILED (exit $status); the input is in $artifacts" \
         "(copy it into $REGRESSIONS/$name/, add a regression test, fix)" >&2
    printf '%s\n' "${summary[@]}"
    exit 1
  fi
done
if [ ${#summary[@]} -gt 0 ]; then
  echo "fuzzing done:"
  printf '  %s\n' "${summary[@]}"
fi
