#include "proxy/runtime/control_source.h"

#include <algorithm>
#include <random>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/io/http_server.h"

namespace meshgate::proxy {

namespace asio = boost::asio;

namespace {

// A route table for 10,000 services is about 8 MB of YAML.
constexpr size_t kMaxResourcesBytes = 256u << 20;
// Past the server's bounded wait, so a healthy long poll never times out here.
constexpr auto kWatchSlack = std::chrono::seconds(10);

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool PowerOfTwo(uint32_t n) { return n != 0 && (n & (n - 1)) == 0; }

}  // namespace

namespace {

void RecordFailure(ControlStatus& status, int http_status, const std::string& error, const std::string& body) {
  ++status.fetch_errors;
  ++status.consecutive_failures;
  if (status.state != "connecting") status.state = "unreachable";
  if (http_status < 0) {
    status.last_error = error;
  } else {
    // The first line of the body, bounded: it is logged and shown by readiness.
    const std::string line = body.substr(0, std::min<size_t>(body.find('\n'), 200));
    status.last_error = absl::StrCat("HTTP ", http_status, line.empty() ? "" : ": ", line);
  }
}

void TakeResources(ControlStatus& status, const io::HttpResult& result, uint64_t version,
                   const ControlSource::Apply& apply, double now) {
  status.seen_version = version;
  const std::string etag = io::HeaderValue(result.headers, "ETag");
  if (status.synced_once && !etag.empty() && etag == status.applied_etag) {
    status.applied_version = version;  // same resources under a new number
    status.state = "synced";
    return;
  }
  const std::string why = absl::StrCat("control ", status.url, " version ", version);
  const std::string error = apply(result.body, why);
  if (!error.empty()) {
    ++status.updates_rejected;
    status.state = "rejected";
    status.last_error = absl::StrCat("version ", version, " rejected: ", error);
    spdlog::error("control component version {} does not load; still serving {}: {}", version,
                  status.synced_once ? absl::StrCat("version ", status.applied_version) : "no version", error);
    return;
  }
  ++status.updates_applied;
  status.state = "synced";
  status.synced_once = true;
  status.applied_version = version;
  status.applied_etag = etag;
  status.last_applied_seconds = now;
}

}  // namespace

ControlAnswer HandleControlAnswer(ControlStatus& status, const io::HttpResult& result,
                                  const ControlSource::Apply& apply, double now) {
  ControlAnswer answer;
  if (result.status != 200 && result.status != 304) {
    RecordFailure(status, result.status, result.error, result.body);
    return answer;
  }
  status.last_contact_seconds = now;
  uint64_t version = 0;
  // Checked before the failures are reset, so a server that keeps answering
  // without a version backs off like one that does not answer.
  if (result.status == 200 && !absl::SimpleAtoi(io::HeaderValue(result.headers, "X-Meshgate-Version"), &version)) {
    RecordFailure(status, -1, "answer without a valid X-Meshgate-Version header", "");
    return answer;
  }
  answer.ok = true;
  answer.recovered = status.consecutive_failures > 0;
  status.consecutive_failures = 0;
  status.next_retry_ms = 0;
  answer.fresh = result.status == 200 && version != status.seen_version;
  if (result.status == 200) TakeResources(status, result, version, apply, now);
  if (status.state != "rejected") status.last_error.clear();
  return answer;
}

struct ControlSource::Impl : std::enable_shared_from_this<ControlSource::Impl> {
  Impl(asio::io_context& io, const config::GatewayConfig::Control& options, Apply apply)
      : io(io), options(options), apply(std::move(apply)), retry(io), rng(std::random_device{}()) {}

  asio::io_context& io;
  config::GatewayConfig::Control options;
  Apply apply;
  io::HttpTarget target;
  ControlStatus status;
  asio::steady_timer retry;
  std::mt19937_64 rng;
  bool stopped = false;

  void Poll() {
    std::string path = absl::StrCat("/v1/routes?cluster=", status.cluster);
    // The first request, and the first after an outage, asks for the current
    // version outright; from then on, for the next one.
    const bool watch = status.seen_version != 0 && status.consecutive_failures == 0;
    if (watch) {
      absl::StrAppend(&path, "&watch=1&version=", status.seen_version,
                      "&timeout=", std::max<int64_t>(1, options.watch_timeout.count() / 1000));
    }
    const auto timeout = watch ? options.watch_timeout + kWatchSlack : kWatchSlack;
    const auto started = std::chrono::steady_clock::now();
    io::HttpFetch(io, target, path, timeout, kMaxResourcesBytes,
              [self = shared_from_this(), started](io::HttpResult result) {
                if (!self->stopped) self->OnResult(std::move(result), started);
              });
  }

  void OnResult(io::HttpResult result, std::chrono::steady_clock::time_point started) {
    const ControlAnswer answer = HandleControlAnswer(status, result, apply, UnixNow());
    if (!answer.ok) return OnFailure();
    if (answer.recovered) spdlog::info("control component {} is back", status.url);
    // A server that answers at once with nothing new must not make us spin.
    const bool quick = std::chrono::steady_clock::now() - started < std::chrono::milliseconds(100);
    if (!answer.fresh && quick) return Schedule(options.initial_backoff);
    Poll();
  }

  // After HandleControlAnswer counted a failure: back off.
  void OnFailure() {
    // Capped exponential backoff with jitter in [d/2, d): a fleet of
    // gateways does not come back in lockstep.
    const int shift = std::min<uint32_t>(status.consecutive_failures - 1, 20);
    const int64_t ceiling = std::min<int64_t>(options.initial_backoff.count() << shift, options.max_backoff.count());
    const int64_t delay = ceiling / 2 + static_cast<int64_t>(rng() % static_cast<uint64_t>(std::max<int64_t>(1, ceiling / 2)));
    status.next_retry_ms = delay;
    const std::string serving = status.synced_once ? absl::StrCat("serving version ", status.applied_version)
                                                   : std::string("nothing synced yet");
    if (PowerOfTwo(status.consecutive_failures)) {
      spdlog::warn("control component {} unreachable ({} failure(s) in a row; {}), retrying in {} ms: {}",
                   status.url, status.consecutive_failures, serving, delay, status.last_error);
    }
    Schedule(std::chrono::milliseconds(delay));
  }

  void Schedule(std::chrono::milliseconds delay) {
    retry.expires_after(delay);
    retry.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec && !self->stopped) self->Poll();
    });
  }
};

ControlSource::ControlSource(asio::io_context& io, const config::GatewayConfig::Control& options,
                             const std::string& cluster, Apply apply)
    : impl_(std::make_shared<Impl>(io, options, std::move(apply))) {
  impl_->status.url = options.url;
  impl_->status.cluster = cluster;
  auto url = config::ParseControlUrl(options.url);  // validated with the config
  if (url.ok()) {
    impl_->target.tls = url->tls;
    impl_->target.host = url->host;
    impl_->target.port = url->port;
    impl_->target.ca_file = options.ca_file;
  }
}

ControlSource::~ControlSource() {
  impl_->stopped = true;
  impl_->retry.cancel();
}

void ControlSource::Start() {
  spdlog::info("following control component {} for cluster {}", impl_->status.url, impl_->status.cluster);
  impl_->Poll();
}

const ControlStatus& ControlSource::status() const { return impl_->status; }

}  // namespace meshgate::proxy
