// What the scale benches read about their own process.
#pragma once

#include <fstream>
#include <string>

namespace meshgate::bench {

// A "Name:  123 kB" field of /proc/self/status, in KiB; -1 when unreadable.
inline long StatusKib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0 && line.size() > field.size() && line[field.size()] == ':') {
      return std::stol(line.substr(field.size() + 1));
    }
  }
  return -1;
}

// VmRSS: resident now.
inline long RssKib() { return StatusKib("VmRSS"); }
// VmHWM: the peak of VmRSS over the process's life so far (proc(5)).
inline long PeakRssKib() { return StatusKib("VmHWM"); }

}  // namespace meshgate::bench
