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

namespace {

std::vector<WatchedPath> WithDefaultRules(const std::vector<std::string>& paths) {
  std::vector<WatchedPath> out;
  for (const auto& p : paths) out.push_back({p, nullptr});
  return out;
}

}  // namespace

ConfigWatcher::ConfigWatcher(asio::io_context& io, const std::vector<std::string>& paths,
                             std::chrono::milliseconds debounce, OnChange on_change)
    : ConfigWatcher(io, WithDefaultRules(paths), debounce, std::move(on_change)) {}

ConfigWatcher::ConfigWatcher(asio::io_context& io, const std::vector<WatchedPath>& paths,
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

void ConfigWatcher::SetPaths(const std::vector<std::string>& paths) { SetPaths(WithDefaultRules(paths)); }

void ConfigWatcher::SetPaths(const std::vector<WatchedPath>& paths) {
  if (!inotify_.is_open()) return;
  std::map<std::string, std::vector<Rule>> dirs;
  for (const auto& watched : paths) {
    std::error_code ec;
    const fs::path path = fs::absolute(watched.path, ec);
    if (fs::is_directory(path, ec)) {
      dirs[path.string()].push_back({"", watched.names});
    } else {
      dirs[path.parent_path().string()].push_back({path.filename().string(), nullptr});
    }
  }
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (dirs.contains(it->first)) {
      ++it;
      continue;
    }
    inotify_rm_watch(inotify_.native_handle(), it->second);
    rules_.erase(it->second);
    it = watches_.erase(it);
  }
  for (auto& [dir, rules] : dirs) {
    if (!watches_.contains(dir)) {
      const int wd = inotify_add_watch(inotify_.native_handle(), dir.c_str(), kDirEvents);
      if (wd < 0) {
        spdlog::warn("cannot watch {} ({}): use SIGHUP to reload", dir, std::strerror(errno));
        continue;
      }
      watches_[dir] = wd;
    }
    rules_[watches_[dir]] = std::move(rules);
  }
}

bool ConfigWatcher::Counts(int wd, std::string_view name) const {
  if (name == "..data") return true;
  const auto it = rules_.find(wd);
  if (it == rules_.end()) return false;
  for (const Rule& rule : it->second) {
    if (!rule.file.empty() ? name == rule.file : rule.names ? rule.names(name) : !name.starts_with(".")) {
      return true;
    }
  }
  return false;
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
      // ev->name is NUL-padded to ev->len. Names that are not loaded
      // (app.log, .swp files beside the mesh) do not reload.
      const std::string_view name = ev->len > 0 ? std::string_view(ev->name) : std::string_view();
      if (!name.empty() && !Counts(ev->wd, name)) continue;
      why = !name.empty() ? "change of " + std::string(name) : std::string("file change");
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
