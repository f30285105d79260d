// Follows a control component (meshgatectl serve): long-polls its
// /v1/routes?cluster= and hands each new version to the gateway, which
// builds a table and swaps it in like a file reload. While the component is
// away the last good table keeps serving, and requests back off (capped,
// exponential, jittered). Runs on the control loop. Asio-free header.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/io/http_server.h"
#include "config/settings/gateway_config.h"

namespace boost::asio {
class io_context;
}

namespace meshgate::proxy {

struct ControlStatus {
  std::string url;
  std::string cluster;
  // "connecting" (never answered yet), "synced" (following), "unreachable"
  // (the last request failed; retrying), "rejected" (the latest version
  // does not load; the previous one keeps serving).
  std::string state = "connecting";
  bool synced_once = false;        // some version was applied
  uint64_t applied_version = 0;    // the control component's version now serving
  uint64_t seen_version = 0;       // the newest version fetched (maybe rejected)
  std::string applied_etag;
  double last_applied_seconds = 0;  // Unix time, 0: never
  double last_contact_seconds = 0;  // the last answer of any kind
  std::string last_error;           // "" when the last exchange went well
  uint64_t updates_applied = 0;
  uint64_t updates_rejected = 0;
  uint64_t fetch_errors = 0;
  uint32_t consecutive_failures = 0;
  int64_t next_retry_ms = 0;  // while unreachable
};

class ControlSource {
 public:
  // Builds and installs a table from the resources; returns "" or why not.
  using Apply = std::function<std::string(const std::string& resources, const std::string& why)>;

  ControlSource(boost::asio::io_context& io, const config::GatewayConfig::Control& options,
                const std::string& cluster, Apply apply);
  ~ControlSource();
  ControlSource(const ControlSource&) = delete;
  ControlSource& operator=(const ControlSource&) = delete;

  void Start();
  const ControlStatus& status() const;  // control thread

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// One answer of the control component, taken into `status` with no clock and
// no I/O (ControlSource's reaction to every fetch; fuzzed on its own by
// tests/fuzz/fuzz_control_response.cc). 200 needs an X-Meshgate-Version;
// its body goes to `apply` unless its ETag is the one serving; 304 means
// nothing new; anything else, or no answer, is a failure.
struct ControlAnswer {
  bool ok = false;          // false: a failure was counted; back off
  bool fresh = false;       // a version not seen before
  bool recovered = false;   // the first good answer after failures
};
ControlAnswer HandleControlAnswer(ControlStatus& status, const io::HttpResult& result,
                                  const ControlSource::Apply& apply, double now);

}  // namespace meshgate::proxy
