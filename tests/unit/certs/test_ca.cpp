#include "certs/ca.hpp"

#include "core/towns.hpp"

#include <doctest/doctest.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace ca = saferlink::ca;
using saferlink::Role;

template <auto Fn>
struct Free {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using X509Ptr = std::unique_ptr<X509, Free<X509_free>>;
using CrlPtr = std::unique_ptr<X509_CRL, Free<X509_CRL_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Free<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Free<X509_STORE_CTX_free>>;
using AsnIntPtr = std::unique_ptr<ASN1_INTEGER, Free<ASN1_INTEGER_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Free<BN_free>>;

// A fresh directory under the system temp dir, removed with everything in it afterwards.
// The CA lives in its "ca" subdirectory, which init creates.
struct TempDir {
  TempDir() {
    std::random_device random;
    path = fs::temp_directory_path() /
           ("saferlink-test-ca-" + std::to_string(::getpid()) + "-" + std::to_string(random()));
    fs::create_directories(path);
    ca_dir = path / "ca";
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  fs::path path;
  fs::path ca_dir;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

unsigned permissions(const fs::path& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

X509Ptr load_cert(const fs::path& path) {
  FILE* file = std::fopen(path.c_str(), "r");
  REQUIRE(file != nullptr);
  X509Ptr cert(PEM_read_X509(file, nullptr, nullptr, nullptr));
  std::fclose(file);
  REQUIRE(cert);
  return cert;
}

PkeyPtr load_key(const fs::path& path) {
  FILE* file = std::fopen(path.c_str(), "r");
  REQUIRE(file != nullptr);
  PkeyPtr key(PEM_read_PrivateKey(file, nullptr, nullptr, nullptr));
  std::fclose(file);
  REQUIRE(key);
  return key;
}

CrlPtr load_crl(const fs::path& path) {
  FILE* file = std::fopen(path.c_str(), "r");
  REQUIRE(file != nullptr);
  CrlPtr crl(PEM_read_X509_CRL(file, nullptr, nullptr, nullptr));
  std::fclose(file);
  REQUIRE(crl);
  return crl;
}

int revoked_count(X509_CRL* crl) {
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl);
  return revoked == nullptr ? 0 : sk_X509_REVOKED_num(revoked);
}

bool crl_lists(X509_CRL* crl, const std::string& serial_hex) {
  BIGNUM* raw = nullptr;
  REQUIRE(BN_hex2bn(&raw, serial_hex.c_str()) > 0);
  BnPtr bn(raw);
  AsnIntPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  X509_REVOKED* entry = nullptr;
  return X509_CRL_get0_by_serial(crl, &entry, serial.get()) == 1;
}

long crl_number(X509_CRL* crl) {
  AsnIntPtr number(
      static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl, NID_crl_number, nullptr, nullptr)));
  REQUIRE(number);
  return ASN1_INTEGER_get(number.get());
}

// Verifies `cert_path` as the hub does: against the CA with the CRL checked. Returns the
// X509_V_* result.
int verify(const fs::path& ca_dir, const fs::path& cert_path) {
  X509Ptr ca_cert = load_cert(ca_dir / "ca.crt");
  CrlPtr crl = load_crl(ca_dir / "crl.pem");
  X509Ptr cert = load_cert(cert_path);
  StorePtr store(X509_STORE_new());
  REQUIRE(store);
  REQUIRE(X509_STORE_add_cert(store.get(), ca_cert.get()) == 1);
  REQUIRE(X509_STORE_add_crl(store.get(), crl.get()) == 1);
  REQUIRE(X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK) == 1);
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  REQUIRE(ctx);
  REQUIRE(X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) == 1);
  int ok = X509_verify_cert(ctx.get());
  int error = X509_STORE_CTX_get_error(ctx.get());
  CHECK((ok == 1) == (error == X509_V_OK));
  return error;
}

