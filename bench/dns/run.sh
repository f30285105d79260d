#!/usr/bin/env bash
# Queries/s of meshgatectl serve's `.global` DNS server beside unbound serving
# the same names as local-data, both on loopback, one thread each, measured
# by dnsperf in one run. Not in CI (issue 14 part 4's comparison).
#
#   bash bench/dns/run.sh [--services N] [--seconds S] [--clients C]
# Needs dnsperf and unbound (scripts/install-deps.sh) and a built meshgatectl
# (BUILD_DIR, default build/).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
SERVICES=1000 SECONDS_EACH=10 CLIENTS=4
while (($#)); do
  case "$1" in
    --services) SERVICES=$2; shift 2 ;;
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
for tool in dnsperf unbound; do
  command -v "$tool" >/dev/null || { echo "bench/dns: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/m1" "$work/m2"

# cluster2 has N Services; cluster1 consumes them, so its ServiceEntries hold N VIPs.
python3 - "$work" "$SERVICES" <<'PY'
import sys
work, n = sys.argv[1], int(sys.argv[2])
with open(f"{work}/m2/services.yaml", "w") as f:
    for i in range(n):
        f.write(f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: ns{i % 10}}}\n"
                "spec:\n  ports: [{name: http, port: 8000}]\n")
open(f"{work}/m1/empty.yaml", "w").write("")
PY
cat > "$work/serve.yaml" <<YAML
dns: {listen: "127.0.0.1:0", zone: global, cluster: cluster1}
clusters:
- {name: cluster1, network: network1, gateway: 192.0.2.1, mesh: [m1]}
- {name: cluster2, network: network2, gateway: 192.0.2.2, mesh: [m2]}
YAML
"$BUILD_DIR/meshgatectl" serve --config "$work/serve.yaml" --listen 127.0.0.1:0 --log-level warn 2>"$work/serve.log" &
pids+=($!)
# --log-level warn hides the address lines: read the ports from /proc instead.
serve_pid=${pids[0]}
for _ in $(seq 100); do
  dns_port=$(ss -H -lunp 2>/dev/null | awk -v p="pid=$serve_pid," '$0 ~ p {split($4, a, ":"); print a[2]; exit}')
  [ -n "${dns_port:-}" ] && break
  sleep 0.1
done
http_port=$(ss -H -ltnp | awk -v p="pid=$serve_pid," -v d=":$dns_port" '$0 ~ p && $4 !~ d {split($4, a, ":"); print a[2]; exit}')
[ -n "${dns_port:-}" ] && [ -n "${http_port:-}" ] || { cat "$work/serve.log"; echo "serve did not start" >&2; exit 1; }

# The published ServiceEntries give the names and VIPs both servers answer;
# the query mix: 90% A hits, 5% AAAA (NODATA), 5% unknown names (NXDOMAIN).
python3 - "$work" "$http_port" <<'PY'
import re, sys, urllib.request
work, port = sys.argv[1], sys.argv[2]
body = urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/serviceentries?cluster=cluster1").read().decode()
pairs = re.findall(r"hosts: \[([^\]]+)\][\s\S]*?addresses: \[([^\]]+)\]", body)
with open(f"{work}/unbound.conf", "w") as f:
    f.write('server:\n  interface: 127.0.0.1\n  port: PORT\n  num-threads: 1\n  do-daemonize: no\n'
            '  chroot: ""\n  username: ""\n  pidfile: ""\n  use-syslog: no\n  logfile: ""\n  verbosity: 0\n'
            '  access-control: 127.0.0.0/8 allow\n  local-zone: "global." static\n'
            '  local-data: "global. 5 IN SOA ns.global. hostmaster.global. 1 3600 600 86400 5"\n'
            '  local-data: "global. 30 IN NS ns.global."\n')
    for host, vip in pairs:
        f.write(f'  local-data: "{host}. 30 IN A {vip}"\n')
with open(f"{work}/queries", "w") as q:
    for i, (host, _) in enumerate(pairs * 10):
        q.write(f"{host} {'AAAA' if i % 20 == 0 else 'A'}\n")
        if i % 20 == 10:
            q.write(f"missing{i}.ns0.global A\n")
print(f"{len(pairs)} names")
PY

unbound_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i "s/port: PORT/port: $unbound_port/" "$work/unbound.conf"
unbound -c "$work/unbound.conf" -d 2>"$work/unbound.log" &
pids+=($!)
for _ in $(seq 100); do dig +short +time=1 +tries=1 @127.0.0.1 -p "$unbound_port" global SOA >/dev/null 2>&1 && break; sleep 0.1; done

# Both must give the same answer before they are timed.
first=$(head -1 "$work/queries" | cut -d' ' -f1)
a=$(dig +short @127.0.0.1 -p "$dns_port" "$first" A); b=$(dig +short @127.0.0.1 -p "$unbound_port" "$first" A)
[ -n "$a" ] && [ "$a" = "$b" ] || { echo "answers differ for $first: meshgatectl '$a' unbound '$b'" >&2; exit 1; }

run() {  # name port
  local out
  out=$(dnsperf -s 127.0.0.1 -p "$2" -d "$work/queries" -l "$SECONDS_EACH" -c "$CLIENTS" -T "$CLIENTS" -q 500 -e 2>&1)
  local qps lost
  qps=$(awk '/Queries per second:/ {print $4}' <<<"$out")
  lost=$(awk '/Queries lost:/ {print $3}' <<<"$out")
  printf '%-12s %12s queries/s  (lost %s)\n' "$1" "$qps" "$lost"
  echo "$qps" >"$work/$1.qps"
}
echo "dnsperf: ${SECONDS_EACH}s each, $CLIENTS clients, 500 outstanding, $SERVICES names, EDNS0, one server thread each"
run meshgatectl "$dns_port"
run unbound "$unbound_port"
python3 -c "import sys; m, u = float(open('$work/meshgatectl.qps').read()), float(open('$work/unbound.qps').read()); print(f'meshgatectl / unbound = {m / u:.2f}x')"
