// Tells when configuration should be re-read: on SIGHUP, and when a watched
// file or directory changes (inotify), debounced so that an editor's or
// kubectl's burst of writes yields one reload. Runs on the control loop,
// never on a worker. Included only by proxy sources: it pulls in Asio.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

namespace meshgate::io {

// A path whose change should reload. A file is watched through its parent
// directory (so a replaced file is seen), but only events on its own name
// count; a directory counts the entries `names` accepts (null: every name
// but dot files). In both, "..data" counts: a Kubernetes ConfigMap or Secret
// volume swaps its content by renaming that symlink (kubelet's atomic writer,
// pkg/volume/util/atomic_writer.go), and the visible names never change.
struct WatchedPath {
  std::string path;
  std::function<bool(std::string_view name)> names;
};

class ConfigWatcher {
 public:
  using OnChange = std::function<void(const std::string& why)>;

  ConfigWatcher(boost::asio::io_context& io, const std::vector<WatchedPath>& paths,
                std::chrono::milliseconds debounce, OnChange on_change);
  // Every path with the default rules.
  ConfigWatcher(boost::asio::io_context& io, const std::vector<std::string>& paths,
                std::chrono::milliseconds debounce, OnChange on_change);
  ~ConfigWatcher();
  // Watches these paths from now on (same inotify descriptor, same SIGHUP
  // handler: nothing is torn down while the loop runs).
  void SetPaths(const std::vector<WatchedPath>& paths);
  void SetPaths(const std::vector<std::string>& paths);
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

 private:
  void WaitSignal();
  void ReadEvents();
  void Schedule(std::string why);
  // Whether an event on `name` in the directory watched as `wd` is one of ours.
  bool Counts(int wd, std::string_view name) const;

  // What counts in one watched directory: a file's name, or ("" file) a filter.
  struct Rule {
    std::string file;
    std::function<bool(std::string_view)> names;
  };

  boost::asio::signal_set hup_;
  boost::asio::posix::stream_descriptor inotify_;
  boost::asio::steady_timer debounce_timer_;
  std::chrono::milliseconds debounce_;
  OnChange on_change_;
  std::string pending_why_;
  bool pending_ = false;
  std::vector<char> buffer_;
  std::map<std::string, int> watches_;  // directory -> inotify watch descriptor
  std::map<int, std::vector<Rule>> rules_;  // by watch descriptor
};

}  // namespace meshgate::io
