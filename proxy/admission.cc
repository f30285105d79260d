#include "proxy/admission.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/hash/hash.h"

namespace meshgate::proxy {

std::string_view ToString(Refusal r) {
  switch (r) {
#define MESHGATE_REFUSAL_CASE(name, str) \
  case Refusal::name:                    \
    return str;
    MESHGATE_REFUSALS(MESHGATE_REFUSAL_CASE)
#undef MESHGATE_REFUSAL_CASE
  }
  return "unknown";
}

Refusal RefusalOf(sni::ProxyHeaderError error) {
  switch (error) {
    case sni::ProxyHeaderError::kBadSignature: return Refusal::kProxyMissing;
    case sni::ProxyHeaderError::kBadVersion: return Refusal::kProxyBadVersion;
    case sni::ProxyHeaderError::kBadCommand: return Refusal::kProxyBadCommand;
    case sni::ProxyHeaderError::kBadFamily: return Refusal::kProxyBadFamily;
    case sni::ProxyHeaderError::kTruncated: return Refusal::kProxyTruncated;
    case sni::ProxyHeaderError::kOversized: return Refusal::kProxyOversized;
    case sni::ProxyHeaderError::kBadV1Field: return Refusal::kProxyBadV1Field;
    case sni::ProxyHeaderError::kBadTlv: return Refusal::kProxyBadTlv;
    case sni::ProxyHeaderError::kBadChecksum: return Refusal::kProxyBadChecksum;
  }
  return Refusal::kProxyMissing;
}

bool AcceptRateBucket::TryTake(double rate, uint32_t burst, int64_t now_ns) {
  if (!(rate > 0)) return true;
  const auto interval = static_cast<int64_t>(std::llround(1e9 / rate));
  const int64_t horizon = interval * std::max<int64_t>(1, burst);
  int64_t tat = tat_ns_.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t next = std::max(tat, now_ns) + interval;
    if (next - now_ns > horizon) return false;  // the bucket is empty
    if (tat_ns_.compare_exchange_weak(tat, next, std::memory_order_relaxed)) return true;
  }
}

SourceTable::Shard& SourceTable::ShardOf(const Key& source) const {
  return shards_[absl::HashOf(source) % shards_.size()];
}

bool SourceTable::TryAcquire(const Key& source, uint32_t cap) {
  Shard& shard = ShardOf(source);
  std::lock_guard lock(shard.mu);
  uint32_t& open = shard.open[source];
  if (open >= cap) {
    if (open == 0) shard.open.erase(source);  // cap 0: nothing was there
    return false;
  }
  ++open;
  return true;
}

void SourceTable::Release(const Key& source) {
  Shard& shard = ShardOf(source);
  std::lock_guard lock(shard.mu);
  auto it = shard.open.find(source);
  if (it == shard.open.end()) return;
  if (--it->second == 0) shard.open.erase(it);  // the table holds open sources only
}

uint32_t SourceTable::count(const Key& source) const {
  Shard& shard = ShardOf(source);
  std::lock_guard lock(shard.mu);
  auto it = shard.open.find(source);
  return it == shard.open.end() ? 0 : it->second;
}

size_t SourceTable::sources() const {
  size_t n = 0;
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    n += shard.open.size();
  }
  return n;
}

AdmissionTicket& AdmissionTicket::operator=(AdmissionTicket&& other) noexcept {
  if (this == &other) return *this;
  Release();
  admission_ = std::exchange(other.admission_, nullptr);
  source_ = other.source_;
  has_source_ = std::exchange(other.has_source_, false);
  return *this;
}

void AdmissionTicket::Release() {
  if (admission_ == nullptr) return;
  admission_->Release(*this);
  admission_ = nullptr;
  has_source_ = false;
}

Admission::Decision Admission::Admit(const SourceTable::Key& source, const ConnectionLimits& limits,
                                     Clock::time_point now, bool defer_source) {
  Decision d;
  if (memory().over()) {
    d.refused = Refusal::kMemory;
    return d;
  }
  const int64_t open = open_.fetch_add(1, std::memory_order_relaxed) + 1;
  d.ticket.admission_ = this;  // from here the ticket gives back what it took
  if (limits.max_connections != 0 && static_cast<uint64_t>(open) > limits.max_connections) {
    d.refused = Refusal::kMaxConnections;
  } else if (!defer_source && limits.per_source != 0 && !sources_.TryAcquire(source, limits.per_source)) {
    d.refused = Refusal::kPerSource;
  } else {
    d.ticket.source_ = source;
    d.ticket.has_source_ = !defer_source && limits.per_source != 0;
    const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    if (!rate_.TryTake(limits.accept_rate, limits.accept_burst, now_ns)) d.refused = Refusal::kAcceptRate;
  }
  if (d.refused) d.ticket.Release();
  return d;
}

bool Admission::AdmitSource(AdmissionTicket& ticket, const SourceTable::Key& source, uint32_t cap) {
  if (ticket.admission_ != this || ticket.has_source_) return true;  // not admitted here, or counted already
  if (!sources_.TryAcquire(source, cap)) return false;
  ticket.source_ = source;
  ticket.has_source_ = true;
  return true;
}

void Admission::Release(const AdmissionTicket& ticket) {
  if (ticket.has_source_) sources_.Release(ticket.source_);
  open_.fetch_sub(1, std::memory_order_relaxed);
}

void Admission::RecordMemory(uint64_t rss_bytes, uint64_t limit_bytes) {
  rss_bytes_.store(rss_bytes, std::memory_order_relaxed);
  memory_limit_.store(limit_bytes, std::memory_order_relaxed);
}

MemoryState Admission::memory() const {
  return {rss_bytes_.load(std::memory_order_relaxed), memory_limit_.load(std::memory_order_relaxed)};
}

uint64_t ResidentBytes() {
  // statm: size resident shared text lib data dt, in pages (proc(5)).
  const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace meshgate::proxy
