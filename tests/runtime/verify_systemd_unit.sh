#!/bin/sh
# systemd-analyze verify on docker/systemd/meshgate.service, with the
# binary and script paths pointed at this build (systemd checks that each
# Exec command exists and is executable). Any diagnostic fails the test.
# Usage: verify_systemd_unit.sh UNIT MESHGATE_BIN UPGRADE_SH
set -eu
unit="$1" bin="$2" script="$3"
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze not installed"; exit 77
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
sed -e "s|/usr/bin/meshgate|$bin|g" -e "s|/usr/lib/meshgate/upgrade.sh|$script|g" "$unit" > "$dir/meshgate.service"
grep -q '^ExecReload=.*upgrade.sh --socket ' "$dir/meshgate.service" || { echo "ExecReload does not use upgrade.sh"; exit 1; }
grep -q '^Type=notify$' "$dir/meshgate.service" && grep -q '^NotifyAccess=all$' "$dir/meshgate.service" ||
  { echo "the unit must be Type=notify with NotifyAccess=all (the main PID changes on reload)"; exit 1; }
out="$(systemd-analyze verify "$dir/meshgate.service" 2>&1)" || { echo "$out"; exit 1; }
if [ -n "$out" ]; then echo "$out"; exit 1; fi
echo "meshgate.service verified"
