// Overload protection's parts (proxy/admission.h): the accept-rate token
// bucket, the per-source table shared by every worker, and the order and
// accounting of Admission's checks. Threads stand in for workers.
#include "proxy/admission.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace meshgate::proxy {
namespace {

using namespace std::chrono_literals;
constexpr int64_t kSecond = 1'000'000'000;

SourceTable::Key Source(uint8_t last) {
  SourceTable::Key key{};
  key[10] = key[11] = 0xff;  // IPv4-mapped 127.0.0.last
  key[12] = 127;
  key[15] = last;
  return key;
}

TEST(AcceptRateBucket, AdmitsExactlyTheBurstAtOnceThenTheRate) {
  AcceptRateBucket bucket;
  const int64_t t0 = 1000 * kSecond;
  int admitted = 0;
  for (int i = 0; i < 20; ++i) admitted += bucket.TryTake(10, 5, t0);
  EXPECT_EQ(admitted, 5);
  // 10/s: one token every 100 ms.
  EXPECT_FALSE(bucket.TryTake(10, 5, t0 + kSecond / 10 - 1));
  EXPECT_TRUE(bucket.TryTake(10, 5, t0 + kSecond / 10));
  EXPECT_FALSE(bucket.TryTake(10, 5, t0 + kSecond / 10));
  // A long pause refills the bucket to its size, not beyond.
  admitted = 0;
  for (int i = 0; i < 20; ++i) admitted += bucket.TryTake(10, 5, t0 + 60 * kSecond);
  EXPECT_EQ(admitted, 5);
}

TEST(AcceptRateBucket, SustainedRateOverASecondIsTheRatePlusTheBurst) {
  AcceptRateBucket bucket;
  const int64_t t0 = 5 * kSecond;
  int admitted = 0;
  // 10,000 attempts spread over one second at rate 100, burst 20.
  for (int i = 0; i < 10000; ++i) admitted += bucket.TryTake(100, 20, t0 + i * (kSecond / 10000));
  EXPECT_GE(admitted, 20 + 99);
  EXPECT_LE(admitted, 20 + 100);
}

TEST(AcceptRateBucket, OffWhenTheRateIsZero) {
  AcceptRateBucket bucket;
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(bucket.TryTake(0, 0, kSecond));
}

TEST(AcceptRateBucket, ThreadsTogetherTakeExactlyTheBurst) {
  AcceptRateBucket bucket;
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) admitted += bucket.TryTake(1, 300, 10 * kSecond);  // one instant
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 300);
}

TEST(SourceTable, EachSourceGetsExactlyItsCap) {
  SourceTable table;
  for (uint8_t s = 2; s <= 50; ++s) {
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(table.TryAcquire(Source(s), 3)) << int(s);
    EXPECT_FALSE(table.TryAcquire(Source(s), 3)) << int(s);
  }
  EXPECT_EQ(table.sources(), 49u);
  EXPECT_EQ(table.count(Source(7)), 3u);
  table.Release(Source(7));
  EXPECT_EQ(table.count(Source(7)), 2u);
  EXPECT_TRUE(table.TryAcquire(Source(7), 3));
  EXPECT_FALSE(table.TryAcquire(Source(8), 3));
  // Released to zero, a source leaves the table: no growth with churn.
  for (uint8_t s = 2; s <= 50; ++s) {
    for (int i = 0; i < 3; ++i) table.Release(Source(s));
  }
  EXPECT_EQ(table.sources(), 0u);
  EXPECT_EQ(table.count(Source(7)), 0u);
}

TEST(SourceTable, TheCountIsGlobalAcrossThreads) {
  SourceTable table;
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) admitted += table.TryAcquire(Source(9), 100);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 100);
  EXPECT_EQ(table.count(Source(9)), 100u);
}

TEST(Admission, GlobalCapRefusesAndTicketsGiveTheirSlotBack) {
  Admission admission;
  ConnectionLimits limits;
  limits.max_connections = 2;
  auto a = admission.Admit(Source(2), limits);
  auto b = admission.Admit(Source(3), limits);
  ASSERT_FALSE(a.refused);
  ASSERT_FALSE(b.refused);
  auto c = admission.Admit(Source(4), limits);
  ASSERT_TRUE(c.refused);
  EXPECT_EQ(*c.refused, Refusal::kMaxConnections);
  EXPECT_EQ(admission.open(), 2u);  // the refusal took nothing
  { AdmissionTicket gone = std::move(a.ticket); }
  EXPECT_EQ(admission.open(), 1u);
  EXPECT_FALSE(admission.Admit(Source(4), limits).refused);
  EXPECT_EQ(admission.open(), 1u);  // that one's ticket went with its Decision
}

