// A real Prometheus (Debian's `prometheus` package) scraping one meshgate
// metrics endpoint on loopback every second, and its HTTP query API. It
// listens on port 0 and is found from the address it logs.
#pragma once

#include <sys/types.h>

#include <string>

#include "tests/support/meshgate_process.h"

namespace meshgate::testing {

inline constexpr char kPrometheusBinary[] = "/usr/bin/prometheus";

class PrometheusServer {
 public:
  // Scrapes `target` ("127.0.0.1:PORT", path /stats/prometheus), its files
  // under `dir`.
  PrometheusServer(const TempDir& dir, const std::string& target);
  ~PrometheusServer();
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  bool started() const { return pid_ > 0 && !address_.empty(); }
  std::string address() const { return address_; }
  std::string Log() const;
  // GET /api/v1/query?query=<promql, URL-encoded here>: the body, "" unless 200.
  std::string Query(const std::string& promql) const;

 private:
  std::string log_;
  std::string address_;  // "127.0.0.1:PORT", once it has logged it
  pid_t pid_ = -1;
};

}  // namespace meshgate::testing
