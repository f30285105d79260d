// Whether this test binary is built with a sanitizer (scripts/sanitize.sh's
// build-san, scripts/tsan.sh's build-tsan): there timing and memory measure
// the sanitizer, not meshgate, so bounds on them are checked in the normal
// build only. GCC defines __SANITIZE_ADDRESS__/__SANITIZE_THREAD__; clang
// answers __has_feature.
#pragma once

#if defined(__has_feature)
#define MESHGATE_TEST_HAS_FEATURE(x) __has_feature(x)
#else
#define MESHGATE_TEST_HAS_FEATURE(x) 0
#endif

namespace meshgate::testing {

#if defined(__SANITIZE_ADDRESS__) || MESHGATE_TEST_HAS_FEATURE(address_sanitizer)
inline constexpr bool kUnderAsan = true;
#else
inline constexpr bool kUnderAsan = false;
#endif

#if defined(__SANITIZE_THREAD__) || MESHGATE_TEST_HAS_FEATURE(thread_sanitizer)
inline constexpr bool kUnderTsan = true;
#else
inline constexpr bool kUnderTsan = false;
#endif

inline constexpr bool kSanitized = kUnderAsan || kUnderTsan;

}  // namespace meshgate::testing
