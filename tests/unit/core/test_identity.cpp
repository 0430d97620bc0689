#include "core/identity.hpp"

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

using saferlink::identity_from_cert;
using saferlink::Role;

struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

// What a test certificate says; built directly with OpenSSL so that it can be wrong in ways
// the CA would never allow (subject values are set as raw UTF8Strings, so even empty ones).
struct CertSpec {
  std::vector<std::pair<std::string, std::string>> subject{
      {"O", "Pentagon Centre Boots"}, {"L", "chatham"}, {"OU", "shop"}, {"CN", "shop-chatham-01"}};
  std::vector<std::string> san{"URI:saferlink:shop/chatham/shop-chatham-01"};
  long serial = 0xABCDEF12;
};

EVP_PKEY* test_key() {
  static std::unique_ptr<EVP_PKEY, PkeyFree> key(
      EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  REQUIRE(key);
  return key.get();
}

void add_ext(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, ExtFree> ext(
      X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
  REQUIRE(ext);
  REQUIRE(X509_add_ext(cert, ext.get(), -1) == 1);
}

X509Ptr make_cert(const CertSpec& spec) {
  X509Ptr cert(X509_new());
  REQUIRE(cert);
  REQUIRE(X509_set_version(cert.get(), 2) == 1);
  REQUIRE(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), spec.serial) == 1);
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& [field, value] : spec.subject) {
    REQUIRE(X509_NAME_add_entry_by_txt(name, field.c_str(), V_ASN1_UTF8STRING,
                                       reinterpret_cast<const unsigned char*>(value.c_str()), -1,
                                       -1, 0) == 1);
  }
  REQUIRE(X509_set_issuer_name(cert.get(), name) == 1);
  REQUIRE(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60) != nullptr);
  REQUIRE(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600) != nullptr);
  REQUIRE(X509_set_pubkey(cert.get(), test_key()) == 1);
  for (const std::string& san : spec.san) add_ext(cert.get(), NID_subject_alt_name, san);
  REQUIRE(X509_sign(cert.get(), test_key(), EVP_sha256()) > 0);
  return cert;
}

std::string refusal(const CertSpec& spec) {
  X509Ptr cert = make_cert(spec);
  std::string why;
  auto identity = identity_from_cert(cert.get(), &why);
  CHECK_FALSE(identity.has_value());
  CHECK_FALSE(why.empty());
  return why;
}

void set_field(CertSpec& spec, const std::string& field, const std::string& value) {
  for (auto& entry : spec.subject) {
    if (entry.first == field) entry.second = value;
  }
}

void drop_field(CertSpec& spec, const std::string& field) {
  std::erase_if(spec.subject, [&](const auto& entry) { return entry.first == field; });
}

}  // namespace

TEST_CASE("parse_role accepts the five role names and nothing else") {
  CHECK(saferlink::parse_role("shop") == Role::shop);
  CHECK(saferlink::parse_role("police") == Role::police);
  CHECK(saferlink::parse_role("cctv") == Role::cctv);
  CHECK(saferlink::parse_role("coordinator") == Role::coordinator);
  CHECK(saferlink::parse_role("hub") == Role::hub);
  CHECK_FALSE(saferlink::parse_role("boss").has_value());
  CHECK_FALSE(saferlink::parse_role("Shop").has_value());
  CHECK_FALSE(saferlink::parse_role("").has_value());
  CHECK_FALSE(saferlink::parse_role("shop ").has_value());
}

TEST_CASE("to_string gives back the name parse_role accepts") {
  for (Role role : {Role::shop, Role::police, Role::cctv, Role::coordinator, Role::hub}) {
    CHECK(saferlink::parse_role(saferlink::to_string(role)) == role);
  }
}

TEST_CASE("valid_id accepts 1 to 64 characters of letters, digits, dot, underscore and dash") {
  CHECK(saferlink::valid_id("shop-chatham-01"));
  CHECK(saferlink::valid_id("a"));
  CHECK(saferlink::valid_id("Police_Kent.7"));
  CHECK(saferlink::valid_id(std::string(64, 'x')));
  CHECK_FALSE(saferlink::valid_id(""));
  CHECK_FALSE(saferlink::valid_id(std::string(65, 'x')));
  CHECK_FALSE(saferlink::valid_id("a/b"));
  CHECK_FALSE(saferlink::valid_id("a b"));
  CHECK_FALSE(saferlink::valid_id("a:b"));
  CHECK_FALSE(saferlink::valid_id("caf\xc3\xa9"));
  CHECK_FALSE(saferlink::valid_id(std::string("a\0b", 3)));
}

TEST_CASE("identity_uri names role, town and id") {
  CHECK(saferlink::identity_uri(Role::shop, "chatham", "shop-chatham-01") ==
        "saferlink:shop/chatham/shop-chatham-01");
  CHECK(saferlink::identity_uri(Role::hub, saferlink::kAllTowns, "hub") == "saferlink:hub/all/hub");
}

TEST_CASE("identity_from_cert reads id, role, town, member and upper-case serial") {
  X509Ptr cert = make_cert(CertSpec{});
  std::string why;
  auto identity = identity_from_cert(cert.get(), &why);
  REQUIRE_MESSAGE(identity.has_value(), why);
  CHECK(identity->id == "shop-chatham-01");
  CHECK(identity->role == Role::shop);
  CHECK(identity->town == "chatham");
  CHECK(identity->member == "Pentagon Centre Boots");
  CHECK(identity->serial_hex == "ABCDEF12");
  CHECK_FALSE(identity->all_towns());
}

