#include "proxy/access_log.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

namespace meshgate::proxy {

// Lamport's single-producer single-consumer ring: the worker writes `head`,
// the writer thread `tail`; slots between them belong to one side only.
struct AccessLog::Queue {
  std::unique_ptr<std::string[]> slots{new std::string[kQueueCapacity]};
  std::atomic<size_t> head{0};
  std::atomic<size_t> tail{0};
  uint64_t rng = 0x9e3779b97f4a7c15ULL;  // the producer's sampling state
};

absl::StatusOr<std::unique_ptr<AccessLog>> AccessLog::Open(const std::string& path,
                                                           double sample_rate, size_t workers) {
  FILE* out = stdout;
  bool owned = false;
  if (path != "stdout") {
    out = std::fopen(path.c_str(), "ae");
    if (out == nullptr) {
      return absl::UnavailableError(fmt::format("access log {}: {}", path, std::strerror(errno)));
    }
    owned = true;
  }
  return std::unique_ptr<AccessLog>(new AccessLog(out, owned, sample_rate, workers));
}

AccessLog::AccessLog(FILE* out, bool owned, double sample_rate, size_t workers)
    : out_(out), owned_(owned), sample_rate_(sample_rate) {
  for (size_t i = 0; i < workers; ++i) {
    queues_.push_back(std::make_unique<Queue>());
    queues_.back()->rng += i * 0x632be59bd9b4e019ULL;
  }
  writer_ = std::thread([this] { WriterLoop(); });
}

AccessLog::~AccessLog() {
  stop_ = true;
  writer_.join();
  Drain();
  std::fflush(out_);
  if (owned_) std::fclose(out_);
}

bool AccessLog::Sample(size_t worker) {
  const double rate = sample_rate_.load(std::memory_order_relaxed);
  if (rate >= 1) return true;
  if (rate <= 0) return false;
  uint64_t& x = queues_[worker]->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return static_cast<double>(x >> 11) * 0x1.0p-53 < rate;
}

bool AccessLog::Submit(size_t worker, std::string line) {
  Queue& q = *queues_[worker];
  const size_t head = q.head.load(std::memory_order_relaxed);
  if (head - q.tail.load(std::memory_order_acquire) >= kQueueCapacity) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  q.slots[head % kQueueCapacity] = std::move(line);
  q.head.store(head + 1, std::memory_order_release);
  return true;
}

size_t AccessLog::Drain() {
  size_t lines = 0;
  for (auto& qp : queues_) {
    Queue& q = *qp;
    const size_t head = q.head.load(std::memory_order_acquire);
    size_t tail = q.tail.load(std::memory_order_relaxed);
    for (; tail != head; ++tail, ++lines) {
      std::string& line = q.slots[tail % kQueueCapacity];
      line.push_back('\n');
      std::fwrite(line.data(), 1, line.size(), out_);
      std::string().swap(line);
    }
    q.tail.store(tail, std::memory_order_release);
  }
  if (lines > 0) {
    std::fflush(out_);
    written_.fetch_add(lines, std::memory_order_relaxed);
  }
  return lines;
}

void AccessLog::WriterLoop() {
  while (!stop_.load(std::memory_order_relaxed)) {
    if (Drain() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string JsonString(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          out += fmt::format("\\u{:04x}", c);  // ALPN bytes are opaque: never raw
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace meshgate::proxy