ca::IssueOptions shop(const std::string& id, const std::string& town = "chatham") {
  ca::IssueOptions options;
  options.role = Role::shop;
  options.town = town;
  options.member = "Pentagon Centre Boots";
  options.id = id;
  return options;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

const ca::Entry* find_entry(const std::vector<ca::Entry>& entries, const std::string& id) {
  for (const ca::Entry& e : entries) {
    if (e.id == id) return &e;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("init creates the CA, an owner-only key, an empty signed CRL and the town list") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});

  CHECK(fs::is_regular_file(tmp.ca_dir / "ca.crt"));
  CHECK(fs::is_regular_file(tmp.ca_dir / "index.json"));
  CHECK(fs::is_directory(tmp.ca_dir / "issued"));
  CHECK(permissions(tmp.ca_dir / "ca.key") == 0600);

  X509Ptr ca_cert = load_cert(tmp.ca_dir / "ca.crt");
  PkeyPtr ca_key = load_key(tmp.ca_dir / "ca.key");
  CHECK(X509_check_private_key(ca_cert.get(), ca_key.get()) == 1);
  CHECK(X509_check_ca(ca_cert.get()) == 1);
  CHECK((X509_get_extension_flags(ca_cert.get()) & EXFLAG_CRITICAL) == 0);  // all known
  CHECK((X509_get_key_usage(ca_cert.get()) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) ==
        (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  CHECK(X509_get0_subject_key_id(ca_cert.get()) != nullptr);
  CHECK(X509_verify(ca_cert.get(), X509_get0_pubkey(ca_cert.get())) == 1);
  int crit = 0;
  BASIC_CONSTRAINTS* bc = static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(ca_cert.get(), NID_basic_constraints, &crit, nullptr));
  REQUIRE(bc != nullptr);
  CHECK(bc->ca != 0);
  CHECK(crit == 1);
  BASIC_CONSTRAINTS_free(bc);

  CrlPtr crl = load_crl(tmp.ca_dir / "crl.pem");
  CHECK(X509_CRL_get_version(crl.get()) == 1);  // v2
  CHECK(X509_CRL_verify(crl.get(), X509_get0_pubkey(ca_cert.get())) == 1);
  CHECK(X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(ca_cert.get())) == 0);
  CHECK(revoked_count(crl.get()) == 0);
  int days = 0;
  int seconds = 0;
  REQUIRE(ASN1_TIME_diff(&days, &seconds, X509_CRL_get0_lastUpdate(crl.get()),
                         X509_CRL_get0_nextUpdate(crl.get())) == 1);
  CHECK(days == 365);
  CHECK(X509_cmp_current_time(X509_CRL_get0_lastUpdate(crl.get())) <= 0);

  CHECK(lines_of(read_text(tmp.ca_dir / "towns.txt")) == saferlink::default_towns());
  CHECK(ca::list(tmp.ca_dir).empty());
}

TEST_CASE("init writes the towns it is given, and issue then knows only those") {
  TempDir tmp;
  ca::InitOptions options;
  options.towns = {"maidstone", "sittingbourne"};
  ca::init(tmp.ca_dir, options);
  CHECK(lines_of(read_text(tmp.ca_dir / "towns.txt")) == options.towns);
  CHECK_NOTHROW(ca::issue(tmp.ca_dir, shop("s1", "maidstone")));
  CHECK_THROWS_AS(ca::issue(tmp.ca_dir, shop("s2", "chatham")), ca::CaError);
}

TEST_CASE("init refuses a directory that already holds a CA and leaves it untouched") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  std::string cert_before = read_text(tmp.ca_dir / "ca.crt");
  std::string key_before = read_text(tmp.ca_dir / "ca.key");
  CHECK_THROWS_WITH_AS(ca::init(tmp.ca_dir, {}), doctest::Contains("already holds a CA"),
                       ca::CaError);
  CHECK(read_text(tmp.ca_dir / "ca.crt") == cert_before);
  CHECK(read_text(tmp.ca_dir / "ca.key") == key_before);
}

TEST_CASE("init refuses a bad town list and a bad name, and writes nothing") {
  TempDir tmp;
  for (std::vector<std::string> towns :
       {std::vector<std::string>{"chatham", "all"}, std::vector<std::string>{"Chatham"},
        std::vector<std::string>{"a/b"}, std::vector<std::string>{"strood", "strood"}}) {
    ca::InitOptions options;
    options.towns = towns;
    CHECK_THROWS_AS(ca::init(tmp.ca_dir, options), ca::CaError);
    CHECK_FALSE(fs::exists(tmp.ca_dir));
  }
  ca::InitOptions unnamed;
  unnamed.name = "";
  CHECK_THROWS_AS(ca::init(tmp.ca_dir, unnamed), ca::CaError);
  ca::InitOptions long_name;
  long_name.name = std::string(61, 'x');
  CHECK_THROWS_AS(ca::init(tmp.ca_dir, long_name), ca::CaError);
  CHECK_FALSE(fs::exists(tmp.ca_dir));
}

