// The one bounded reader for configuration files (meshgate.yaml, serve.yaml,
// mesh files, CA material): regular files only, a size cap, and an error that
// names the file and the reason (errno text), never an exception or a hang.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace meshgate::base {

inline constexpr uint64_t kDefaultMaxConfigFileBytes = uint64_t{64} << 20;  // 64 MiB
inline constexpr uint64_t kDefaultMaxConfigBytes = uint64_t{256} << 20;     // 256 MiB

// The caps on what configuration may bring into memory: `limits.maxConfigFileBytes`
// and `limits.maxConfigBytes` in meshgate.yaml and serve.yaml.
struct ConfigReadLimits {
  uint64_t max_file_bytes = kDefaultMaxConfigFileBytes;
  uint64_t max_total_bytes = kDefaultMaxConfigBytes;
};

// The whole of `path`, at most `max_bytes`. Refused, with "PATH: reason":
//   - what cannot be opened: "no such file", "permission denied", "too many
//     levels of symbolic links", ... (strerror of open(2));
//   - what is not a regular file: a directory, FIFO, socket or device (opened
//     O_NONBLOCK, so a FIFO without a writer cannot block);
//   - a /proc, /sys or other pseudo file whose size the kernel does not know;
//   - a file over `max_bytes` (the message names its size, the cap and `cap_setting`);
//   - a read(2) error (EIO, ...), with its errno text.
// NotFound for ENOENT, PermissionDenied for EACCES/EPERM, ResourceExhausted
// over the cap, FailedPrecondition for the wrong kind of file, DataLoss for
// a read error.
absl::StatusOr<std::string> ReadConfigFile(const std::string& path, uint64_t max_bytes = kDefaultMaxConfigFileBytes,
                                           std::string_view cap_setting = "limits.maxConfigFileBytes");

}  // namespace meshgate::base