TEST(Admission, PerSourceRefusalLeavesOtherSourcesAndTheTotalAlone) {
  Admission admission;
  ConnectionLimits limits;
  limits.per_source = 1;
  auto first = admission.Admit(Source(2), limits);
  ASSERT_FALSE(first.refused);
  EXPECT_TRUE(first.ticket.counts_source());
  auto second = admission.Admit(Source(2), limits);
  ASSERT_TRUE(second.refused);
  EXPECT_EQ(*second.refused, Refusal::kPerSource);
  auto other = admission.Admit(Source(3), limits);
  EXPECT_FALSE(other.refused);
  EXPECT_EQ(admission.open(), 2u);
  EXPECT_EQ(admission.sources().count(Source(2)), 1u);
}

// A trusted PROXY protocol source (README "PROXY protocol"): the balancer's
// address is not counted at accept; the carried client is, once known, and
// its slot goes back with the ticket.
TEST(Admission, DeferredSourceIsCountedForTheCarriedClient) {
  Admission admission;
  ConnectionLimits limits;
  limits.per_source = 1;
  auto lb1 = admission.Admit(Source(3), limits, Admission::Clock::now(), /*defer_source=*/true);
  auto lb2 = admission.Admit(Source(3), limits, Admission::Clock::now(), /*defer_source=*/true);
  ASSERT_FALSE(lb1.refused);
  ASSERT_FALSE(lb2.refused) << "the balancer itself is not capped";
  EXPECT_FALSE(lb1.ticket.counts_source());
  EXPECT_EQ(admission.sources().count(Source(3)), 0u);
  EXPECT_TRUE(admission.AdmitSource(lb1.ticket, Source(10), 1));
  EXPECT_TRUE(lb1.ticket.counts_source());
  EXPECT_FALSE(admission.AdmitSource(lb2.ticket, Source(10), 1)) << "the same client twice";
  EXPECT_TRUE(admission.AdmitSource(lb2.ticket, Source(11), 1));
  EXPECT_TRUE(admission.AdmitSource(lb2.ticket, Source(12), 1)) << "counted once per ticket";
  EXPECT_EQ(admission.sources().count(Source(12)), 0u);
  { AdmissionTicket gone = std::move(lb1.ticket); }
  EXPECT_EQ(admission.sources().count(Source(10)), 0u);
  EXPECT_EQ(admission.open(), 1u);
}

TEST(Admission, RefusalOfEveryHeaderErrorIsAProxyProtocolReason) {
  for (size_t i = 0; i < sni::kProxyHeaderErrorCount; ++i) {
    const auto error = static_cast<sni::ProxyHeaderError>(i);
    const std::string_view reason = ToString(RefusalOf(error));
    EXPECT_EQ(reason.substr(0, 15), "proxy_protocol_") << sni::ToString(error);
    if (error != sni::ProxyHeaderError::kBadSignature) {
      EXPECT_EQ(reason.substr(15), sni::ToString(error));
    }
  }
  EXPECT_EQ(ToString(RefusalOf(sni::ProxyHeaderError::kBadSignature)), "proxy_protocol_missing");
}

TEST(Admission, RateRefusalGivesBackThePerSourceSlot) {
  Admission admission;
  ConnectionLimits limits;
  limits.per_source = 10;
  limits.accept_rate = 1;
  limits.accept_burst = 1;
  const auto now = Admission::Clock::now();
  auto first = admission.Admit(Source(2), limits, now);
  ASSERT_FALSE(first.refused);
  auto second = admission.Admit(Source(2), limits, now);
  ASSERT_TRUE(second.refused);
  EXPECT_EQ(*second.refused, Refusal::kAcceptRate);
  EXPECT_EQ(admission.sources().count(Source(2)), 1u);
  EXPECT_EQ(admission.open(), 1u);
}

TEST(Admission, MemoryOverTheLimitRefusesUntilASampleIsBackUnder) {
  Admission admission;
  ConnectionLimits limits;
  admission.RecordMemory(2 << 20, 1 << 20);
  EXPECT_TRUE(admission.memory().over());
  auto refused = admission.Admit(Source(2), limits);
  ASSERT_TRUE(refused.refused);
  EXPECT_EQ(*refused.refused, Refusal::kMemory);
  EXPECT_EQ(admission.open(), 0u);
  admission.RecordMemory(512 << 10, 1 << 20);
  EXPECT_FALSE(admission.Admit(Source(2), limits).refused);
  admission.RecordMemory(0, 0);  // the limit turned off
  EXPECT_FALSE(admission.memory().over());
}

TEST(Admission, ResidentBytesReadsThisProcess) {
  const uint64_t rss = ResidentBytes();
  EXPECT_GT(rss, 1u << 20);
  EXPECT_LT(rss, 1ull << 34);
}

}  // namespace
}  // namespace meshgate::proxy
