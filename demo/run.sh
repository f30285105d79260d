#!/usr/bin/env bash
# The cross-cluster call from the user's walkthrough, on one machine:
#   a "sleep" pod in cluster 1 calls httpbin.bar.global:8000; its mTLS goes to
#   cluster 2's gateway (meshgate on 127.0.0.1:15443) with SNI
#   outbound_.8000_._.httpbin.bar.global; meshgate routes by SNI to the local
#   httpbin endpoint without terminating TLS; httpbin verifies the cluster-1
#   client certificate against the shared root, and the client verifies
#   httpbin's cluster-2 certificate the same way. The gateway's routes come
#   from `meshgatectl serve` (over TLS), which also publishes the
#   ServiceEntries cluster 1 applies; all certificates come from meshgatectl ca.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MESHGATE=${MESHGATE:-$ROOT/build/meshgate}
MESHGATECTL=${MESHGATECTL:-$ROOT/build/meshgatectl}
GATEWAY_PORT=${GATEWAY_PORT:-15443}
WORK=$(mktemp -d /tmp/meshgate-demo.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "1. CA material from meshgatectl: a shared root, one intermediate per cluster (Istio plug-in CA layout)"
"$MESHGATECTL" ca root --key-type ecdsa --out root
cp root/root-cert.pem root-cert.pem
for cluster in cluster-1 cluster-2; do
  "$MESHGATECTL" ca intermediate --key-type ecdsa --root root --cluster "$cluster" --out "$cluster"
  echo "   $cluster: $(openssl x509 -in "$cluster/ca-cert.pem" -noout -subject)"
done
echo "   the cacerts Secret for cluster-2 (meshgatectl ca secret --dir cluster-2):"
"$MESHGATECTL" ca secret --dir cluster-2 | cut -c1-90 | sed 's/^/     /'
"$MESHGATECTL" ca workload --dir cluster-1 --spiffe spiffe://cluster.local/ns/foo/sa/sleep --out cluster-1/sleep
"$MESHGATECTL" ca workload --dir cluster-2 --spiffe spiffe://cluster.local/ns/bar/sa/httpbin --out cluster-2/httpbin
for w in cluster-1/sleep cluster-2/httpbin; do
  echo "   $w: $("$MESHGATECTL" ca verify --dir "$w" | grep -c '^ok') checks ok;" \
       "$(openssl verify -CAfile root-cert.pem -untrusted "$w/cert-chain.pem" "$w/cert.pem")"
done

BACKEND_PORT=$(free_port)
say "2. httpbin in cluster 2 on 127.0.0.1:$BACKEND_PORT: TLS, client certificate REQUIRED (shared root)"
python3 "$ROOT/demo/httpbin.py" 127.0.0.1 "$BACKEND_PORT" cluster-2/httpbin/cert-chain.pem \
  cluster-2/httpbin/key.pem root-cert.pem > httpbin.log 2>&1 &
PIDS+=($!)

say "3. the clusters' own resources: cluster 2's Service and EndpointSlice for httpbin.bar, cluster 1's Service for sleep.foo"
mkdir -p mesh
cat > mesh/httpbin.yaml <<YAML
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: bar}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: httpbin-abc12
  namespace: bar
  labels: {kubernetes.io/service-name: httpbin}
addressType: IPv4
ports: [{name: http, port: $BACKEND_PORT}]
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: true}
YAML
sed 's/^/   /' mesh/httpbin.yaml
mkdir -p mesh-1
cat > mesh-1/sleep.yaml <<YAML
apiVersion: v1
kind: Service
metadata: {name: sleep, namespace: foo}
spec:
  selector: {app: sleep}
  ports: [{name: http, port: 80}]
YAML
# Istio 1.6's multicluster gateway (the seed's setup): AUTO_PASSTHROUGH for
# "*.global" on the gateway's TLS port, selecting the ingress gateway pods.
# Istio paired it with an EnvoyFilter rewriting ".global" to
# ".svc.cluster.local"; meshgate's sniRewrites does that (on by default).
# Without it meshgate, like Istio since 1.10 (CVE-2021-31921), serves nothing.
cat > mesh/gateway.yaml <<YAML
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: istio-multicluster-ingressgateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $GATEWAY_PORT, name: tls, protocol: TLS}   # 15443 in a cluster
    tls: {mode: AUTO_PASSTHROUGH}
    hosts: ["*.global"]
YAML
sed 's/^/   /' mesh/gateway.yaml
# The gateway pod's labels, as Kubernetes' Downward API writes them.
mkdir -p podinfo
printf 'app="istio-ingressgateway"\nistio="ingressgateway"\n' > podinfo/labels
echo "podInfoFile: podinfo/labels" > meshgate.yaml
"$MESHGATE" --check --config meshgate.yaml --listen "127.0.0.1:$GATEWAY_PORT" --mesh mesh > check.txt
sed 's/^/   /' check.txt

