#include "base/address.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/names.h"

namespace meshgate::base {

namespace {

absl::Status Invalid(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("\"", AbslView(text), "\": ", AbslView(why)));
}

}  // namespace

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return Invalid(text, "missing ']' after the IPv6 address");
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') return Invalid(text, "missing :port");
    port = text.substr(close + 2);
    if (host.find(':') == std::string_view::npos) return Invalid(text, "brackets are for IPv6 addresses only");
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return Invalid(text, "missing :port (e.g. 0.0.0.0:15443)");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return Invalid(text, "IPv6 addresses need brackets (e.g. [::]:15443)");
    }
  }
  ListenAddress address;
  // Port 0 asks the kernel for a free port (tests, ad-hoc runs); the bound
  // port is logged.
  if (port != "0" && !ParsePortNumber(port, address.port)) return Invalid(text, "port must be 0..65535");
  auto ip = CanonicalIp(host);
  if (!ip) return Invalid(text, absl::StrCat("\"", AbslView(host), "\" is not an IP address"));
  address.ip = std::move(*ip);
  return address;
}

absl::StatusOr<IpPort> ParseIpWithOptionalPort(std::string_view text, uint16_t default_port) {
  if (auto ip = CanonicalIp(text)) return IpPort{*std::move(ip), default_port};
  if (text.find(':') == std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", AbslView(text), "\" is not an IP address (ip, ip:port or [ipv6]:port)"));
  }
  auto address = ParseListenAddress(text);
  if (!address.ok()) return address.status();
  if (address->port == 0) return Invalid(text, "port 0");
  return *std::move(address);
}

absl::StatusOr<HttpUrl> ParseHttpUrl(std::string_view url) {
  HttpUrl out;
  std::string_view rest;
  if (url.starts_with("https://")) {
    out.tls = true;
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    return Invalid(url, "must start with http:// or https://");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    return Invalid(url, "must be scheme://HOST[:PORT] only: meshgate adds the /v1/... paths");
  }
  std::string_view host = rest, port;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return Invalid(url, "missing ']' after the IPv6 address");
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return Invalid(url, "expected :PORT after ']'");
      port = rest.substr(close + 2);
    }
  } else if (const size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return Invalid(url, "missing host");
  if (auto ip = CanonicalIp(host)) {
    out.host = *ip;
  } else if (auto problem = FqdnProblem(host)) {
    return Invalid(url, absl::StrCat("host \"", AbslView(host), "\" ", *problem));
  } else {
    out.host = std::string(host);
  }
  out.port = out.tls ? 443 : 80;
  if (!port.empty() && (!ParsePortNumber(port, out.port) || out.port == 0)) {
    return Invalid(url, "port must be 1..65535");
  }
  return out;
}

std::string FormatIpPort(std::string_view ip, uint16_t port) {
  if (ip.find(':') != std::string_view::npos) return absl::StrCat("[", AbslView(ip), "]:", port);
  return absl::StrCat(AbslView(ip), ":", port);
}

}  // namespace meshgate::base
