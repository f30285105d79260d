// A tiny authoritative UDP DNS server on 127.0.0.1 for the resolver tests:
// A/AAAA from a mutable table, and switchable failures (NXDOMAIN, SERVFAIL,
// REFUSED, silence). It runs on its own thread; every method is thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace meshgate::testing {

class TestDnsServer {
 public:
  enum class Mode { kAnswer, kNxdomain, kServfail, kRefused, kDrop };
  static constexpr uint16_t kTypeA = 1;
  static constexpr uint16_t kTypeAaaa = 28;
  using Clock = std::chrono::steady_clock;

  TestDnsServer();  // binds 127.0.0.1 on an ephemeral port and starts serving
  ~TestDnsServer();
  TestDnsServer(const TestDnsServer&) = delete;
  TestDnsServer& operator=(const TestDnsServer&) = delete;

  std::string address() const;  // "127.0.0.1:port"

  // Replaces `name`'s records: each address becomes an A or AAAA record
  // (duplicates kept, to test deduplication). A name not in the table is
  // NXDOMAIN; a name without records of the asked type is NODATA.
  void Set(const std::string& name, std::vector<std::string> addresses, uint32_t ttl);
  void Remove(const std::string& name);
  // How to answer queries of `qtype` (0: every type). kAnswer answers from the table.
  void SetMode(Mode mode, uint16_t qtype = 0);

  size_t Queries(const std::string& name, uint16_t qtype) const;
  size_t TotalQueries() const;
  std::vector<Clock::time_point> QueryTimes(const std::string& name, uint16_t qtype) const;

 private:
  struct Records {
    std::vector<std::array<uint8_t, 4>> a;
    std::vector<std::array<uint8_t, 16>> aaaa;
    uint32_t ttl = 0;
  };
  void Serve();
  // Builds the reply to one query; false means stay silent.
  bool Answer(const uint8_t* query, size_t len, std::vector<uint8_t>& reply);

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::map<std::string, Records> table_;
  Mode mode_ = Mode::kAnswer;
  std::map<uint16_t, Mode> type_mode_;
  std::map<std::pair<std::string, uint16_t>, std::vector<Clock::time_point>> log_;
  std::thread thread_;
};

}  // namespace meshgate::testing