CONTROL_PORT=$(free_port)
say "4. meshgatectl serve publishes both clusters' routes, ServiceEntries and CA certificates (HTTPS on 127.0.0.1:$CONTROL_PORT)"
"$MESHGATECTL" ca server --dir cluster-2 --ip 127.0.0.1 --out control-tls
mkdir -p control-state
cat > control.yaml <<YAML
tls: {certChain: control-tls/cert-chain.pem, key: control-tls/key.pem}
allocations: control-state
clusters:
- {name: cluster-1, network: network1, gateway: 192.0.2.1, mesh: [mesh-1], ca: cluster-1}
- {name: cluster-2, network: network2, gateway: "127.0.0.1:$GATEWAY_PORT", mesh: [mesh], ca: cluster-2}
YAML
sed 's/^/   /' control.yaml
"$MESHGATECTL" serve --config control.yaml --listen "127.0.0.1:$CONTROL_PORT" 2> control.log &
PIDS+=($!)
for _ in $(seq 100); do grep -q "serving HTTPS" control.log && break; sleep 0.05; done
CONTROL="https://127.0.0.1:$CONTROL_PORT"
echo "   what cluster 1 applies to reach cluster 2's services (GET $CONTROL/v1/serviceentries?cluster=cluster-1):"
python3 - "$CONTROL/v1/serviceentries?cluster=cluster-1" root-cert.pem <<'PY' | sed 's/^/     /'
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
r = urllib.request.urlopen(sys.argv[1], context=ctx, timeout=5)
print(f"HTTP {r.status}, X-Meshgate-Version {r.headers['X-Meshgate-Version']}, ETag {r.headers['ETag']}")
print(r.read().decode(), end="")
PY

say "5. meshgate, cluster 2's gateway, on 127.0.0.1:$GATEWAY_PORT, following the control component over TLS"
"$MESHGATE" --config meshgate.yaml --listen "127.0.0.1:$GATEWAY_PORT" --control "$CONTROL" --control-ca root-cert.pem \
  --control-cluster cluster-2 --threads 2 --log-level debug \
  --metrics 127.0.0.1:0 --readiness 127.0.0.1:0 --admin 127.0.0.1:0 \
  --drain-delay 0s --drain-time 5s --access-log access.log 2> meshgate.log &
GATEWAY_PID=$!
PIDS+=($GATEWAY_PID)
for _ in $(seq 100); do grep -q "config reloaded (control" meshgate.log && break; sleep 0.05; done
grep -q "config reloaded (control" meshgate.log || { cat meshgate.log control.log; echo "meshgate did not sync"; exit 1; }
grep "following control\|config reloaded" meshgate.log | sed 's/^/   /'

say "6. sleep in cluster 1 calls httpbin.bar.global:8000 through the gateway"
python3 "$ROOT/demo/sleep_client.py" 127.0.0.1 "$GATEWAY_PORT" "outbound_.8000_._.httpbin.bar.global" \
  cluster-1/sleep/cert-chain.pem cluster-1/sleep/key.pem root-cert.pem \
  spiffe://cluster.local/ns/bar/sa/httpbin

say "7. an SNI the gateway does not serve is refused, and nothing is dialled"
python3 "$ROOT/demo/sleep_client.py" 127.0.0.1 "$GATEWAY_PORT" "outbound_.8000_._.secrets.bar.global" \
  cluster-1/sleep/cert-chain.pem cluster-1/sleep/key.pem root-cert.pem \
  spiffe://cluster.local/ns/bar/sa/httpbin --expect-refused

sleep 0.2
address_of() { grep -o "$1 serving on 127.0.0.1:[0-9]*" meshgate.log | awk '{print $4}'; }
say "8. readiness, and what Prometheus would scrape (Istio's own TCP series included)"
python3 - "$(address_of readiness)" "$(address_of metrics)" <<'PY'
import sys, urllib.request
ready = urllib.request.urlopen(f"http://{sys.argv[1]}/healthz/ready", timeout=5)
print(f"   GET /healthz/ready -> {ready.status}")
text = urllib.request.urlopen(f"http://{sys.argv[2]}/stats/prometheus", timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith(("istio_tcp_connections_opened_total", "meshgate_route_miss_total{reason=\"unknown_host\"}",
                        "meshgate_upstream_cx_total", "meshgate_control_")):
        print("   " + line)
PY
kill -TERM "$GATEWAY_PID"; wait "$GATEWAY_PID" 2>/dev/null || true
say "The access log (one JSON line per connection)"
sed 's/^/   /' access.log
say "What the gateway logged"
sed 's/^/   /' meshgate.log
say "What the control component logged"
sed 's/^/   /' control.log
say "What httpbin logged"
sed 's/^/   /' httpbin.log
echo
echo "demo OK: a cluster-1 workload reached a cluster-2 workload over end-to-end mTLS through meshgate."
