// Token bucket for per-connection log lines, so a flood of bad connections
// cannot fill the disk. One per worker thread: no lock.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace meshgate::proxy {

class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  LogLimiter(double per_second = 20, double burst = 50) : rate_(per_second), burst_(burst), tokens_(burst) {}

  // True when a line may be written now. `suppressed` receives how many lines
  // were dropped since the last allowed one, so the caller can say so.
  bool Allow(uint64_t& suppressed, Clock::time_point now = Clock::now()) {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    if (tokens_ < 1) {
      ++dropped_;
      return false;
    }
    tokens_ -= 1;
    suppressed = dropped_;
    dropped_ = 0;
    return true;
  }

 private:
  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point last_ = Clock::now();
  uint64_t dropped_ = 0;
};

}  // namespace meshgate::proxy
