#include "firmware-sim/issuer.hpp"

#include "certs/ca.hpp"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>

namespace saferlink::sim {

void X509Deleter::operator()(X509* x) const { X509_free(x); }
void PkeyDeleter::operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }

namespace {

[[noreturn]] void fail(const std::string& what) {
  const unsigned long code = ERR_get_error();
  std::string detail;
  if (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    detail = std::string(": ") + buf;
  }
  ERR_clear_error();
  throw IssueError(what + detail);
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr open_file(const std::filesystem::path& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    throw IssueError("cannot read " + path.string());
  }
  return bio;
}

CertPtr read_cert(const std::filesystem::path& path) {
  BioPtr bio = open_file(path);
  CertPtr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) fail(path.string() + " is not a PEM certificate");
  return cert;
}

KeyPtr read_key(const std::filesystem::path& path) {
  BioPtr bio = open_file(path);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) fail(path.string() + " is not a PEM private key");
  return key;
}

void add_name(X509_NAME* name, const char* field, const std::string& value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1) {
    fail(std::string("cannot set subject ") + field);
  }
}

void add_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, ctx, nid, value);
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) {
    X509_EXTENSION_free(ext);
    fail(std::string("cannot add extension ") + OBJ_nid2sn(nid));
  }
  X509_EXTENSION_free(ext);
}

}  // namespace

Credentials read_credentials(const std::filesystem::path& cert, const std::filesystem::path& key) {
  Credentials out;
  out.cert = read_cert(cert);
  out.key = read_key(key);
  if (X509_check_private_key(out.cert.get(), out.key.get()) != 1) {
    ERR_clear_error();
    throw IssueError(key.string() + " does not belong to " + cert.string());
  }
  return out;
}

Issuer::Issuer(std::filesystem::path ca_dir) : dir_(std::move(ca_dir)) {
  std::error_code ec;
  if (!std::filesystem::exists(dir_ / "ca.crt", ec) || !std::filesystem::exists(dir_ / "ca.key", ec)) {
    throw IssueError("no CA in " + dir_.string() +
                     " (need ca.crt and ca.key to issue handset certificates; run saferlink-ca "
                     "init first)");
  }
  ca_cert_ = read_cert(dir_ / "ca.crt");
  ca_key_ = read_key(dir_ / "ca.key");
  if (X509_check_private_key(ca_cert_.get(), ca_key_.get()) != 1) {
    ERR_clear_error();
    throw IssueError((dir_ / "ca.key").string() + " does not belong to " +
                     (dir_ / "ca.crt").string());
  }
}

Issuer::~Issuer() = default;

Credentials Issuer::issue_in_memory(Role role, const std::string& town, const std::string& id,
                                    const std::string& member) const {
  if (!valid_id(id)) throw IssueError("invalid handset id \"" + id + "\"");
  Credentials out;
  out.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!out.key) fail("cannot generate a P-256 key");
  out.cert.reset(X509_new());
  if (!out.cert) fail("out of memory");
  X509* cert = out.cert.get();

  BIGNUM* bn = BN_new();
  if (bn == nullptr || BN_rand(bn, 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1) {
    BN_free(bn);
    fail("cannot make a serial");
  }
  ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(bn, nullptr);
  BN_free(bn);
  if (serial == nullptr) fail("cannot make a serial");
  const int serial_ok = X509_set_serialNumber(cert, serial);
  ASN1_INTEGER_free(serial);

  X509_NAME* name = X509_get_subject_name(cert);
  add_name(name, "O", member);
  add_name(name, "L", town);
  add_name(name, "OU", std::string(to_string(role)));
  add_name(name, "CN", id);
  if (serial_ok != 1 || X509_set_version(cert, 2) != 1 ||
      X509_set_issuer_name(cert, X509_get_subject_name(ca_cert_.get())) != 1 ||
      X509_set_pubkey(cert, out.key.get()) != 1) {
    fail("cannot build the certificate");
  }
  const std::time_t now = std::time(nullptr);
  if (ASN1_TIME_set(X509_getm_notBefore(cert), now - 3600) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), now + 2 * 24 * 3600) == nullptr) {
    fail("cannot set the validity");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca_cert_.get(), cert, nullptr, nullptr, 0);
  add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert, &ctx, NID_key_usage, "critical,digitalSignature");
  add_ext(cert, &ctx, NID_ext_key_usage, "clientAuth");
  add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always");
  const std::string san = "URI:" + identity_uri(role, town, id);
  add_ext(cert, &ctx, NID_subject_alt_name, san.c_str());
  if (X509_sign(cert, ca_key_.get(), EVP_sha256()) <= 0) fail("cannot sign the certificate");
  return out;
}

Credentials Issuer::named(Role role, const std::string& town, const std::string& id,
                          const std::string& member) const {
  const auto crt = dir_ / "issued" / (id + ".crt");
  const auto key = dir_ / "issued" / (id + ".key");
  std::error_code ec;
  if (!std::filesystem::exists(crt, ec)) {
    ca::IssueOptions options;
    options.role = role;
    options.town = town;
    options.member = member;
    options.id = id;
    try {
      ca::issue(dir_, options);
    } catch (const ca::CaError& e) {
      throw IssueError(std::string("cannot issue a certificate for ") + id + ": " + e.what());
    }
  }
  return read_credentials(crt, key);
}

}  // namespace saferlink::sim
