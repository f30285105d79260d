// Addresses as people write them: "ip:port", "[v6]:port", "ip" with a default
// port, and http(s)://HOST[:PORT] URLs. The one address parser: meshgate.yaml,
// serve.yaml, the command lines and the DNS resolver all go through it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace meshgate::base {

// An IP (canonical text, unbracketed) and a port.
struct IpPort {
  std::string ip;
  uint16_t port = 0;
};

// "0.0.0.0:15443" or "[::]:15443"; the IP is canonical and unbracketed, the
// port 0..65535 (0: the kernel picks). Host names are rejected.
using ListenAddress = IpPort;
absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text);

// "ip" (then `default_port`), "ip:port", "[ipv6]:port" or a bare IPv6 address;
// port 1..65535.
absl::StatusOr<IpPort> ParseIpWithOptionalPort(std::string_view text, uint16_t default_port);

// "http[s]://HOST[:PORT]" with nothing after it but an optional "/". HOST is
// an IP (brackets for IPv6) or a DNS name.
struct HttpUrl {
  bool tls = false;
  std::string host;  // a name or an IP (unbracketed)
  uint16_t port = 0;
};
absl::StatusOr<HttpUrl> ParseHttpUrl(std::string_view url);

// "ip:port", with brackets around an IPv6 address.
std::string FormatIpPort(std::string_view ip, uint16_t port);

}  // namespace meshgate::base
