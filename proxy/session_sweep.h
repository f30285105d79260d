// The worker's one periodic sweep over its open sessions: it enforces every
// relaying session's idle timeout and maximum connection duration
// (Session::CheckIdle), so an open session holds no timer of its own.
#pragma once

#include <vector>

#include "proxy/session.h"

namespace meshgate::proxy {

class SessionSweep {
 public:
  // `ctx` is the worker's: its current routes (for the tick) and its live
  // sessions. It outlives the sweep.
  SessionSweep(Reactor& reactor, const WorkerContext& ctx)
      : reactor_(reactor), timer_([this] { OnTick(); }), ctx_(ctx) {}
  ~SessionSweep() { reactor_.Cancel(timer_); }
  // Sweeps every ctx.routes->sweep_tick from now on, re-reading the tick each
  // time, so a reload that shortens a timeout takes effect at the next sweep.
  void Start();

 private:
  void OnTick();

  Reactor& reactor_;
  Reactor::FunctionTimer timer_;
  const WorkerContext& ctx_;
  std::vector<Session*> sessions_;  // copied before sweeping: Close() changes `live`
};

}  // namespace meshgate::proxy
