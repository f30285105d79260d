// The generated mesh of the scale bench and the loader-memory test: N Istio
// ServiceEntries with M static endpoints each, plus the east-west Gateway.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace meshgate::bench {

inline std::string ScaleServiceHost(int i) { return "svc" + std::to_string(i) + ".ns" + std::to_string(i % 100); }

// `services_per_file` services a file, like a namespace's worth of
// `kubectl get -o yaml`; 0 puts them all in one file. Returns the bytes written.
inline uint64_t WriteScaleMesh(const std::filesystem::path& dir, int services, int endpoints_per_service,
                               int services_per_file = 100) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  // The east-west Gateway that exports them all (meshgate fails closed without one).
  std::ofstream(dir / "gateway.yaml")
      << "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: eastwest, namespace: istio-system}\n"
         "spec:\n  servers:\n  - port: {number: 15443, name: tls, protocol: TLS}\n"
         "    tls: {mode: AUTO_PASSTHROUGH}\n    hosts: [\"*.local\"]\n";
  std::ofstream out;
  for (int i = 0; i < services; ++i) {
    if (i == 0 || (services_per_file > 0 && i % services_per_file == 0)) {
      const int file = services_per_file > 0 ? i / services_per_file : 0;
      out = std::ofstream(dir / ("mesh-" + std::to_string(file) + ".yaml"));
    }
    out << "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: svc" << i
        << "\n  namespace: ns" << i % 100 << "\nspec:\n  hosts: [" << ScaleServiceHost(i)
        << ".svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n"
        << "  - {number: 8000, name: http, protocol: HTTP, targetPort: 8080}\n  endpoints:\n";
    for (int e = 0; e < endpoints_per_service; ++e) {
      const int n = i * endpoints_per_service + e;
      out << "  - address: 10." << (n >> 16) % 256 << "." << (n >> 8) % 256 << "." << n % 256
          << "\n    labels: {version: v" << e % 3 << "}\n";
    }
  }
  out.close();
  uint64_t bytes = 0;
  for (const auto& entry : fs::directory_iterator(dir)) bytes += entry.file_size();
  return bytes;
}

}  // namespace meshgate::bench
