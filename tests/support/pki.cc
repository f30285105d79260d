#include "tests/support/pki.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <stdexcept>

namespace meshgate::testing {
namespace {

PkeyPtr NewKey() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) throw std::runtime_error("EVP_EC_gen failed");
  return key;
}

void AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) throw std::runtime_error("bad extension " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

struct CertSpec {
  std::vector<std::pair<std::string, std::string>> subject;
  bool ca = false;
  int pathlen = -1;
  std::string san;  // "URI:...,DNS:..."
};

X509Ptr MakeCert(EVP_PKEY* key, const CertSpec& spec, X509* issuer_cert, EVP_PKEY* issuer_key) {
  static long serial = 1;
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& [field, value] : spec.subject) {
    X509_NAME_add_entry_by_txt(name, field.c_str(), MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0);
  }
  X509* issuer = issuer_cert != nullptr ? issuer_cert : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer));
  AddExt(cert.get(), issuer, NID_subject_key_identifier, "hash");
  AddExt(cert.get(), issuer, NID_authority_key_identifier, "keyid:always");
  if (spec.ca) {
    AddExt(cert.get(), issuer, NID_basic_constraints,
           spec.pathlen >= 0 ? "critical,CA:TRUE,pathlen:" + std::to_string(spec.pathlen) : "critical,CA:TRUE");
    AddExt(cert.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
  } else {
    AddExt(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE");
    AddExt(cert.get(), issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    AddExt(cert.get(), issuer, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  if (!spec.san.empty()) AddExt(cert.get(), issuer, NID_subject_alt_name, spec.san);
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
    throw std::runtime_error("X509_sign failed");
  }
  return cert;
}

// OpenSSL fills a certificate's extension cache (key identifiers, purpose
// flags) lazily, on the first verification that reads it, under the
// certificate's own lock, while later readers check a flag without it. When
// contexts that share these X509 objects handshake on several threads at
// once (the takeover test's load workers), TSan sees that first fill race a
// reader inside libcrypto, whose synchronisation it cannot see (CI's TSan
// pass: ASN1_STRING_set against ASN1_STRING_cmp). Filling the cache here,
// while one thread builds the context, leaves only reads for the threads.
void FillExtensionCache(X509* cert) { X509_check_purpose(cert, -1, 0); }

void UseIdentity(SSL_CTX* ctx, const Identity& leaf, const Identity& intermediate, X509* root) {
  for (X509* cert : {leaf.cert.get(), intermediate.cert.get(), root}) FillExtensionCache(cert);
  SSL_CTX_use_certificate(ctx, leaf.cert.get());
  SSL_CTX_use_PrivateKey(ctx, leaf.key.get());
  SSL_CTX_add1_chain_cert(ctx, intermediate.cert.get());
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), root);
}

}  // namespace

Pki::Pki() {
  root_.key = NewKey();
  root_.cert = MakeCert(root_.key.get(), {{{"O", "Istio"}, {"CN", "Root CA"}}, true, -1, ""}, nullptr, nullptr);
  int i = 1;
  for (Identity* inter : {&int1_, &int2_}) {
    inter->key = NewKey();
    const std::string cluster = "cluster-" + std::to_string(i++);
    inter->cert = MakeCert(inter->key.get(),
                           {{{"O", "Istio"}, {"CN", "Intermediate CA"}, {"L", cluster}}, true, 0,
                            "DNS:istiod.istio-system.svc"},
                           root_.cert.get(), root_.key.get());
  }
}

Workload Pki::Issue(int cluster, const std::string& spiffe, const std::vector<std::string>& dns) const {
  Workload w;
  w.intermediate = &intermediate(cluster);
  w.spiffe = spiffe;
  w.leaf.key = NewKey();
  std::string san = "critical,URI:" + spiffe;  // critical: the subject is empty, as in Istio
  for (const auto& d : dns) san += ",DNS:" + d;
  w.leaf.cert = MakeCert(w.leaf.key.get(), {{}, false, -1, san}, w.intermediate->cert.get(),
                         w.intermediate->key.get());
  return w;
}

SslCtxPtr Pki::ServerContext(const Workload& w) const {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  UseIdentity(ctx.get(), w.leaf, *w.intermediate, root_.cert.get());
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  // A server that verifies clients resumes a session only with a session ID
  // context set (else OpenSSL fails the handshake: "session id context
  // uninitialized", SSL_CTX_set_session_id_context(3)); the takeover load
  // test resumes sessions to open 200 connections/s on 2 cores.
  static constexpr unsigned char kContext[] = "meshgate-test";
  SSL_CTX_set_session_id_context(ctx.get(), kContext, sizeof kContext - 1);
  return ctx;
}

SslCtxPtr Pki::ClientContext(const Workload& w) const {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  UseIdentity(ctx.get(), w.leaf, *w.intermediate, root_.cert.get());
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

SslCtxPtr Pki::AnonymousClientContext() const {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  FillExtensionCache(root_.cert.get());
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), root_.cert.get());
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

std::string UriSan(X509* cert) {
  std::string out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type == GEN_URI) {
      out.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier)),
                 ASN1_STRING_length(gn->d.uniformResourceIdentifier));
      break;
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

namespace {
template <typename Write>
std::string PemOf(Write write) {
  BIO* bio = BIO_new(BIO_s_mem());
  write(bio);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}
}  // namespace

std::string ToPem(X509* cert) {
  return PemOf([cert](BIO* b) { PEM_write_bio_X509(b, cert); });
}
std::string ToPem(EVP_PKEY* key) {
  return PemOf([key](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
}

}  // namespace meshgate::testing
