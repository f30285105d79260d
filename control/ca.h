// meshgatectl's CA material, with OpenSSL 3's C API (no shell-outs): a shared
// root, one intermediate per cluster in Istio's plug-in CA layout (the
// `cacerts` Secret), and workload certificates like the ones istiod issues.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace meshgate::control {

enum class KeyType { kRsa4096, kEcdsaP256 };

struct CaOptions {
  KeyType key_type = KeyType::kRsa4096;  // Istio's tools/certs default
  std::chrono::hours validity{0};        // 0: the default for what is made
  bool force = false;                    // overwrite existing private keys
};

// Istio's defaults (tools/certs): root 3650 days, intermediate 730, workload 24 h.
inline constexpr std::chrono::hours kRootValidity{3650 * 24};
inline constexpr std::chrono::hours kIntermediateValidity{730 * 24};
inline constexpr std::chrono::hours kWorkloadValidity{24};
inline constexpr std::chrono::hours kServerValidity{365 * 24};

// DIR/root-cert.pem and DIR/root-key.pem (0600). O=Istio, CN=Root CA;
// basicConstraints critical CA:true; keyUsage critical keyCertSign,
// cRLSign, digitalSignature.
absl::Status CreateRoot(const std::string& out_dir, const CaOptions& options);

// OUT/ca-cert.pem, ca-key.pem (0600), cert-chain.pem (intermediate, then
// root) and root-cert.pem, signed by ROOT's key. O=Istio, CN=Intermediate CA,
// L=<cluster>; CA:true with pathlen:0; SAN DNS:istiod.istio-system.svc.
absl::Status CreateIntermediate(const std::string& root_dir, const std::string& cluster,
                                const std::string& out_dir, const CaOptions& options);

// The `cacerts` Secret (namespace istio-system) for DIR, as YAML for
// `kubectl apply -f -`.
absl::StatusOr<std::string> CacertsSecret(const std::string& dir);

// OUT/key.pem (0600), cert.pem, cert-chain.pem (leaf, then intermediate) and
// root-cert.pem, issued by the intermediate in CA_DIR: an empty subject, a
// critical URI SAN (the SPIFFE ID), serverAuth+clientAuth, 24 h.
absl::Status CreateWorkload(const std::string& ca_dir, const std::string& spiffe,
                            const std::string& out_dir, const CaOptions& options);

// The same layout for a TLS server (meshgatectl serve): SAN DNS:/IP: for
// each name, serverAuth only, a year by default.
absl::Status CreateServer(const std::string& ca_dir, const std::vector<std::string>& names,
                          const std::string& out_dir, const CaOptions& options);

// `ca verify`: each check on DIR's material with its outcome.
struct Check {
  std::string name;
  bool ok = false;
  std::string detail;
};
std::vector<Check> Verify(const std::string& dir);

}  // namespace meshgate::control
