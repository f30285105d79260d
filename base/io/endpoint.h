// Asio endpoints as text: the same form base/address.h parses.
#pragma once

#include <string>

#include <boost/asio/ip/tcp.hpp>

#include "fmt/format.h"

namespace meshgate::io {

// "1.2.3.4:80" or "[::1]:80".
inline std::string FormatEndpoint(const boost::asio::ip::tcp::endpoint& ep) {
  return ep.address().is_v6() ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                              : fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

// The same for an address as text (IPv6 when it has a ':').
inline std::string FormatHostPort(const std::string& address, uint16_t port) {
  return address.find(':') != std::string::npos ? fmt::format("[{}]:{}", address, port)
                                                : fmt::format("{}:{}", address, port);
}

}  // namespace meshgate::io
