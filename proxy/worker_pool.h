// The data plane: one worker thread per core, each with its own Reactor
// (proxy/reactor.h) and its own SO_REUSEPORT listener, so accepts spread with
// no shared lock.
// Workers read only the Snapshot last published to them; publishing posts a
// pointer to every worker, and each acknowledges the version it installed.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "proxy/admission.h"
#include "proxy/snapshot.h"
#include "proxy/stats.h"

namespace meshgate::proxy {

class AccessLog;
struct Worker;

class WorkerPool {
 public:
  // threads: 0 = one per core. max_pipes: splice pipes for the whole pool
  // (shared evenly), -1 = no cap but the kernel's.
  WorkerPool(int threads, int64_t max_pipes, std::shared_ptr<const Snapshot> first);
  ~WorkerPool();  // stops and joins the workers
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Binds every worker's listener; an error names the address and the cause.
  absl::Status Bind(const std::string& listen);
  // Instead of Bind(): serve on listening sockets handed over by the process
  // this one replaces (README "Upgrades"), and own them. Socket i goes to
  // worker i % size(); workers left without one add a member to the same
  // SO_REUSEPORT group. The caller has checked they listen on `listen`.
  absl::Status Adopt(const std::vector<int>& fds);
  // Control thread. The listening sockets, to hand over; empty once
  // CloseListeners() or Stop() ran. Valid until then.
  std::vector<int> listener_fds() const;
  // Before Start(): every session's JSON line goes there (null: off).
  void SetAccessLog(AccessLog* log);
  void Start();

  // Thread-safe. New connections use `snapshot` from now on; open sessions
  // keep the one they started with.
  void Publish(std::shared_ptr<const Snapshot> snapshot);
  // The version every worker has installed (the lowest acknowledged).
  uint64_t acked_version() const;
  // The same for the snapshot sequence, which DNS answers advance too.
  uint64_t acked_sequence() const;

  // Thread-safe. A new maxPipes for the whole pool (-1: no cap), shared evenly.
  void SetMaxPipes(int64_t max_pipes);

  // Thread-safe. The drain: stop accepting; then close what is left as "drained".
  void CloseListeners();
  void DrainSessions();
  // Thread-safe: stop accepting, stop the loops (open sessions close). Join()
  // waits for the threads.
  void Stop();
  void Join();

  size_t size() const { return workers_.size(); }
  uint64_t open_sessions() const;
  std::vector<const ProxyStats*> stats() const;
  std::string bound_address() const { return bound_; }
  // Overload protection shared by every worker: open connections, per-source
  // counts, the accept-rate bucket and the memory guard's last sample.
  const Admission& admission() const { return *admission_; }

 private:
  // What every worker has acknowledged: the lowest of one of its counters.
  uint64_t Lowest(std::atomic<uint64_t> Worker::*acknowledged) const;

  std::unique_ptr<Admission> admission_;  // outlives the workers (declared first)
  std::vector<std::unique_ptr<Worker>> workers_;
  std::string bound_;
  std::vector<int> listener_fds_;  // every worker's, in order
  std::atomic<bool> listeners_closed_{false};
};

}  // namespace meshgate::proxy
