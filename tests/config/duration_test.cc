// ParseDuration: Go/Istio duration syntax to exact milliseconds.
#include <gtest/gtest.h>

#include <string>

#include "base/duration.h"

namespace meshgate::base {
namespace {

using namespace std::chrono_literals;

TEST(ParseDurationTest, Valid) {
  struct Case {
    const char* text;
    std::chrono::milliseconds expected;
  };
  for (const Case& c : {
           Case{"250ms", 250ms}, Case{"5s", 5s}, Case{"1m", 1min}, Case{"1h", 1h},
           Case{"1h30m", 90min}, Case{"1.5s", 1500ms}, Case{"1.5h", 90min}, Case{".5s", 500ms},
           Case{"1.s", 1s}, Case{"0s", 0ms}, Case{"2h45m30s250ms", 2h + 45min + 30s + 250ms},
           Case{"1s1s", 2s},  // Go sums repeated units too
           Case{"3000000ns", 3ms}, Case{"4000us", 4ms}, Case{"5000\xC2\xB5s", 5ms},  // micro sign
           Case{"6000\xCE\xBCs", 6ms},                                               // Greek mu
       }) {
    auto d = ParseDuration(c.text);
    ASSERT_TRUE(d.ok()) << c.text << ": " << d.status();
    EXPECT_EQ(*d, c.expected) << c.text;
  }
}

TEST(ParseDurationTest, LargeButRepresentable) {
  auto d = ParseDuration("2540400h");  // ~290 years, just under int64 nanoseconds
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, std::chrono::hours(2540400));
}

TEST(ParseDurationTest, Rejects) {
  struct Case {
    const char* text;
    const char* message;
  };
  for (const Case& c : {
           Case{"", "invalid duration \"\": empty (e.g. 5s, 250ms, 1h30m)"},
           Case{"5", "invalid duration \"5\": missing unit (ns, us, ms, s, m or h)"},
           Case{"0", "invalid duration \"0\": missing unit (ns, us, ms, s, m or h)"},
           Case{"1h30", "invalid duration \"1h30\": missing unit (ns, us, ms, s, m or h)"},
           Case{"-5s", "invalid duration \"-5s\": negative durations are not allowed"},
           Case{"+5s", "invalid duration \"+5s\": expected a number"},
           Case{"5d", "invalid duration \"5d\": unknown unit \"d\" (ns, us, ms, s, m or h)"},
           Case{"5 s", "invalid duration \"5 s\": unknown unit \" s\" (ns, us, ms, s, m or h)"},
           Case{"5S", "invalid duration \"5S\": unknown unit \"S\" (ns, us, ms, s, m or h)"},
           Case{"s", "invalid duration \"s\": expected a number"},
           Case{".s", "invalid duration \".s\": expected a number"},
           Case{"1..5s", "invalid duration \"1..5s\": missing unit (ns, us, ms, s, m or h)"},
           Case{"1.5us", "invalid duration \"1.5us\": finer than a millisecond"},
           Case{"1500us", "invalid duration \"1500us\": finer than a millisecond"},
           Case{"0.0015s", "invalid duration \"0.0015s\": finer than a millisecond"},
           Case{"2600000h", "invalid duration \"2600000h\": too large"},
           Case{"99999999999999999999999s",
                "invalid duration \"99999999999999999999999s\": too large"},
       }) {
    auto d = ParseDuration(c.text);
    ASSERT_FALSE(d.ok()) << c.text << " parsed as " << d->count() << "ms";
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(d.status().message()), c.message) << c.text;
  }
}

}  // namespace
}  // namespace meshgate::base
