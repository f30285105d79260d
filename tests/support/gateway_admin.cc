#include "tests/support/gateway_admin.h"

#include <sstream>

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
  const json::value* published = dump.as_object().if_contains("version");
  const json::value* workers = dump.as_object().if_contains("workers_version");
  if (published == nullptr || workers == nullptr) return std::nullopt;
  ConfigVersions out;
  out.published = published->to_number<uint64_t>(ec);
  if (!ec) out.workers = workers->to_number<uint64_t>(ec);
  if (ec) return std::nullopt;
  const json::value* snapshot = dump.as_object().if_contains("snapshot");
  const json::value* workers_snapshot = dump.as_object().if_contains("workers_snapshot");
  if (snapshot == nullptr || workers_snapshot == nullptr) return std::nullopt;
  out.snapshot = snapshot->to_number<uint64_t>(ec);
  if (!ec) out.workers_snapshot = workers_snapshot->to_number<uint64_t>(ec);
  if (ec) return std::nullopt;
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
  return now && WaitFor(
                    [&] {
                      const auto v = ReadConfigVersions(admin_address);
                      return v && v->workers_snapshot >= now->snapshot;
                    },
                    timeout_ms);
}

double Metric(const std::string& metrics_address, const std::string& name,
              const std::map<std::string, std::string>& labels) {
  const io::HttpResult r = io::HttpCall(metrics_address, "GET", "/stats/prometheus", 3000);
  std::istringstream in(r.body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.compare(0, name.size(), name) != 0 || (line[name.size()] != '{' && line[name.size()] != ' ')) continue;
    bool match = true;
    for (const auto& label : labels) {
      match = match && line.find(label.first + "=\"" + label.second + "\"") != std::string::npos;
    }
    if (match) return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return -1;
}

}  // namespace meshgate::testing
