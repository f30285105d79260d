// At most one log line per interval for an error that can repeat in a tight
// loop (an acceptor out of descriptors), counting what it held back. For the
// control loop's own sockets; the data path's per-worker token bucket is
// proxy/log_limiter.h. Not thread-safe: one per loop.
#pragma once

#include <chrono>
#include <cstdint>

namespace meshgate::base {

class LogInterval {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LogInterval(Clock::duration interval = std::chrono::seconds(1)) : interval_(interval) {}

  // True when a line may be written now; `suppressed` then receives how many
  // were held back since the last one, so the line can say so.
  bool Allow(uint64_t& suppressed, Clock::time_point now = Clock::now()) {
    if (logged_once_ && now - last_ < interval_) {
      ++held_;
      return false;
    }
    logged_once_ = true;
    last_ = now;
    suppressed = held_;
    held_ = 0;
    return true;
  }

 private:
  Clock::duration interval_;
  Clock::time_point last_{};
  bool logged_once_ = false;
  uint64_t held_ = 0;
};

}  // namespace meshgate::base
