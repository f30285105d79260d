#include "tests/support/meshgate_process.h"

#include <algorithm>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace meshgate::testing {
namespace fs = std::filesystem;

namespace {
std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

pid_t Spawn(const std::vector<std::string>& args, const std::string& out_path, const std::string& err_path) {
  std::vector<char*> argv;
  std::string bin = MESHGATE_BIN;
  argv.push_back(bin.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(err, 2);
    const int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int WaitExit(pid_t pid, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}
}  // namespace

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "meshgate-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string TempDir::Write(const std::string& name, const std::string& content) const {
  const fs::path p = fs::path(path_) / name;
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
  return p.string();
}

RunResult RunMeshgate(const std::vector<std::string>& args) {
  TempDir dir;
  const std::string out = dir.path() + "/out", err = dir.path() + "/err";
  RunResult r;
  r.exit_code = WaitExit(Spawn(args, out, err), 20000);
  r.out = ReadFile(out);
  r.err = ReadFile(err);
  return r;
}

MeshgateProcess::MeshgateProcess(std::vector<std::string> args) {
  const std::pair<const char*, const char*> defaults[] = {
      {"--listen", "127.0.0.1:0"},      {"--metrics", "127.0.0.1:0"},  {"--readiness", "127.0.0.1:0"},
      {"--admin", "127.0.0.1:0"},       {"--drain-delay", "0s"},       {"--drain-time", "0s"}};
  for (const auto& [flag, value] : defaults) {
    if (std::find(args.begin(), args.end(), flag) != args.end()) continue;
    args.push_back(flag);
    args.push_back(value);
  }
  log_path_ = dir_.path() + "/meshgate.log";
  pid_ = Spawn(args, dir_.path() + "/stdout", log_path_);
  static const std::regex kListening(R"(listening on 127\.0\.0\.1:(\d+))");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch m;
    const std::string log = Log();
    if (std::regex_search(log, m, kListening)) {
      port_ = static_cast<uint16_t>(std::stoi(m[1]));
      return;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {  // exited early
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

MeshgateProcess::~MeshgateProcess() { Stop(); }

std::string MeshgateProcess::AddressFromLog(const std::string& what) const {
  const std::regex pattern(what + R"( serving on (127\.0\.0\.1:\d+|0\.0\.0\.0:\d+))");
  std::smatch m;
  const std::string log = Log();
  return std::regex_search(log, m, pattern) ? std::string(m[1]) : std::string();
}

std::string MeshgateProcess::Stdout() const { return ReadFile(dir_.path() + "/stdout"); }

void MeshgateProcess::SendSigterm() const {
  if (pid_ > 0) ::kill(pid_, SIGTERM);
}

int MeshgateProcess::WaitExit(int timeout_ms) {
  if (pid_ <= 0) return -1;
  const int code = ::meshgate::testing::WaitExit(pid_, timeout_ms);
  pid_ = -1;
  return code;
}

bool WaitFor(const std::function<bool()>& done, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool MeshgateProcess::WaitForLog(const std::string& text, int count, int timeout_ms) const {
  return WaitFor(
      [&] {
        const std::string log = Log();
        int seen = 0;
        for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++seen;
        return seen >= count;
      },
      timeout_ms);
}

long MeshgateProcess::RssKib() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

std::string MeshgateProcess::Log() const { return ReadFile(log_path_); }

int MeshgateProcess::Stop() {
  if (pid_ < 0) return -1;
  kill(pid_, SIGTERM);
  const int code = ::meshgate::testing::WaitExit(pid_, 10000);
  pid_ = -1;
  return code;
}

std::string MeshgateProcess::Stats() const {
  const std::string log = Log();
  const size_t at = log.rfind("stats: ");
  if (at == std::string::npos) return "";
  return log.substr(at + 7, log.find('\n', at) - at - 7);
}

uint64_t MeshgateProcess::Counter(const std::string& name) const {
  const std::string stats = " " + Stats() + " ";
  const size_t at = stats.find(" " + name + "=");
  if (at == std::string::npos) return 0;
  return std::stoull(stats.substr(at + name.size() + 2));
}

}  // namespace meshgate::testing
