// One JSON line per connection, written off the data path: each worker pushes
// its lines into its own bounded single-producer queue, one writer thread
// drains them to the file. A full queue drops the line and counts it; a
// worker never waits for the disk.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace meshgate::proxy {

class AccessLog {
 public:
  static constexpr size_t kQueueCapacity = 4096;  // lines per worker

  // path: "stdout" or a file (appended to). sample_rate in [0, 1].
  static absl::StatusOr<std::unique_ptr<AccessLog>> Open(const std::string& path,
                                                         double sample_rate, size_t workers);
  ~AccessLog();  // writes what is queued, then closes
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Worker `worker` only: whether this connection is logged (sampling).
  bool Sample(size_t worker);
  // Any thread (a reload): the share of connections logged from now on.
  void SetSampleRate(double rate) { sample_rate_.store(rate, std::memory_order_relaxed); }
  // Worker `worker` only. False, and counted, when its queue is full.
  bool Submit(size_t worker, std::string line);

  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t written() const { return written_.load(std::memory_order_relaxed); }

 private:
  struct Queue;
  AccessLog(FILE* out, bool owned, double sample_rate, size_t workers);
  void WriterLoop();
  size_t Drain();

  FILE* out_;
  bool owned_;
  std::atomic<double> sample_rate_;
  std::vector<std::unique_ptr<Queue>> queues_;
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> written_{0};
  std::atomic<bool> stop_{false};
  std::thread writer_;
};

// JSON string escaping (quotes included) for access-log fields.
std::string JsonString(std::string_view text);

}  // namespace meshgate::proxy
