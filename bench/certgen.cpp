// bench-certs: the certificates the benchmarks need, in the CA layout of certs/ca.hpp.
//
//   bench-certs --dir DIR --handsets N [--town chatham]
//
// The CA, the hub (SAN 127.0.0.1, also used as Mosquitto's server certificate), the alert
// sender `bench-sender`, and coordinators `bench-coord-1`/`-2` are made with saferlink_certs
// (ca::init, ca::issue), so they are in index.json like any other. The N handsets
// `hs-00000`… (shops of one town) are issued here directly with OpenSSL in the same subject
// and subjectAltName layout (core/identity.hpp): ca::issue rewrites and fsyncs index.json for
// every certificate, which for ten thousand handsets takes minutes. They are never revoked.
// DIR/bench-handsets.txt records how many exist, so a later run with N or fewer does nothing.
#include "certs/ca.hpp"
#include "core/identity.hpp"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

namespace fs = std::filesystem;
using namespace saferlink;

namespace {

struct Fail : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;

std::string handset_id(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "hs-%05zu", i);
  return buf;
}

void write_file(const fs::path& path, const std::string& text, fs::perms perms) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw Fail("cannot write " + path.string());
  out.close();
  fs::permissions(path, perms);
}

std::string pem_of(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string text(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return text;
}

std::string pem_of(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string text(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return text;
}

void add_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) throw Fail("cannot add an extension");
}

void add_name(X509_NAME* name, const char* field, const std::string& value) {
  X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(value.data()),
                             static_cast<int>(value.size()), -1, 0);
}

// Issues one shop handset certificate signed by the CA, as ca::issue would (without index.json).
void issue_handset(const fs::path& dir, X509* ca_cert, EVP_PKEY* ca_key, const std::string& id,
                   const std::string& town) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  X509Ptr cert(X509_new());
  if (!key || !cert) throw Fail("cannot make a key");
  BnPtr bn(BN_new());
  BN_rand(bn.get(), 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY);
  ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(bn.get(), nullptr);
  X509_set_serialNumber(cert.get(), serial);
  ASN1_INTEGER_free(serial);
  X509_set_version(cert.get(), 2);
  X509_NAME* name = X509_get_subject_name(cert.get());
  add_name(name, "O", "Bench Member " + id);
  add_name(name, "L", town);
  add_name(name, "OU", "shop");
  add_name(name, "CN", id);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert));
  X509_set_pubkey(cert.get(), key.get());
  const std::time_t now = std::time(nullptr);
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), now - 3600);
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), now + 300L * 24 * 3600);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca_cert, cert.get(), nullptr, nullptr, 0);
  add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature");
  add_ext(cert.get(), &ctx, NID_ext_key_usage, "clientAuth");
  add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  add_ext(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  const std::string san = "URI:" + identity_uri(Role::shop, town, id);
  add_ext(cert.get(), &ctx, NID_subject_alt_name, san.c_str());
  if (X509_sign(cert.get(), ca_key, EVP_sha256()) <= 0) throw Fail("cannot sign " + id);
  write_file(dir / "issued" / (id + ".key"), pem_of(key.get()), fs::perms::owner_read | fs::perms::owner_write);
  write_file(dir / "issued" / (id + ".crt"), pem_of(cert.get()),
             fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                 fs::perms::others_read);
}

}  // namespace

int main(int argc, char** argv) {
  fs::path dir;
  std::size_t handsets = 0;
  std::string town = "chatham";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--dir") dir = argv[i + 1];
    else if (flag == "--handsets") handsets = std::stoul(argv[i + 1]);
    else if (flag == "--town") town = argv[i + 1];
    else {
      std::cerr << "bench-certs: unknown flag " << flag << "\n";
      return 2;
    }
  }
  if (dir.empty()) {
    std::cerr << "bench-certs: usage: bench-certs --dir DIR --handsets N [--town T]\n";
    return 2;
  }
  try {
    if (!fs::exists(dir / "ca.crt")) {
      ca::init(dir, ca::InitOptions{});
      ca::IssueOptions hub;
      hub.role = Role::hub;
      hub.hosts = {"127.0.0.1", "localhost"};
      ca::issue(dir, hub);
      ca::IssueOptions sender;
      sender.role = Role::shop;
      sender.town = town;
      sender.member = "Bench Sender";
      sender.id = "bench-sender";
      ca::issue(dir, sender);
      for (const char* id : {"bench-coord-1", "bench-coord-2"}) {
        ca::IssueOptions coord;
        coord.role = Role::coordinator;
        coord.town = std::string(kAllTowns);
        coord.member = "Bench Partnership";
        coord.id = id;
        ca::issue(dir, coord);
      }
    }
    std::size_t have = 0;
    if (std::ifstream in(dir / "bench-handsets.txt"); in) in >> have;
    if (have >= handsets) {
      std::cout << "handsets " << have << " (already issued)\n";
      return 0;
    }
    FILE* f = std::fopen((dir / "ca.crt").c_str(), "r");
    if (!f) throw Fail("cannot read ca.crt");
    X509Ptr ca_cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    f = std::fopen((dir / "ca.key").c_str(), "r");
    if (!f) throw Fail("cannot read ca.key");
    PkeyPtr ca_key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    if (!ca_cert || !ca_key) throw Fail("cannot parse the CA");
    for (std::size_t i = have; i < handsets; ++i) {
      issue_handset(dir, ca_cert.get(), ca_key.get(), handset_id(i), town);
    }
    write_file(dir / "bench-handsets.txt", std::to_string(handsets) + "\n",
               fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                   fs::perms::others_read);
    std::cout << "handsets " << handsets << " (issued " << handsets - have << ")\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "bench-certs: " << e.what() << "\n";
    return 1;
  }
}
