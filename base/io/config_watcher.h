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
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

namespace meshgate::io {

class ConfigWatcher {
 public:
  using OnChange = std::function<void(const std::string& why)>;

  // Watches the directory of every path (files: their parent directory, so a
  // replaced file or a ConfigMap's symlink swap is seen too).
  ConfigWatcher(boost::asio::io_context& io, const std::vector<std::string>& paths,
                std::chrono::milliseconds debounce, OnChange on_change);
  ~ConfigWatcher();
  // Watches these paths from now on (same inotify descriptor, same SIGHUP
  // handler: nothing is torn down while the loop runs).
  void SetPaths(const std::vector<std::string>& paths);
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

 private:
  void WaitSignal();
  void ReadEvents();
  void Schedule(std::string why);

  boost::asio::signal_set hup_;
  boost::asio::posix::stream_descriptor inotify_;
  boost::asio::steady_timer debounce_timer_;
  std::chrono::milliseconds debounce_;
  OnChange on_change_;
  std::string pending_why_;
  bool pending_ = false;
  std::vector<char> buffer_;
  std::map<std::string, int> watches_;  // directory -> inotify watch descriptor
};

}  // namespace meshgate::io
