// Istio YAML the end-to-end tests share.
#pragma once

namespace meshgate::testing {

// The cross-network Gateway an east-west gateway serves (Istio's
// samples/multicluster/expose-services.yaml exports "*.local"; the Istio 1.6
// multicluster setup exported "*.global"). meshgate fails closed without one,
// as Istio's AUTO_PASSTHROUGH gateway does. The selector is empty, so it
// selects every gateway, whatever its labels. The tests' meshgate listens on
// an ephemeral port, which counts as 15443 for Gateway servers.
inline constexpr char kCrossNetworkGateway[] =
    "apiVersion: networking.istio.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: cross-network-gateway, namespace: istio-system}\n"
    "spec:\n"
    "  selector: {}\n"
    "  servers:\n"
    "  - port: {number: 15443, name: tls, protocol: TLS}\n"
    "    tls: {mode: AUTO_PASSTHROUGH}\n"
    "    hosts: [\"*.local\", \"*.global\"]\n";

}  // namespace meshgate::testing
