#!/usr/bin/env bash
# Installs every Debian 12 package meshgate builds, tests and demos with.
# Idempotent: skips apt entirely when everything is already present.
#   install-deps.sh               the build, test and demo packages (every run)
#   install-deps.sh --image-test  only what scripts/image-test.sh needs to build
#                                 and run the container image (opt-in: CI's
#                                 image job and that script call it)
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-program-options1.81-dev libboost-json1.81-dev
  libssl-dev openssl
  libabsl-dev libc-ares-dev prometheus-cpp-dev libyaml-dev
  libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  clang libclang-rt-14-dev  # fuzzing and the ASan+UBSan pass (scripts/configure-asan.sh)
  libtsan2  # GCC's ThreadSanitizer runtime, for scripts/tsan.sh (also pulled in by g++; named so it is never lost)
  python3 python3-yaml procps iproute2
  prometheus
  dnsutils dnsperf unbound
  haproxy  # tests/e2e/proxy_protocol_test: the PROXY protocol sender (send-proxy-v2) in front of meshgate
  libbpf-dev  # bench/sockmap: the BPF sockmap relay prototype (issue 17) and its sockmap_byte_exact test
  liburing-dev  # bench/uring: the io_uring relay prototype (issue 17's io_uring verdict) and its byte-exact tests
)

if [ "${1:-}" = "--image-test" ]; then
  # podman (rootful) with runc, since crun fails on some cgroup layouts;
  # debootstrap makes the Debian base images when no registry is reachable;
  # iproute2 for the test's network namespace; python3-yaml to read the
  # manifests; curl and openssl for the host-side checks.
  PKGS=(podman runc debootstrap debian-archive-keyring iproute2 python3 python3-yaml curl openssl ca-certificates)
elif [ -n "${1:-}" ]; then
  echo "install-deps: unknown argument '$1' (want none or --image-test)" >&2
  exit 2
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
