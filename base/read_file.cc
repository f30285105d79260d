#include "base/read_file.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace meshgate::base {

namespace {

// Closes on every path out.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string ErrnoText(int err) {
  switch (err) {
    case ENOENT: return "no such file";
    case EACCES: return "permission denied";
    case EISDIR: return "is a directory";
    case ELOOP: return "too many levels of symbolic links";
    case ENOTDIR: return "a component of the path is not a directory";
    default: return std::strerror(err);
  }
}

std::string NotRegular(mode_t mode);

absl::Status OpenError(const std::string& path, int err) {
  // open(2) of a socket fails with ENXIO: say what the path is instead.
  if (struct stat st {}; err == ENXIO && stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", NotRegular(st.st_mode)));
  }
  const std::string message = absl::StrCat(path, ": ", ErrnoText(err));
  if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::FailedPreconditionError(message);
}

// "" for a regular file, else what it is instead.
std::string NotRegular(mode_t mode) {
  if (S_ISREG(mode)) return "";
  if (S_ISDIR(mode)) return "is a directory";
  if (S_ISFIFO(mode)) return "is a FIFO (named pipe), not a regular file";
  if (S_ISSOCK(mode)) return "is a socket, not a regular file";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "is a device, not a regular file";
  return "is not a regular file";
}

// procfs, sysfs and their kin report st_size 0 (or a page) for content made
// on read, which may be endless or fail half-way (/proc/self/mem: EIO).
bool IsPseudoFileSystem(int fd) {
  struct statfs fs {};
  if (fstatfs(fd, &fs) != 0) return false;
  switch (static_cast<unsigned long>(fs.f_type)) {
    case PROC_SUPER_MAGIC:
    case SYSFS_MAGIC:
    case DEBUGFS_MAGIC:
    case TRACEFS_MAGIC:
    case SECURITYFS_MAGIC:
    case CGROUP_SUPER_MAGIC:
    case CGROUP2_SUPER_MAGIC:
      return true;
    default:
      return false;
  }
}

absl::Status TooLarge(const std::string& path, uint64_t size, uint64_t max_bytes, std::string_view cap_setting,
                      bool at_least) {
  return absl::ResourceExhaustedError(absl::StrCat(path, ": ", at_least ? "more than " : "", size,
                                                   " bytes, over the cap of ", max_bytes, " bytes (",
                                                   absl::string_view(cap_setting.data(), cap_setting.size()), ")"));
}

}  // namespace

absl::StatusOr<std::string> ReadConfigFile(const std::string& path, uint64_t max_bytes, std::string_view cap_setting) {
  // O_NONBLOCK: opening a FIFO with no writer returns at once instead of
  // blocking the caller's thread; a regular file ignores the flag.
  const Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) return OpenError(path, errno);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return OpenError(path, errno);
  if (const std::string kind = NotRegular(st.st_mode); !kind.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", kind));
  }
  if (IsPseudoFileSystem(fd.get())) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": is a /proc or /sys pseudo file, not a regular file (copy it to a file first)"));
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes) return TooLarge(path, size, max_bytes, cap_setting, false);
  std::string text;
  text.resize(static_cast<size_t>(size) + 1);  // one spare byte notices a file that grew
  size_t filled = 0;
  while (true) {
    if (filled == text.size()) {
      if (filled > max_bytes) return TooLarge(path, max_bytes, max_bytes, cap_setting, true);
      text.resize(std::min<uint64_t>(max_bytes + 1, text.size() * 2 + 4096));
    }
    const ssize_t n = read(fd.get(), text.data() + filled, text.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::DataLossError(absl::StrCat(path, ": read failed: ", ErrnoText(errno)));
    if (n == 0) break;
    filled += static_cast<size_t>(n);
  }
  if (filled > max_bytes) return TooLarge(path, max_bytes, max_bytes, cap_setting, true);
  text.resize(filled);
  return text;
}

}  // namespace meshgate::base