TEST_CASE("issue writes a certificate and owner-only key for every role, read back by identity") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  struct Case {
    Role role;
    std::string town;
    std::string member;
    std::string id;
  };
  for (const Case& c : {Case{Role::shop, "chatham", "Pentagon Centre Boots", "shop-chatham-01"},
                        Case{Role::police, "all", "Kent Police", "pc-1234"},
                        Case{Role::cctv, "strood", "Medway Council CCTV", "cctv.strood_2"},
                        Case{Role::coordinator, "all", "Safer Medway", "coord-ann"},
                        Case{Role::hub, "all", "Safer Medway", "hub"}}) {
    CAPTURE(c.id);
    ca::IssueOptions options;
    options.role = c.role;
    options.town = c.town;
    options.member = c.member;
    options.id = c.id;
    if (c.role == Role::hub) options.hosts = {"127.0.0.1"};
    ca::Issued issued = ca::issue(tmp.ca_dir, options);

    CHECK(issued.cert == tmp.ca_dir / "issued" / (c.id + ".crt"));
    CHECK(issued.key == tmp.ca_dir / "issued" / (c.id + ".key"));
    CHECK(permissions(issued.key) == 0600);
    X509Ptr cert = load_cert(issued.cert);
    PkeyPtr key = load_key(issued.key);
    CHECK(X509_check_private_key(cert.get(), key.get()) == 1);
    CHECK(EVP_PKEY_is_a(key.get(), "EC"));

    std::string why;
    auto identity = saferlink::identity_from_cert(cert.get(), &why);
    REQUIRE_MESSAGE(identity.has_value(), why);
    CHECK(identity->id == c.id);
    CHECK(identity->role == c.role);
    CHECK(identity->town == c.town);
    CHECK(identity->member == c.member);
    CHECK(identity->serial_hex == issued.serial_hex);
    CHECK(issued.serial_hex.size() == 32);  // 128 bits, top bit set
    CHECK(issued.serial_hex.find_first_not_of("0123456789ABCDEF") == std::string::npos);

    CHECK(X509_check_ca(cert.get()) == 0);
    CHECK(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_CLIENT, 0) == 1);
    CHECK((X509_check_purpose(cert.get(), X509_PURPOSE_SSL_SERVER, 0) == 1) ==
          (c.role == Role::hub));
    CHECK(X509_get0_authority_key_id(cert.get()) != nullptr);
    CHECK(verify(tmp.ca_dir, issued.cert) == X509_V_OK);
  }
  CHECK(ca::list(tmp.ca_dir).size() == 5);
}

TEST_CASE("issue gives distinct serials to distinct certificates") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  ca::Issued a = ca::issue(tmp.ca_dir, shop("a"));
  ca::Issued b = ca::issue(tmp.ca_dir, shop("b"));
  CHECK(a.serial_hex != b.serial_hex);
}

TEST_CASE("a hub certificate names its hosts as IP and DNS subjectAltNames") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  ca::IssueOptions options;
  options.role = Role::hub;
  options.town = "chatham";  // ignored: the hub serves every town
  options.id = "hub";
  options.hosts = {"127.0.0.1", "::1", "hub.saferlink.example"};
  ca::Issued issued = ca::issue(tmp.ca_dir, options);
  X509Ptr cert = load_cert(issued.cert);
  CHECK(X509_check_ip_asc(cert.get(), "127.0.0.1", 0) == 1);
  CHECK(X509_check_ip_asc(cert.get(), "::1", 0) == 1);
  CHECK(X509_check_ip_asc(cert.get(), "10.0.0.1", 0) == 0);
  CHECK(X509_check_host(cert.get(), "hub.saferlink.example", 0, 0, nullptr) == 1);
  CHECK(X509_check_host(cert.get(), "127.0.0.1", 0, 0, nullptr) == 0);  // an IP, not a name
  auto identity = saferlink::identity_from_cert(cert.get(), nullptr);
  REQUIRE(identity.has_value());
  CHECK(identity->role == Role::hub);
  CHECK(identity->town == "all");
  CHECK(identity->member == "Safer Medway Partnership");  // the CA's name when none is given
}

TEST_CASE("issue refuses a hub without hosts and hosts for anyone but the hub") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  ca::IssueOptions hub;
  hub.role = Role::hub;
  hub.id = "hub";
  CHECK_THROWS_AS(ca::issue(tmp.ca_dir, hub), ca::CaError);
  hub.hosts = {"not a host"};
  CHECK_THROWS_AS(ca::issue(tmp.ca_dir, hub), ca::CaError);
  hub.hosts = {"10.0.0.300"};
  CHECK_THROWS_AS(ca::issue(tmp.ca_dir, hub), ca::CaError);
  ca::IssueOptions with_host = shop("s1");
  with_host.hosts = {"127.0.0.1"};
  CHECK_THROWS_AS(ca::issue(tmp.ca_dir, with_host), ca::CaError);
  CHECK(ca::list(tmp.ca_dir).empty());
}

