// libFuzzer target for meshgate's ops endpoints, fed raw requests: the bytes
// become a request as the HTTP server reads them (io::ParseHttpRequest), and
// the request goes to AdminServer::Handle for each port, metrics (15090),
// readiness (15021) and admin (15000), as Start's servers hand it over. Behind
// them is a real Runtime with a small mesh from tests/data (a ServiceEntry,
// Istio's east-west Gateway and the bookinfo Services) and a WorkerPool that
// is built but never started: no socket, no thread. Every answer must have a
// valid status and a bounded error body (tests/fuzz/http_fuzz_check.h).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <spdlog/spdlog.h>

#include "proxy/runtime/admin_server.h"
#include "proxy/runtime/runtime.h"
#include "proxy/worker_pool.h"
#include "tests/fuzz/http_fuzz_check.h"

namespace {

namespace proxy = meshgate::proxy;
using meshgate::fuzz::Fail;
constexpr char kTarget[] = "admin_http_fuzz";

// The gateway behind the ops endpoints, as gateway.cc wires it.
struct Ops {
  boost::asio::io_context io{1};
  proxy::Lifecycle lifecycle;
  std::unique_ptr<proxy::Runtime> runtime;
  std::unique_ptr<proxy::WorkerPool> workers;
  std::unique_ptr<proxy::AdminServer> admin;
};

meshgate::config::GatewayConfig Settings() {
  meshgate::config::GatewayConfig settings;
  settings.listen = "127.0.0.1:15443";
  settings.threads = 1;
  settings.labels = {{"istio", "eastwestgateway"}};
  const std::string data = MESHGATE_TESTDATA;
  settings.mesh_paths = {data + "/mesh/httpbin-bar.yaml", data + "/mesh/gateway/eastwest-gateway.yaml",
                         data + "/k8s/bookinfo.yaml"};
  return settings;
}

// Built once; never destroyed (the process ends with the fuzzer).
Ops& TheOps() {
  static Ops* ops = [] {
    // Quiet, whatever POST /logging?level= sets: a logger with no sink.
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("fuzz"));
    auto* o = new Ops;
    const meshgate::config::GatewayConfig settings = Settings();
    const meshgate::config::MeshLoadResult mesh = proxy::LoadMeshFor(settings, "");
    if (mesh.table == nullptr) Fail(kTarget, "the fixture mesh does not load: " + mesh.errors.front());
    o->runtime = std::make_unique<proxy::Runtime>(o->io, settings, mesh.table, "", nullptr);
    o->workers = std::make_unique<proxy::WorkerPool>(1, -1, o->runtime->snapshot());
    o->lifecycle.ready = true;
    o->lifecycle.begin_drain = [o](const std::string&) { o->lifecycle.draining = true; };
    o->admin = std::make_unique<proxy::AdminServer>(*o->runtime, *o->workers, o->lifecycle, nullptr);
    return o;
  }();
  return *ops;
}

void CheckPorts(Ops& ops, const meshgate::io::HttpRequest& request) {
  for (const proxy::AdminPort port : {proxy::AdminPort::kMetrics, proxy::AdminPort::kReadiness, proxy::AdminPort::kAdmin}) {
    const meshgate::io::HttpResponse response = ops.admin->Handle(port, request);
    meshgate::fuzz::CheckResponse(kTarget, response);
    meshgate::fuzz::Trace(kTarget, request, response);
    // Readiness answers 200 or 503 and nothing else (kubelet's probe: any 2xx/3xx is ready).
    if (port == proxy::AdminPort::kReadiness && request.path == "/healthz/ready" && response.status != 200 &&
        response.status != 503) {
      Fail(kTarget, "readiness answered " + std::to_string(response.status));
    }
  }
  // What a request changed is put back, so each input starts alike.
  ops.lifecycle.draining = false;
  spdlog::set_level(spdlog::level::info);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 128 * 1024) return 0;
  Ops& ops = TheOps();
  const auto request = meshgate::fuzz::RequestFrom(kTarget, std::string_view(reinterpret_cast<const char*>(data), size));
  if (request) CheckPorts(ops, *request);
  return 0;
}
