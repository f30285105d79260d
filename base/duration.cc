// Go/Istio duration syntax ("1h30m", "1.5s", "250ms") to milliseconds, exactly.
#include <cstdint>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/duration.h"
#include "base/names.h"

namespace meshgate::base {

namespace {

using Wide = unsigned __int128;  // whole * unit overflows 64 bits before it is range-checked

constexpr uint64_t kNanosPerMilli = 1'000'000;

struct Unit {
  std::string_view name;
  uint64_t nanos;
};
constexpr Unit kUnits[] = {
    {"ns", 1},
    {"us", 1'000},
    {"\xC2\xB5s", 1'000},  // U+00B5 micro sign, as Go accepts
    {"\xCE\xBCs", 1'000},  // U+03BC Greek mu
    {"ms", kNanosPerMilli},
    {"s", 1'000'000'000},
    {"m", 60'000'000'000},
    {"h", 3'600'000'000'000},
};

bool IsDigit(char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }

}  // namespace

absl::StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  auto invalid = [text](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("invalid duration \"", AbslView(text),
                                                   "\": ", AbslView(why)));
  };
  if (text.empty()) return invalid("empty (e.g. 5s, 250ms, 1h30m)");
  if (text.front() == '-') return invalid("negative durations are not allowed");
  std::string_view rest = text;
  Wide total = 0;
  while (!rest.empty()) {
    Wide whole = 0;
    bool have_digits = false;
    size_t i = 0;
    for (; i < rest.size() && IsDigit(rest[i]); ++i) {
      if (whole > std::numeric_limits<uint64_t>::max()) return invalid("too large");
      whole = whole * 10 + static_cast<unsigned>(rest[i] - '0');
      have_digits = true;
    }
    Wide fraction = 0;
    Wide scale = 1;
    if (i < rest.size() && rest[i] == '.') {
      for (++i; i < rest.size() && IsDigit(rest[i]); ++i) {
        have_digits = true;
        if (scale >= Wide{1'000'000'000'000'000'000}) continue;  // beyond ns precision anyway
        fraction = fraction * 10 + static_cast<unsigned>(rest[i] - '0');
        scale *= 10;
      }
    }
    if (!have_digits) return invalid("expected a number");
    rest.remove_prefix(i);
    size_t unit_len = 0;
    while (unit_len < rest.size() && !IsDigit(rest[unit_len]) && rest[unit_len] != '.') ++unit_len;
    const std::string_view unit_name = rest.substr(0, unit_len);
    if (unit_name.empty()) return invalid("missing unit (ns, us, ms, s, m or h)");
    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      if (u.name == unit_name) unit = &u;
    }
    if (unit == nullptr) {
      return invalid(absl::StrCat("unknown unit \"", AbslView(unit_name),
                                  "\" (ns, us, ms, s, m or h)"));
    }
    rest.remove_prefix(unit_len);
    total += whole * unit->nanos + fraction * unit->nanos / scale;
    if (total > static_cast<Wide>(std::numeric_limits<int64_t>::max())) return invalid("too large");
  }
  if (total % kNanosPerMilli != 0) return invalid("finer than a millisecond");
  return std::chrono::milliseconds(static_cast<int64_t>(total / kNanosPerMilli));
}

}  // namespace meshgate::base
