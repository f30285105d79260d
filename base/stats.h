// Stats lists, Envoy's idea in plain C++: a component declares its counters
// once, as a list macro taking COUNTER and GAUGE,
//
//   #define MESHGATE_DNS_STATS(COUNTER, GAUGE)          \
//     COUNTER(queries, "Queries sent.")                  \
//     GAUGE(watches, "Names being followed.")
//   MESHGATE_DEFINE_STATS(DnsStats, MESHGATE_DNS_STATS);
//
// and that one list makes the struct's fields, the names and help texts the
// Prometheus output walks (kInfo), and the "name=value" exit summary. A
// counter cannot exist in one and be missing from another.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace meshgate::base {

// One writer thread (a worker, or the control loop), any number of readers:
// an increment is a relaxed load+store, no locked instruction.
class Counter {
 public:
  void Inc(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void Dec() { v_.store(v_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed); }
  void Set(uint64_t n) { v_.store(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Any number of writer threads (per-cluster stats every worker bumps): a
// relaxed fetch_add.
class SharedCounter {
 public:
  void Inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  void Dec() { v_.fetch_sub(1, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

enum class StatKind : uint8_t { kCounter, kGauge };

struct StatInfo {
  std::string_view name;  // the field's name, e.g. "queries"
  StatKind kind;
  std::string_view help;  // one sentence, for # HELP
};

// Appends "prefix+name=value" for each stat of `sets` (summed), separated by
// spaces; zeros are skipped when `skip_zero`.
template <typename Stats>
void AppendSummary(std::string& out, std::string_view prefix, const Stats* const* sets, size_t count,
                   bool skip_zero) {
  for (size_t i = 0; i < Stats::kSize; ++i) {
    uint64_t total = 0;
    for (size_t s = 0; s < count; ++s) total += sets[s]->All()[i]->value();
    if (skip_zero && total == 0) continue;
    if (!out.empty()) out += ' ';
    out.append(prefix).append(Stats::kInfo[i].name).append("=").append(std::to_string(total));
  }
}

}  // namespace meshgate::base

#define MESHGATE_STAT_MEMBER_(name, help) ::meshgate::base::Counter name;
#define MESHGATE_SHARED_STAT_MEMBER_(name, help) ::meshgate::base::SharedCounter name;
#define MESHGATE_STAT_COUNTER_INFO_(name, help) \
  ::meshgate::base::StatInfo{#name, ::meshgate::base::StatKind::kCounter, help},
#define MESHGATE_STAT_GAUGE_INFO_(name, help) ::meshgate::base::StatInfo{#name, ::meshgate::base::StatKind::kGauge, help},
#define MESHGATE_STAT_REF_(name, help) &name,

// Declares `struct Type` from LIST(COUNTER, GAUGE): one Counter per entry,
// kInfo (name, kind, help) in list order, and All() (the counters in the
// same order). MESHGATE_DEFINE_SHARED_STATS is the same with SharedCounter,
// for sets that several threads write.
#define MESHGATE_DEFINE_STATS_OF_(Type, Counter, MEMBER, LIST)                                          \
  struct Type {                                                                                        \
    LIST(MEMBER, MEMBER)                                                                               \
    static constexpr ::meshgate::base::StatInfo kInfo[] = {                                            \
        LIST(MESHGATE_STAT_COUNTER_INFO_, MESHGATE_STAT_GAUGE_INFO_)};                                 \
    static constexpr size_t kSize = sizeof(kInfo) / sizeof(kInfo[0]);                                  \
    std::array<const Counter*, kSize> All() const { return {LIST(MESHGATE_STAT_REF_, MESHGATE_STAT_REF_)}; } \
  }
#define MESHGATE_DEFINE_STATS(Type, LIST) \
  MESHGATE_DEFINE_STATS_OF_(Type, ::meshgate::base::Counter, MESHGATE_STAT_MEMBER_, LIST)
#define MESHGATE_DEFINE_SHARED_STATS(Type, LIST) \
  MESHGATE_DEFINE_STATS_OF_(Type, ::meshgate::base::SharedCounter, MESHGATE_SHARED_STAT_MEMBER_, LIST)
