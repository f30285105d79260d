#include "control/ca.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/names.h"
#include "base/read_file.h"

namespace meshgate::control {

namespace {

namespace fs = std::filesystem;

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Cert = std::unique_ptr<X509, Free>;

constexpr char kIstiodSan[] = "DNS:istiod.istio-system.svc";

std::string OpensslError() {
  char buf[256] = "unknown OpenSSL error";
  if (unsigned long e = ERR_get_error()) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

absl::StatusOr<Key> NewKey(KeyType type) {
  Key key(type == KeyType::kEcdsaP256 ? EVP_EC_gen("P-256") : EVP_RSA_gen(4096));
  if (!key) return absl::InternalError("key generation failed: " + OpensslError());
  return key;
}

absl::Status AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return absl::InternalError("extension " + value + ": " + OpensslError());
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return absl::OkStatus();
}

struct Spec {
  std::vector<std::pair<std::string, std::string>> subject;
  std::chrono::hours validity;
  std::vector<std::pair<int, std::string>> extensions;
};

absl::StatusOr<Cert> Issue(EVP_PKEY* key, const Spec& spec, X509* issuer_cert, EVP_PKEY* issuer_key) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  // A random 128-bit positive serial, as RFC 5280 recommends.
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300);  // clock skew
  X509_gmtime_adj(X509_getm_notAfter(cert.get()),
                  static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(spec.validity).count()));
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& [field, value] : spec.subject) {
    X509_NAME_add_entry_by_txt(name, field.c_str(), MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0);
  }
  X509* issuer = issuer_cert != nullptr ? issuer_cert : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer));
  for (const auto& [nid, value] : spec.extensions) {
    if (absl::Status s = AddExt(cert.get(), issuer, nid, value); !s.ok()) return s;
  }
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
    return absl::InternalError("signing failed: " + OpensslError());
  }
  return cert;
}

