// Runs the real meshgate binary as a child process for end-to-end tests.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace meshgate::testing {

// A fresh directory under $TMPDIR, removed on destruction.
// Polls `done` every 5 ms until it returns true or timeout_ms passes.
bool WaitFor(const std::function<bool()>& done, int timeout_ms = 5000);

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  // Writes `content` to path()/name and returns the full path.
  std::string Write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs meshgate with args to completion (for --check, --help...).
RunResult RunMeshgate(const std::vector<std::string>& args);

class MeshgateProcess {
 public:
  // Starts meshgate with `args` plus --listen 127.0.0.1:0 (overriding any config
  // file) unless args has --listen, and waits until it logs its port.
  explicit MeshgateProcess(std::vector<std::string> args);
  ~MeshgateProcess();

  bool running() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  // The operations endpoints, "127.0.0.1:PORT" ("" when off). Unless the
  // args set them, each is on 127.0.0.1 with a free port, so tests run in
  // parallel; and the drain is instant (--drain-delay 0s --drain-time 0s).
  std::string metrics_address() const { return AddressFromLog("metrics"); }
  std::string readiness_address() const { return AddressFromLog("readiness"); }
  std::string admin_address() const { return AddressFromLog("admin"); }
  // What meshgate wrote to stdout: the access log, by default.
  std::string Stdout() const;
  // SIGTERM without waiting.
  void SendSigterm() const;
  // Waits for exit; the exit code, or -1 on timeout (then kills it).
  int WaitExit(int timeout_ms);
  pid_t pid() const { return pid_; }
  // Resident set size in KiB, from /proc.
  long RssKib() const;
  // The log so far.
  std::string Log() const;
  // Waits until the log contains `text` `count` times; false on timeout.
  bool WaitForLog(const std::string& text, int count = 1, int timeout_ms = 5000) const;
  // SIGTERM, wait, return the exit code (-1 if it had to be killed).
  int Stop();
  // The "stats:" line meshgate logs at shutdown (after Stop()).
  std::string Stats() const;
  // Value of one counter in Stats(), 0 when absent.
  uint64_t Counter(const std::string& name) const;

 private:
  std::string AddressFromLog(const std::string& what) const;
  TempDir dir_;
  std::string log_path_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

}  // namespace meshgate::testing