TEST_CASE("identity_from_cert prints a small serial as BN_bn2hex does, with whole bytes") {
  CertSpec spec;
  spec.serial = 0x0A1B2C;
  X509Ptr cert = make_cert(spec);
  auto identity = identity_from_cert(cert.get(), nullptr);
  REQUIRE(identity.has_value());
  CHECK(identity->serial_hex == "0A1B2C");
}

TEST_CASE("identity_from_cert accepts an all-towns police officer and other SAN entries") {
  CertSpec spec;
  spec.subject = {{"O", "Kent Police"}, {"L", "all"}, {"OU", "police"}, {"CN", "pc-1234"}};
  spec.san = {
      "DNS:example.org,URI:https://example.org/,URI:saferlink:police/all/pc-1234,"
      "IP:127.0.0.1"};
  X509Ptr cert = make_cert(spec);
  std::string why;
  auto identity = identity_from_cert(cert.get(), &why);
  REQUIRE_MESSAGE(identity.has_value(), why);
  CHECK(identity->role == Role::police);
  CHECK(identity->all_towns());
  CHECK(identity->member == "Kent Police");
}

TEST_CASE("identity_from_cert refuses a certificate without OU") {
  CertSpec spec;
  drop_field(spec, "OU");
  CHECK(refusal(spec).find("OU") != std::string::npos);
}

TEST_CASE("identity_from_cert refuses a certificate missing CN, L or O") {
  for (const char* field : {"CN", "L", "O"}) {
    CAPTURE(field);
    CertSpec spec;
    drop_field(spec, field);
    CHECK(refusal(spec).find(field) != std::string::npos);
  }
}

TEST_CASE("identity_from_cert refuses a subject with two CNs") {
  CertSpec spec;
  spec.subject.emplace_back("CN", "someone-else");
  CHECK(refusal(spec).find("more than one") != std::string::npos);
}

TEST_CASE("identity_from_cert refuses a SAN URI that disagrees with the subject") {
  CertSpec other_town;
  other_town.san = {"URI:saferlink:shop/strood/shop-chatham-01"};
  CHECK(refusal(other_town).find("disagrees") != std::string::npos);

  CertSpec other_role;
  other_role.san = {"URI:saferlink:police/chatham/shop-chatham-01"};
  CHECK(refusal(other_role).find("disagrees") != std::string::npos);

  CertSpec other_id;
  other_id.san = {"URI:saferlink:shop/chatham/shop-chatham-02"};
  CHECK(refusal(other_id).find("disagrees") != std::string::npos);
}

TEST_CASE("identity_from_cert refuses a certificate without a saferlink SAN URI") {
  CertSpec none;
  none.san.clear();
  refusal(none);

  CertSpec dns_only;
  dns_only.san = {"DNS:shop-chatham-01.example.org"};
  CHECK(refusal(dns_only).find("saferlink URI") != std::string::npos);
}

TEST_CASE("identity_from_cert refuses two saferlink SAN URIs") {
  CertSpec spec;
  spec.san = {"URI:saferlink:shop/chatham/shop-chatham-01,URI:saferlink:shop/strood/x"};
  CHECK(refusal(spec).find("more than one") != std::string::npos);
}

TEST_CASE("identity_from_cert refuses an unknown role") {
  CertSpec spec;
  set_field(spec, "OU", "boss");
  spec.san = {"URI:saferlink:boss/chatham/shop-chatham-01"};
  CHECK(refusal(spec).find("boss") != std::string::npos);
}

TEST_CASE("identity_from_cert refuses an invalid id even when the SAN agrees") {
  CertSpec spec;
  set_field(spec, "CN", "shop chatham");
  spec.san = {"URI:saferlink:shop/chatham/shop chatham"};
  refusal(spec);
}

TEST_CASE("identity_from_cert refuses a malformed town") {
  CertSpec spec;
  set_field(spec, "L", "Chatham/Kent");
  spec.san = {"URI:saferlink:shop/Chatham/Kent/shop-chatham-01"};
  CHECK(refusal(spec).find("town") != std::string::npos);
}

TEST_CASE("identity_from_cert refuses a shop for all towns") {
  CertSpec spec;
  set_field(spec, "L", "all");
  spec.san = {"URI:saferlink:shop/all/shop-chatham-01"};
  refusal(spec);
}

TEST_CASE("identity_from_cert refuses an empty member or one with control characters") {
  CertSpec empty;
  set_field(empty, "O", "");
  CHECK(refusal(empty).find("member") != std::string::npos);

  CertSpec control;
  set_field(control, "O", "Boots\nChatham");
  CHECK(refusal(control).find("member") != std::string::npos);
}

TEST_CASE("identity_from_cert refuses a null certificate and tolerates a null why") {
  std::string why;
  CHECK_FALSE(identity_from_cert(nullptr, &why).has_value());
  CHECK_FALSE(why.empty());
  CertSpec spec;
  drop_field(spec, "OU");
  X509Ptr cert = make_cert(spec);
  CHECK_FALSE(identity_from_cert(cert.get(), nullptr).has_value());
}
