#include "base/io/config_watcher.h"

#include <optional>

#include <sys/inotify.h>

#include <filesystem>
#include <set>

#include "spdlog/spdlog.h"

namespace meshgate::io {
namespace asio = boost::asio;
using boost::system::error_code;
namespace fs = std::filesystem;

namespace {
constexpr uint32_t kDirEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE;
}

ConfigWatcher::ConfigWatcher(asio::io_context& io, const std::vector<std::string>& paths,
                             std::chrono::milliseconds debounce, OnChange on_change)
    : hup_(io, SIGHUP),
      inotify_(io),
      debounce_timer_(io),
      debounce_(debounce),
      on_change_(std::move(on_change)),
      buffer_(64 * 1024) {
  WaitSignal();
  const int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    spdlog::warn("inotify unavailable ({}): config changes are picked up on SIGHUP only", std::strerror(errno));
    return;
  }
  inotify_.assign(fd);
  SetPaths(paths);
  ReadEvents();
}

void ConfigWatcher::SetPaths(const std::vector<std::string>& paths) {
  if (!inotify_.is_open()) return;
  std::set<std::string> dirs;
  for (const auto& p : paths) {
    std::error_code ec;
    const fs::path path = fs::absolute(p, ec);
    dirs.insert(fs::is_directory(path, ec) ? path.string() : path.parent_path().string());
  }
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (dirs.contains(it->first)) {
      ++it;
      continue;
    }
    inotify_rm_watch(inotify_.native_handle(), it->second);
    it = watches_.erase(it);
  }
  for (const auto& dir : dirs) {
    if (watches_.contains(dir)) continue;
    const int wd = inotify_add_watch(inotify_.native_handle(), dir.c_str(), kDirEvents);
    if (wd < 0) {
      spdlog::warn("cannot watch {} ({}): use SIGHUP to reload", dir, std::strerror(errno));
      continue;
    }
    watches_[dir] = wd;
  }
}

ConfigWatcher::~ConfigWatcher() {
  error_code ignored;
  hup_.cancel(ignored);
  debounce_timer_.cancel();
  inotify_.close(ignored);
}

void ConfigWatcher::WaitSignal() {
  hup_.async_wait([this](const error_code& ec, int) {
    if (ec) return;
    Schedule("SIGHUP");
    WaitSignal();
  });
}

void ConfigWatcher::ReadEvents() {
  inotify_.async_read_some(asio::buffer(buffer_), [this](const error_code& ec, size_t n) {
    if (ec) return;
    // Name the first file that changed; the reload reads everything anyway.
    // IN_IGNORED only says a watch went away (SetPaths dropped a directory).
    std::optional<std::string> why;
    for (size_t at = 0; at + sizeof(inotify_event) <= n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buffer_.data() + at);
      at += sizeof(inotify_event) + ev->len;
      if ((ev->mask & IN_IGNORED) != 0) continue;
      why = ev->len > 0 ? std::string("change of ") + ev->name : std::string("file change");
      break;
    }
    if (why) Schedule(*std::move(why));
    ReadEvents();
  });
}

void ConfigWatcher::Schedule(std::string why) {
  if (!pending_) pending_why_ = std::move(why);
  pending_ = true;
  // Every event restarts the quiet period: one reload per burst of writes.
  debounce_timer_.expires_after(debounce_);
  debounce_timer_.async_wait([this](const error_code& ec) {
    if (ec) return;
    pending_ = false;
    on_change_(pending_why_);
  });
}

}  // namespace meshgate::io