std::string CertPem(X509* cert) {
  std::unique_ptr<BIO, Free> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string KeyPem(EVP_PKEY* key) {
  std::unique_ptr<BIO, Free> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) { return base::ReadConfigFile(path); }

// Checked before a key is generated (RSA 4096 takes seconds) and again when
// it is written.
absl::Status KeyMayBeWritten(const std::string& path, bool force) {
  if (!force && fs::exists(path)) {
    return absl::AlreadyExistsError(path + " exists; refusing to overwrite a private key (use --force)");
  }
  return absl::OkStatus();
}

// Private keys: 0600 from the first byte, and never over an existing one
// unless forced.
absl::Status WriteFile(const std::string& path, const std::string& data, bool secret, bool force) {
  if (secret) {
    if (absl::Status s = KeyMayBeWritten(path, force); !s.ok()) return s;
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, secret ? 0600 : 0644);
  if (fd < 0) return absl::UnavailableError(path + ": " + std::strerror(errno));
  if (secret) ::fchmod(fd, 0600);  // an existing file keeps its mode otherwise
  const bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  if (!ok) return absl::UnavailableError(path + ": short write");
  return absl::OkStatus();
}

absl::Status MakeDir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(dir + ": " + ec.message());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Cert>> ReadCerts(const std::string& path) {
  auto pem = ReadFile(path);
  if (!pem.ok()) return pem.status();
  std::unique_ptr<BIO, Free> bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  std::vector<Cert> out;
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
  ERR_clear_error();  // the end of the file reads as an error
  if (out.empty()) return absl::InvalidArgumentError(path + ": no certificate");
  return out;
}

absl::StatusOr<Key> ReadKey(const std::string& path) {
  auto pem = ReadFile(path);
  if (!pem.ok()) return pem.status();
  std::unique_ptr<BIO, Free> bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return absl::InvalidArgumentError(path + ": no private key: " + OpensslError());
  return key;
}

std::chrono::hours Or(std::chrono::hours value, std::chrono::hours fallback) {
  return value.count() > 0 ? value : fallback;
}

const std::vector<std::pair<int, std::string>> kCaExtensions = {
    {NID_subject_key_identifier, "hash"},
    {NID_authority_key_identifier, "keyid:always"},
    {NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"},
};

}  // namespace

absl::Status CreateRoot(const std::string& out_dir, const CaOptions& options) {
  if (absl::Status s = MakeDir(out_dir); !s.ok()) return s;
  const std::string key_path = out_dir + "/root-key.pem";
  if (absl::Status s = KeyMayBeWritten(key_path, options.force); !s.ok()) return s;
  auto key = NewKey(options.key_type);
  if (!key.ok()) return key.status();
  Spec spec{{{"O", "Istio"}, {"CN", "Root CA"}}, Or(options.validity, kRootValidity), kCaExtensions};
  spec.extensions.insert(spec.extensions.begin(), {NID_basic_constraints, "critical,CA:TRUE"});
  auto cert = Issue(key->get(), spec, nullptr, nullptr);
  if (!cert.ok()) return cert.status();
  if (absl::Status s = WriteFile(key_path, KeyPem(key->get()), true, options.force); !s.ok()) return s;
  return WriteFile(out_dir + "/root-cert.pem", CertPem(cert->get()), false, true);
}

absl::Status CreateIntermediate(const std::string& root_dir, const std::string& cluster,
                                const std::string& out_dir, const CaOptions& options) {
  if (cluster.empty()) return absl::InvalidArgumentError("--cluster is required");
  auto roots = ReadCerts(root_dir + "/root-cert.pem");
  if (!roots.ok()) return roots.status();
  auto root_key = ReadKey(root_dir + "/root-key.pem");
  if (!root_key.ok()) return root_key.status();
  if (X509_check_private_key((*roots)[0].get(), root_key->get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(root_dir + ": root-key.pem does not match root-cert.pem");
  }
  if (absl::Status s = MakeDir(out_dir); !s.ok()) return s;
  const std::string key_path = out_dir + "/ca-key.pem";
  if (absl::Status s = KeyMayBeWritten(key_path, options.force); !s.ok()) return s;
  auto key = NewKey(options.key_type);
  if (!key.ok()) return key.status();
  Spec spec{{{"O", "Istio"}, {"CN", "Intermediate CA"}, {"L", cluster}},
            Or(options.validity, kIntermediateValidity), kCaExtensions};
  spec.extensions.insert(spec.extensions.begin(), {NID_basic_constraints, "critical,CA:TRUE,pathlen:0"});
  spec.extensions.push_back({NID_subject_alt_name, kIstiodSan});
  auto cert = Issue(key->get(), spec, (*roots)[0].get(), root_key->get());
  if (!cert.ok()) return cert.status();
  const std::string root_pem = CertPem((*roots)[0].get());
  const std::string ca_pem = CertPem(cert->get());
  if (absl::Status s = WriteFile(key_path, KeyPem(key->get()), true, options.force); !s.ok()) return s;
  for (const auto& [name, data] : {std::pair<std::string, std::string>{"ca-cert.pem", ca_pem},
                                   {"cert-chain.pem", ca_pem + root_pem},
                                   {"root-cert.pem", root_pem}}) {
    if (absl::Status s = WriteFile(out_dir + "/" + name, data, false, true); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> CacertsSecret(const std::string& dir) {
  std::string out =
      "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cacerts\n  namespace: istio-system\n"
      "type: Opaque\ndata:\n";
  for (const char* name : {"ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"}) {
    auto data = ReadFile(dir + "/" + name);
    if (!data.ok()) return data.status();
    absl::StrAppend(&out, "  ", name, ": ", absl::Base64Escape(*data), "\n");
  }
  return out;
}

namespace {

// A leaf with an empty subject (so a critical SAN, RFC 5280 4.2.1.6) issued by
// the intermediate in CA_DIR: OUT/key.pem (0600), cert.pem, cert-chain.pem
// (leaf, then intermediate) and root-cert.pem.
absl::Status IssueLeaf(const std::string& ca_dir, const std::string& san, const std::string& ext_key_usage,
                       std::chrono::hours validity, const std::string& out_dir, const CaOptions& options) {
  auto ca = ReadCerts(ca_dir + "/ca-cert.pem");
  if (!ca.ok()) return ca.status();
  auto ca_key = ReadKey(ca_dir + "/ca-key.pem");
  if (!ca_key.ok()) return ca_key.status();
  auto root = ReadFile(ca_dir + "/root-cert.pem");
  if (!root.ok()) return root.status();
  if (absl::Status s = MakeDir(out_dir); !s.ok()) return s;
  const std::string key_path = out_dir + "/key.pem";
  if (absl::Status s = KeyMayBeWritten(key_path, options.force); !s.ok()) return s;
  // istiod issues ECDSA P-256 leaf keys unless configured otherwise.
  auto key = NewKey(options.key_type == KeyType::kRsa4096 ? KeyType::kEcdsaP256 : options.key_type);
  if (!key.ok()) return key.status();
  const Spec spec{{},
                  validity,
                  {{NID_basic_constraints, "critical,CA:FALSE"},
                   {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                   {NID_ext_key_usage, ext_key_usage},
                   {NID_authority_key_identifier, "keyid:always"},
                   {NID_subject_alt_name, "critical," + san}}};
  auto cert = Issue(key->get(), spec, (*ca)[0].get(), ca_key->get());
  if (!cert.ok()) return cert.status();
  const std::string leaf_pem = CertPem(cert->get());
  if (absl::Status s = WriteFile(key_path, KeyPem(key->get()), true, options.force); !s.ok()) return s;
  for (const auto& [name, data] : {std::pair<std::string, std::string>{"cert.pem", leaf_pem},
                                   {"cert-chain.pem", leaf_pem + CertPem((*ca)[0].get())},
                                   {"root-cert.pem", *root}}) {
    if (absl::Status s = WriteFile(out_dir + "/" + name, data, false, true); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CreateWorkload(const std::string& ca_dir, const std::string& spiffe,
                            const std::string& out_dir, const CaOptions& options) {
  if (spiffe.rfind("spiffe://", 0) != 0 || spiffe.size() <= 9 || spiffe.find_first_of(", \n") != std::string::npos) {
    return absl::InvalidArgumentError("--spiffe must be a SPIFFE ID such as spiffe://cluster.local/ns/foo/sa/sleep");
  }
  return IssueLeaf(ca_dir, "URI:" + spiffe, "serverAuth,clientAuth", Or(options.validity, kWorkloadValidity),
                   out_dir, options);
}

absl::Status CreateServer(const std::string& ca_dir, const std::vector<std::string>& names,
                          const std::string& out_dir, const CaOptions& options) {
  if (names.empty()) return absl::InvalidArgumentError("give at least one --dns NAME or --ip ADDRESS");
  std::string san;
  for (const std::string& name : names) {
    if (name.empty() || name.find_first_of(", \n") != std::string::npos) {
      return absl::InvalidArgumentError("\"" + name + "\" is not a host name or IP address");
    }
    const bool ip = base::CanonicalIp(name).has_value();
    san += (san.empty() ? "" : ",") + std::string(ip ? "IP:" : "DNS:") + name;
  }
  return IssueLeaf(ca_dir, san, "serverAuth", Or(options.validity, kServerValidity), out_dir, options);
}

namespace {

// Verifies `leaf` up to `root` through `untrusted` (like `openssl verify
// -CAfile root -untrusted chain`).
std::string VerifyChain(X509* leaf, X509* root, const std::vector<Cert>& untrusted) {
  std::unique_ptr<X509_STORE, Free> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), root);
  STACK_OF(X509)* chain = sk_X509_new_null();
  for (const Cert& c : untrusted) sk_X509_push(chain, c.get());
  std::unique_ptr<X509_STORE_CTX, Free> ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, chain);
  const int ok = X509_verify_cert(ctx.get());
  const std::string error = ok == 1 ? "" : X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
  sk_X509_free(chain);
  return error;
}

std::string Validity(X509* cert) {
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) return "not valid yet";
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) return "expired";
  return "";
}

bool Critical(X509* cert, int nid) {
  const int at = X509_get_ext_by_NID(cert, nid, -1);
  return at >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, at)) == 1;
}

std::string CaExtensionsProblem(X509* cert, bool intermediate) {
  const long pathlen = X509_get_pathlen(cert);
  if (!(X509_get_extension_flags(cert) & EXFLAG_CA) || !Critical(cert, NID_basic_constraints)) {
    return "basicConstraints is not critical CA:TRUE";
  }
  if (!(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN) || !Critical(cert, NID_key_usage)) {
    return "keyUsage is not critical with keyCertSign";
  }
  if (intermediate && pathlen != 0) return "pathlen is not 0";
  return "";
}

std::string WorkloadExtensionsProblem(X509* cert) {
  if (X509_NAME_entry_count(X509_get_subject_name(cert)) != 0) return "the subject is not empty";
  if (!Critical(cert, NID_subject_alt_name)) return "the SAN is not critical";
  const uint32_t eku = X509_get_extended_key_usage(cert);
  if (!((eku & XKU_SSL_SERVER) && (eku & XKU_SSL_CLIENT))) return "extendedKeyUsage lacks serverAuth or clientAuth";
  if (X509_get_extension_flags(cert) & EXFLAG_CA) return "it is a CA";
  return "";
}

// Which material a directory holds, told by its files: a workload's
// (cert.pem), an intermediate's (ca-cert.pem) or the root's.
struct Layout {
  enum Kind { kRoot, kIntermediate, kWorkload } kind = kRoot;
  std::string cert_file = "root-cert.pem";
  std::string key_file = "root-key.pem";
};

Layout LayoutOf(const std::string& dir) {
  if (fs::exists(dir + "/cert.pem")) return {Layout::kWorkload, "cert.pem", "key.pem"};
  if (fs::exists(dir + "/ca-cert.pem")) return {Layout::kIntermediate, "ca-cert.pem", "ca-key.pem"};
  return {};
}

void Add(std::vector<Check>& checks, std::string name, const std::string& problem) {
  checks.push_back({std::move(name), problem.empty(), problem});
}

// The root verifies itself; anything else verifies to it through cert-chain.pem,
// which starts with its own certificate.
void CheckChain(const std::string& dir, const Layout& layout, X509* cert, X509* root, std::vector<Check>& checks) {
  if (layout.kind == Layout::kRoot) {
    Add(checks, "root-cert.pem is self-signed and verifies", VerifyChain(root, root, {}));
    return;
  }
  auto chain = ReadCerts(dir + "/cert-chain.pem");
  if (!chain.ok()) {
    Add(checks, "read cert-chain.pem", std::string(chain.status().message()));
    return;
  }
  Add(checks, layout.cert_file + " verifies to root-cert.pem through cert-chain.pem", VerifyChain(cert, root, *chain));
  Add(checks, "cert-chain.pem starts with " + layout.cert_file,
      X509_cmp((*chain)[0].get(), cert) == 0 ? "" : "it starts with another certificate");
}

// The key matches the certificate and only its owner can read it.
void CheckKey(const std::string& dir, const Layout& layout, X509* cert, std::vector<Check>& checks) {
  const std::string path = dir + "/" + layout.key_file;
  auto key = ReadKey(path);
  std::string problem;
  if (!key.ok()) {
    problem = std::string(key.status().message());
  } else if (X509_check_private_key(cert, key->get()) != 1) {
    ERR_clear_error();
    problem = "it does not";
  }
  Add(checks, layout.key_file + " matches " + layout.cert_file, problem);
  if (!key.ok()) return;
  struct stat st {};
  ::stat(path.c_str(), &st);
  Add(checks, layout.key_file + " is readable by its owner only",
      (st.st_mode & 077) == 0 ? "" : "mode allows group or others");
}

// The extensions Istio's tools give each kind of material.
void CheckExtensions(const Layout& layout, X509* cert, std::vector<Check>& checks) {
  if (layout.kind == Layout::kWorkload) {
    Add(checks, "workload extensions (empty subject, critical URI SAN, serverAuth+clientAuth)",
        WorkloadExtensionsProblem(cert));
  } else if (layout.kind == Layout::kIntermediate) {
    std::string problem = CaExtensionsProblem(cert, /*intermediate=*/true);
    if (problem.empty() && X509_check_host(cert, "istiod.istio-system.svc", 0, 0, nullptr) != 1) {
      problem = "no SAN DNS:istiod.istio-system.svc";
    }
    Add(checks, "intermediate extensions (critical CA:TRUE pathlen:0, keyCertSign, istiod SAN)", problem);
  } else {
    Add(checks, "root extensions (critical CA:TRUE, keyCertSign)", CaExtensionsProblem(cert, /*intermediate=*/false));
  }
}

}  // namespace

std::vector<Check> Verify(const std::string& dir) {
  std::vector<Check> checks;
  const Layout layout = LayoutOf(dir);
  auto certs = ReadCerts(dir + "/" + layout.cert_file);
  auto roots = ReadCerts(dir + "/root-cert.pem");
  if (!certs.ok() || !roots.ok()) {
    Add(checks, "read " + layout.cert_file + " and root-cert.pem",
        std::string(!certs.ok() ? certs.status().message() : roots.status().message()));
    return checks;
  }
  X509* cert = (*certs)[0].get();
  CheckChain(dir, layout, cert, (*roots)[0].get(), checks);
  CheckKey(dir, layout, cert, checks);
  Add(checks, layout.cert_file + " is within its validity period", Validity(cert));
  CheckExtensions(layout, cert, checks);
  return checks;
}

}  // namespace meshgate::control