TEST_CASE("revoke puts the serial on the CRL and verification then fails as revoked") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  ca::Issued lost = ca::issue(tmp.ca_dir, shop("lost-handset"));
  ca::Issued kept = ca::issue(tmp.ca_dir, shop("kept-handset"));
  REQUIRE(verify(tmp.ca_dir, lost.cert) == X509_V_OK);
  long number_before = crl_number(load_crl(tmp.ca_dir / "crl.pem").get());

  ca::revoke(tmp.ca_dir, "lost-handset");

  CrlPtr crl = load_crl(tmp.ca_dir / "crl.pem");
  X509Ptr ca_cert = load_cert(tmp.ca_dir / "ca.crt");
  CHECK(X509_CRL_verify(crl.get(), X509_get0_pubkey(ca_cert.get())) == 1);
  CHECK(revoked_count(crl.get()) == 1);
  CHECK(crl_lists(crl.get(), lost.serial_hex));
  CHECK_FALSE(crl_lists(crl.get(), kept.serial_hex));
  CHECK(crl_number(crl.get()) > number_before);
  CHECK(verify(tmp.ca_dir, lost.cert) == X509_V_ERR_CERT_REVOKED);
  CHECK(verify(tmp.ca_dir, kept.cert) == X509_V_OK);

  auto entries = ca::list(tmp.ca_dir);
  const ca::Entry* entry = find_entry(entries, "lost-handset");
  REQUIRE(entry != nullptr);
  CHECK(entry->state == "revoked");
  CHECK_FALSE(entry->revoked_at.empty());
  CHECK(find_entry(entries, "kept-handset")->state == "valid");
}

TEST_CASE("revoke refuses an unknown id and an id already revoked") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  CHECK_THROWS_WITH_AS(ca::revoke(tmp.ca_dir, "ghost"), doctest::Contains("unknown id"),
                       ca::CaError);
  ca::issue(tmp.ca_dir, shop("s1"));
  ca::revoke(tmp.ca_dir, "s1");
  std::string crl_before = read_text(tmp.ca_dir / "crl.pem");
  CHECK_THROWS_WITH_AS(ca::revoke(tmp.ca_dir, "s1"), doctest::Contains("already revoked"),
                       ca::CaError);
  CHECK(read_text(tmp.ca_dir / "crl.pem") == crl_before);
}

TEST_CASE("refresh_crl re-signs the CRL with the same revocations and a higher number") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  ca::Issued issued = ca::issue(tmp.ca_dir, shop("s1"));
  ca::revoke(tmp.ca_dir, "s1");
  long before = crl_number(load_crl(tmp.ca_dir / "crl.pem").get());

  ca::refresh_crl(tmp.ca_dir);

  CrlPtr crl = load_crl(tmp.ca_dir / "crl.pem");
  X509Ptr ca_cert = load_cert(tmp.ca_dir / "ca.crt");
  CHECK(X509_CRL_verify(crl.get(), X509_get0_pubkey(ca_cert.get())) == 1);
  CHECK(crl_number(crl.get()) == before + 1);
  CHECK(revoked_count(crl.get()) == 1);
  CHECK(crl_lists(crl.get(), issued.serial_hex));
}

TEST_CASE("an expired certificate fails verification as expired and lists as expired") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  ca::IssueOptions options = shop("old-handset");
  options.not_after_offset = -std::chrono::hours(1);
  ca::Issued issued = ca::issue(tmp.ca_dir, options);
  CHECK(verify(tmp.ca_dir, issued.cert) == X509_V_ERR_CERT_HAS_EXPIRED);
  auto entries = ca::list(tmp.ca_dir);
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].state == "expired");
}

TEST_CASE("issue refuses a town not in towns.txt") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  CHECK_THROWS_WITH_AS(ca::issue(tmp.ca_dir, shop("s1", "paris")),
                       doctest::Contains("unknown town"), ca::CaError);
  CHECK_THROWS_AS(ca::issue(tmp.ca_dir, shop("s1", "")), ca::CaError);
}

TEST_CASE("issue refuses a shop for all towns but lets police cover all towns") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  CHECK_THROWS_WITH_AS(ca::issue(tmp.ca_dir, shop("s1", "all")),
                       doctest::Contains("a shop belongs to one town"), ca::CaError);
  ca::IssueOptions police = shop("pc-1", "all");
  police.role = Role::police;
  police.member = "Kent Police";
  CHECK_NOTHROW(ca::issue(tmp.ca_dir, police));
}

