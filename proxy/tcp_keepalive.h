// TCP keepalive on an upstream socket, as a DestinationRule asks for it
// (connectionPool.tcp.tcpKeepalive).
#pragma once

#include "config/model/traffic_policy.h"

namespace meshgate::proxy {

// Sets SO_KEEPALIVE and, for each field the rule sets, TCP_KEEPCNT (probes),
// TCP_KEEPIDLE (time) and TCP_KEEPINTVL (interval) on `fd`. A field left
// unset keeps the OS default, as Envoy does with Istio's
// upstream_connection_options.tcp_keepalive. Istio's docs
// (networking.istio.io DestinationRule, ConnectionPoolSettings.TCPSettings.
// TcpKeepalive): "Default is to use the OS level configuration (unless
// overridden, Linux defaults to 9)" probes, 7200s time, 75s interval.
// Durations go to the kernel in whole seconds, at least 1 (0 is EINVAL),
// and every value is capped at Linux's maximum.
// Returns 0, or the errno of the first option the kernel refused.
int ApplyTcpKeepalive(int fd, const config::TcpKeepalive& keepalive);

}  // namespace meshgate::proxy
