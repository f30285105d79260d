#include "tests/support/prometheus_server.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <regex>
#include <vector>

#include "base/io/http_server.h"

extern char** environ;

namespace meshgate::testing {

namespace {

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (const unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace

PrometheusServer::PrometheusServer(const TempDir& dir, const std::string& target)
    : log_(dir.path() + "/prometheus.log") {
  const std::string config = dir.Write(
      "prometheus.yml",
      "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
      "scrape_configs:\n"
      "- job_name: meshgate\n"
      "  metrics_path: /stats/prometheus\n"
      "  static_configs: [{targets: ['" + target + "']}]\n");
  const std::vector<std::string> args = {
      kPrometheusBinary, "--config.file=" + config, "--storage.tsdb.path=" + dir.path() + "/tsdb",
      "--web.listen-address=127.0.0.1:0", "--log.level=info"};
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
  posix_spawn_file_actions_destroy(&actions);
  // level=info ... msg="Listening on" address=127.0.0.1:43121
  static const std::regex kListening(R"(msg="Listening on" address=(127\.0\.0\.1:\d+))");
  WaitFor(
      [&] {
        const std::string log = Log();
        std::smatch m;
        if (std::regex_search(log, m, kListening)) address_ = m[1];
        return !address_.empty();
      },
      15000);
}

PrometheusServer::~PrometheusServer() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
}

std::string PrometheusServer::Log() const {
  std::ifstream in(log_);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

std::string PrometheusServer::Query(const std::string& promql) const {
  const io::HttpResult r = io::HttpCall(address_, "GET", "/api/v1/query?query=" + UrlEncode(promql), 2000);
  return r.status == 200 ? r.body : std::string();
}

}  // namespace meshgate::testing
