// Test PKI like an Istio multi-cluster mesh: one shared root, one intermediate
// per cluster (plug-in CA layout), and SPIFFE workload leaves under them.
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <vector>

namespace meshgate::testing {

struct EvpPkeyFree { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct X509Free { void operator()(X509* p) const { X509_free(p); } };
struct SslCtxFree { void operator()(SSL_CTX* p) const { SSL_CTX_free(p); } };
using PkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

struct Identity {
  PkeyPtr key;
  X509Ptr cert;
};

struct Workload {
  Identity leaf;
  const Identity* intermediate = nullptr;  // its cluster's CA
  std::string spiffe;
};

class Pki {
 public:
  Pki();  // root, cluster-1 and cluster-2 intermediates, ECDSA P-256

  // A leaf for `spiffe` signed by cluster `cluster` (1 or 2), with DNS SANs.
  Workload Issue(int cluster, const std::string& spiffe, const std::vector<std::string>& dns = {}) const;

  // Server: presents leaf+intermediate, requires a client cert chaining to root.
  SslCtxPtr ServerContext(const Workload& w) const;
  // Client: presents leaf+intermediate, verifies the server against root.
  SslCtxPtr ClientContext(const Workload& w) const;
  // A client that trusts the root but has no certificate.
  SslCtxPtr AnonymousClientContext() const;

  const Identity& root() const { return root_; }
  const Identity& intermediate(int cluster) const { return cluster == 1 ? int1_ : int2_; }

 private:
  Identity root_;
  Identity int1_;
  Identity int2_;
};

// The first URI SAN of a certificate, or "".
std::string UriSan(X509* cert);
// PEM text of a certificate or private key.
std::string ToPem(X509* cert);
std::string ToPem(EVP_PKEY* key);

}  // namespace meshgate::testing