TEST_CASE("issue refuses a duplicate id, even a revoked one, and leaves the CA as it was") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  ca::issue(tmp.ca_dir, shop("s1"));
  std::string index_before = read_text(tmp.ca_dir / "index.json");
  std::string cert_before = read_text(tmp.ca_dir / "issued" / "s1.crt");
  auto files_before = files_in(tmp.ca_dir / "issued");

  CHECK_THROWS_WITH_AS(ca::issue(tmp.ca_dir, shop("s1", "strood")),
                       doctest::Contains("already issued"), ca::CaError);
  CHECK(read_text(tmp.ca_dir / "index.json") == index_before);
  CHECK(read_text(tmp.ca_dir / "issued" / "s1.crt") == cert_before);
  CHECK(files_in(tmp.ca_dir / "issued") == files_before);

  ca::revoke(tmp.ca_dir, "s1");
  CHECK_THROWS_AS(ca::issue(tmp.ca_dir, shop("s1")), ca::CaError);
}

TEST_CASE("issue refuses an invalid id") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  for (const std::string& id :
       {std::string(""), std::string("../escape"), std::string("a b"), std::string(65, 'x')}) {
    CAPTURE(id);
    CHECK_THROWS_WITH_AS(ca::issue(tmp.ca_dir, shop(id)), doctest::Contains("invalid id"),
                         ca::CaError);
  }
  CHECK(files_in(tmp.ca_dir / "issued").empty());
  CHECK(ca::list(tmp.ca_dir).empty());
}

TEST_CASE("issue refuses a certificate without a member organisation") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  ca::IssueOptions options = shop("s1");
  options.member = "";
  CHECK_THROWS_AS(ca::issue(tmp.ca_dir, options), ca::CaError);
  options.member = "Boots\nChatham";
  CHECK_THROWS_AS(ca::issue(tmp.ca_dir, options), ca::CaError);
}

TEST_CASE("every operation refuses a directory without a CA") {
  TempDir tmp;
  auto missing = doctest::Contains("no CA in");
  CHECK_THROWS_WITH_AS(ca::issue(tmp.ca_dir, shop("s1")), missing, ca::CaError);
  CHECK_THROWS_WITH_AS(ca::revoke(tmp.ca_dir, "s1"), missing, ca::CaError);
  CHECK_THROWS_WITH_AS(ca::refresh_crl(tmp.ca_dir), missing, ca::CaError);
  CHECK_THROWS_WITH_AS(ca::list(tmp.ca_dir), missing, ca::CaError);
  CHECK_FALSE(fs::exists(tmp.ca_dir));
}

TEST_CASE("list reports each certificate's role, town, member, serial and expiry") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  ca::Issued issued = ca::issue(tmp.ca_dir, shop("s1", "rainham"));
  auto entries = ca::list(tmp.ca_dir);
  REQUIRE(entries.size() == 1);
  const ca::Entry& e = entries[0];
  CHECK(e.id == "s1");
  CHECK(e.role == "shop");
  CHECK(e.town == "rainham");
  CHECK(e.member == "Pentagon Centre Boots");
  CHECK(e.serial_hex == issued.serial_hex);
  CHECK(e.state == "valid");
  CHECK(e.revoked_at.empty());
  // not_after is ISO 8601 UTC and matches the certificate.
  X509Ptr cert = load_cert(issued.cert);
  std::tm tm{};
  REQUIRE(ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) == 1);
  char expected[32];
  std::strftime(expected, sizeof expected, "%Y-%m-%dT%H:%M:%SZ", &tm);
  CHECK(e.not_after == expected);
}

TEST_CASE("a damaged index.json is refused with a message naming it") {
  TempDir tmp;
  ca::init(tmp.ca_dir, {});
  ca::issue(tmp.ca_dir, shop("s1"));
  {
    std::ofstream out(tmp.ca_dir / "index.json", std::ios::trunc);
    out << "{\"version\": 1, \"certificates\": [{\"id\": 7}]}";
  }
  CHECK_THROWS_WITH_AS(ca::list(tmp.ca_dir), doctest::Contains("index.json is damaged"),
                       ca::CaError);
  {
    std::ofstream out(tmp.ca_dir / "index.json", std::ios::trunc);
    out << "not json";
  }
  CHECK_THROWS_WITH_AS(ca::issue(tmp.ca_dir, shop("s2")), doctest::Contains("index.json"),
                       ca::CaError);
  CHECK_FALSE(fs::exists(tmp.ca_dir / "issued" / "s2.crt"));
}
