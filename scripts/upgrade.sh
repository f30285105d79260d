#!/usr/bin/env bash
# Upgrades a running meshgate to a new binary (or restarts it) without
# dropping a connection: starts the new one with --takeover SOCKET, which
# takes the old one's listening sockets, and waits until the old one has
# handed over (README "Upgrades").
#
#   scripts/upgrade.sh --socket /run/meshgate/upgrade.sock [--timeout 60] \
#       -- /usr/bin/meshgate --config /etc/meshgate/meshgate.yaml
#
# The new process runs detached (its own session), with this script's
# stdout and stderr (the journal, under systemd). Exits 0 once the new
# process serves the takeover socket and the old one no longer does; 1 when
# no meshgate serves SOCKET, the new process exits, or the time runs out.
# Needs ss(8) (iproute2) to see who listens on SOCKET.
set -euo pipefail

socket="" timeout=60
while [[ $# -gt 0 ]]; do
  case "$1" in
    --socket) socket="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "upgrade.sh: unknown argument $1 (usage: upgrade.sh --socket PATH [--timeout S] -- MESHGATE ARGS...)" >&2; exit 2 ;;
  esac
done
[[ -n "$socket" && $# -gt 0 ]] || { echo "usage: upgrade.sh --socket PATH [--timeout S] -- MESHGATE ARGS..." >&2; exit 2; }

# The pid listening on the unix socket at $socket, or nothing.
listener_pid() {
  ss -xlpH 2>/dev/null | awk -v path="$socket" '$5 == path { if (match($0, /pid=[0-9]+/)) print substr($0, RSTART + 4, RLENGTH - 4); exit }'
}

old="$(listener_pid)"
if [[ -z "$old" ]]; then
  echo "upgrade.sh: no process listens on $socket: is meshgate running with upgrade.socket (or --takeover) set?" >&2
  exit 1
fi

setsid "$@" --takeover "$socket" < /dev/null &
new=$!
echo "upgrade.sh: started pid $new to take over from pid $old" >&2

deadline=$(( SECONDS + timeout ))
while (( SECONDS < deadline )); do
  if ! kill -0 "$new" 2>/dev/null; then
    wait "$new" && code=0 || code=$?
    echo "upgrade.sh: the new process (pid $new) exited with $code; pid $old keeps serving" >&2
    exit 1
  fi
  if [[ "$(listener_pid)" == "$new" ]]; then
    echo "upgrade.sh: pid $new took over from pid $old, which drains its open sessions" >&2
    exit 0
  fi
  sleep 0.1
done
echo "upgrade.sh: pid $new did not take over within ${timeout}s (see its log); stopping it" >&2
kill -TERM "$new" 2>/dev/null || true
exit 1
