// Machine CPU over an interval (issue 17, part 2's definition, the same as
// bench/compare/bench.py's MachineMeter): busy time of all cores from the
// aggregate "cpu" line of /proc/stat (proc(5): user + nice + system + irq +
// softirq + steal), so softirq and the kworkers that run sockmap's egress
// redirects count too. The machine is shared, so other people's processes are
// estimated and taken out: others = busy - (this process + kernel threads).
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace sockmap_proto {

inline double MachineBusySeconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  unsigned long long v[8] = {};
  in >> cpu;
  for (auto& x : v) in >> x;
  return static_cast<double>(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / sysconf(_SC_CLK_TCK);
}

// utime+stime ticks of this process (all threads) and of every kernel thread
// (pid 2 and its children): work moved out of the process lands there.
inline std::map<int, unsigned long long> OurTicks() {
  std::map<int, unsigned long long> out;
  const int self = getpid();
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    const int pid = atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream f("/proc/" + std::string(e->d_name) + "/stat");
    std::string st((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const size_t close = st.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(st.substr(close + 2));
    std::string field[13];
    for (auto& x : field) rest >> x;
    const int ppid = atoi(field[1].c_str());
    if (pid == self || pid == 2 || ppid == 2) {
      out[pid] = std::strtoull(field[11].c_str(), nullptr, 10) + std::strtoull(field[12].c_str(), nullptr, 10);
    }
  }
  closedir(d);
  return out;
}

class MachineMeter {
 public:
  MachineMeter() : busy0_(MachineBusySeconds()), ours0_(OurTicks()) {}
  struct Reading {
    double machine_s;  // busy - others
    double raw_s;      // all busy time
  };
  Reading Stop() const {
    const double busy = MachineBusySeconds() - busy0_;
    unsigned long long ticks = 0;
    for (const auto& [pid, t] : OurTicks()) {
      auto it = ours0_.find(pid);
      ticks += t - (it == ours0_.end() ? 0 : it->second);
    }
    const double ours = static_cast<double>(ticks) / sysconf(_SC_CLK_TCK);
    const double others = busy > ours ? busy - ours : 0.0;
    return {busy - others, busy};
  }

 private:
  double busy0_;
  std::map<int, unsigned long long> ours0_;
};

}  // namespace sockmap_proto
