// The worker's one periodic sweep over its open sessions: it enforces every
// relaying session's idle timeout and maximum connection duration
// (Session::CheckIdle), so an open session holds no timer of its own.
#pragma once

#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "proxy/session.h"

namespace meshgate::proxy {

class SessionSweep {
 public:
  // `ctx` is the worker's: its current routes (for the tick) and its live
  // sessions. It outlives the sweep.
  SessionSweep(boost::asio::io_context& io, const WorkerContext& ctx) : timer_(io), ctx_(ctx) {}
  // Sweeps every ctx.routes->sweep_tick from now on, re-reading the tick each
  // time, so a reload that shortens a timeout takes effect at the next sweep.
  void Start();

 private:
  void OnTick(const boost::system::error_code& ec);

  boost::asio::steady_timer timer_;
  const WorkerContext& ctx_;
  std::vector<Session*> sessions_;  // copied before sweeping: Close() changes `live`
};

}  // namespace meshgate::proxy
