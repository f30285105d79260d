#include "proxy/stats.h"

#include <iterator>
#include <vector>

#include "fmt/format.h"

namespace meshgate::proxy {

bool IsNotTls(sni::RejectReason reason) {
  using R = sni::RejectReason;
  return reason == R::kPlainHttp || reason == R::kSslV2 || reason == R::kNotTls ||
         reason == R::kNotHandshakeRecord || reason == R::kBadRecordVersion;
}

std::string_view ToString(Termination t) {
  switch (t) {
#define MESHGATE_TERM_CASE(name, str) \
  case Termination::name:             \
    return str;
    MESHGATE_TERMINATIONS(MESHGATE_TERM_CASE)
#undef MESHGATE_TERM_CASE
  }
  return "unknown";
}

namespace {
template <size_t N, typename Enum>
void AppendArray(std::string& out, std::string_view prefix,
                 const ProxyStats* const* stats, size_t count,
                 std::array<Counter, N> ProxyStats::*member, size_t first, Enum) {
  for (size_t i = first; i < N; ++i) {
    uint64_t sum = 0;
    for (size_t w = 0; w < count; ++w) sum += (stats[w]->*member)[i].value();
    if (sum == 0) continue;
    fmt::format_to(std::back_inserter(out), " {}.{}={}", prefix, ToString(static_cast<Enum>(i)), sum);
  }
}
}  // namespace

std::string FormatStats(const ProxyStats* const* stats, size_t count) {
  std::string out;
  std::vector<const ProxyCounters*> sets(stats, stats + count);
  base::AppendSummary(out, "", sets.data(), count, /*skip_zero=*/false);
  // Enum value 0 is kNone for the sni and route enums; Termination starts at 0.
  AppendArray(out, "hello_rejected", stats, count, &ProxyStats::hello_rejected, 1, sni::RejectReason{});
  AppendArray(out, "route_miss", stats, count, &ProxyStats::route_miss, 1, config::RouteMiss{});
  AppendArray(out, "termination", stats, count, &ProxyStats::terminations, 0, Termination{});
  AppendArray(out, "refused", stats, count, &ProxyStats::refused, 0, Refusal{});
  return out;
}

}  // namespace meshgate::proxy
