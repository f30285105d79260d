// What the scale benches read about their own process.
#pragma once

#include <fstream>
#include <string>

namespace meshgate::bench {

// VmRSS from /proc/self/status, in KiB; -1 when unreadable.
inline long RssKib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

}  // namespace meshgate::bench
