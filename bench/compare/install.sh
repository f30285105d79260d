#!/usr/bin/env bash
# Installs the benchmark's contenders and load generator from Debian (haproxy,
# nginx + stream module, sniproxy, wrk) if missing, without letting the
# packages' postinst scripts start system services (port 80 etc.).
set -euo pipefail

PKGS=(haproxy nginx libnginx-mod-stream sniproxy wrk openssl procps)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0

echo "bench: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# invoke-rc.d consults policy-rc.d: exit 101 = "do not start". Only add one
# (and remove it afterwards) if the machine has none of its own.
POLICY=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary, bench/compare/install.sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  added_policy=1
fi
cleanup() { if ((added_policy)); then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Belt and braces: if a service got started anyway (no policy-rc.d honoured),
# stop it. The harness runs its own instances on 127.0.0.1 high ports.
for svc in nginx haproxy sniproxy; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
  if [ -x "/etc/init.d/$svc" ]; then $SUDO "/etc/init.d/$svc" stop >/dev/null 2>&1 || true; fi
done
