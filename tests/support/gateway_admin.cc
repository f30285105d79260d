#include "tests/support/gateway_admin.h"

#include <iostream>
#include <utility>

#include <boost/json.hpp>

#include "base/io/http_server.h"
#include "tests/support/meshgate_process.h"

namespace meshgate::testing {
namespace json = boost::json;

std::optional<ConfigVersions> ReadConfigVersions(const std::string& admin_address) {
  const io::HttpResult r = io::HttpCall(admin_address, "GET", "/config_dump", 2000);
  if (r.status != 200) return std::nullopt;
  boost::system::error_code ec;
  const json::value dump = json::parse(r.body, ec);
  if (ec || !dump.is_object()) return std::nullopt;
  const json::object& root = dump.as_object();
  const json::value* published = root.if_contains("version");
  if (published == nullptr) return std::nullopt;
  ConfigVersions out;
  out.published = published->to_number<uint64_t>();
  if (const json::value* workers = root.if_contains("workers_version")) {
    out.workers = workers->to_number<uint64_t>();
    return out;
  }
  // FALLBACK, to delete once the runtime reports "workers_version": the
  // published version stands in for it (what meshgate_config_version
  // reports). It only says the runtime has the version, not that the workers
  // have installed it, so a wait on it is no wait at all.
  static bool noted = false;
  if (!std::exchange(noted, true)) {
    std::cerr << "[ note     ] /config_dump has no workers_version: waiting on the published version\n";
  }
  out.workers = out.published;
  return out;
}

bool WaitForWorkersVersion(const std::string& admin_address, uint64_t version, int timeout_ms) {
  return WaitFor(
      [&] {
        const auto v = ReadConfigVersions(admin_address);
        return v && v->workers >= version;
      },
      timeout_ms);
}

bool WaitForWorkersToCatchUp(const std::string& admin_address, int timeout_ms) {
  const auto now = ReadConfigVersions(admin_address);
  return now && WaitForWorkersVersion(admin_address, now->published, timeout_ms);
}

}  // namespace meshgate::testing
