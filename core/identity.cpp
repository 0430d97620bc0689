#include "core/identity.hpp"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <cstring>
#include <memory>
#include <utility>

namespace saferlink {
namespace {

constexpr std::array<std::pair<Role, std::string_view>, 5> kRoleNames{{
    {Role::shop, "shop"},
    {Role::police, "police"},
    {Role::cctv, "cctv"},
    {Role::coordinator, "coordinator"},
    {Role::hub, "hub"},
}};

constexpr std::string_view kUriPrefix = "saferlink:";
constexpr std::size_t kMaxFieldLength = 64;  // ub_common_name, ub_organization_name, ...

struct OpenSslFree {
  void operator()(unsigned char* p) const { OPENSSL_free(p); }
  void operator()(char* p) const { OPENSSL_free(p); }
};
struct BignumFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};

std::optional<Identity> refuse(std::string* why, std::string reason) {
  if (why != nullptr) *why = std::move(reason);
  return std::nullopt;
}

// A town id as towns.hpp describes it: lower-case ASCII (digits, '.', '_' and '-' allowed).
bool valid_town(std::string_view town) {
  if (town.empty() || town.size() > kMaxFieldLength) return false;
  for (char c : town) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Printable text without control characters; member names are shown to people.
bool valid_text(std::string_view text) {
  if (text.empty() || text.size() > 4 * kMaxFieldLength) return false;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

// The one value of subject attribute `nid`, as UTF-8. Refuses a missing or repeated attribute and
// one that does not convert cleanly (embedded NUL).
std::optional<std::string> subject_field(X509_NAME* name, int nid, std::string_view label,
                                         std::string* why) {
  int index = X509_NAME_get_index_by_NID(name, nid, -1);
  if (index < 0) {
    if (why != nullptr) *why = "certificate subject has no " + std::string(label);
    return std::nullopt;
  }
  if (X509_NAME_get_index_by_NID(name, nid, index) >= 0) {
    if (why != nullptr) *why = "certificate subject has more than one " + std::string(label);
    return std::nullopt;
  }
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* raw = nullptr;
  int length = ASN1_STRING_to_UTF8(&raw, data);
  if (length < 0) {
    if (why != nullptr) *why = "certificate subject " + std::string(label) + " is not text";
    return std::nullopt;
  }
  std::unique_ptr<unsigned char, OpenSslFree> owned(raw);
  std::string value(reinterpret_cast<const char*>(raw), static_cast<std::size_t>(length));
  if (value.find('\0') != std::string::npos) {
    if (why != nullptr) *why = "certificate subject " + std::string(label) + " contains a NUL";
    return std::nullopt;
  }
  return value;
}

}  // namespace

std::optional<Role> parse_role(std::string_view text) {
  for (const auto& [role, name] : kRoleNames) {
    if (name == text) return role;
  }
  return std::nullopt;
}

std::string_view to_string(Role role) {
  for (const auto& [r, name] : kRoleNames) {
    if (r == role) return name;
  }
  return "unknown";
}

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string identity_uri(Role role, std::string_view town, std::string_view id) {
  std::string uri(kUriPrefix);
  uri += to_string(role);
  uri += '/';
  uri += town;
  uri += '/';
  uri += id;
  return uri;
}

std::optional<Identity> identity_from_cert(X509* cert, std::string* why) {
  if (cert == nullptr) return refuse(why, "no certificate");
  X509_NAME* subject = X509_get_subject_name(cert);
  if (subject == nullptr) return refuse(why, "certificate has no subject");

  auto id = subject_field(subject, NID_commonName, "CN (id)", why);
  if (!id) return std::nullopt;
  auto role_text = subject_field(subject, NID_organizationalUnitName, "OU (role)", why);
  if (!role_text) return std::nullopt;
  auto town = subject_field(subject, NID_localityName, "L (town)", why);
  if (!town) return std::nullopt;
  auto member = subject_field(subject, NID_organizationName, "O (member)", why);
  if (!member) return std::nullopt;

  if (!valid_id(*id)) return refuse(why, "certificate id \"" + *id + "\" is not a valid id");
  auto role = parse_role(*role_text);
  if (!role) return refuse(why, "certificate role \"" + *role_text + "\" is unknown");
  if (*town != kAllTowns && !valid_town(*town)) {
    return refuse(why, "certificate town \"" + *town + "\" is not a valid town");
  }
  if (*role == Role::shop && *town == kAllTowns) {
    return refuse(why, "certificate names a shop for all towns");
  }
  if (!valid_text(*member)) return refuse(why, "certificate member is empty or not printable");

  // The SAN must carry exactly one saferlink URI, and it must say what the subject says.
  int critical = 0;
  std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, &critical, nullptr)));
  if (!names) {
    return refuse(why, critical == -2 ? "certificate has more than one subjectAltName extension"
                                      : "certificate has no subjectAltName");
  }
  std::optional<std::string> uri;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* ia5 = name->d.uniformResourceIdentifier;
    std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(ia5)),
                      static_cast<std::size_t>(ASN1_STRING_length(ia5)));
    if (value.compare(0, kUriPrefix.size(), kUriPrefix) != 0) continue;
    if (uri) return refuse(why, "certificate has more than one saferlink URI");
    uri = std::move(value);
  }
  if (!uri) return refuse(why, "certificate has no saferlink URI in its subjectAltName");
  std::string expected = identity_uri(*role, *town, *id);
  if (*uri != expected) {
    return refuse(
        why, "certificate URI \"" + *uri + "\" disagrees with its subject (\"" + expected + "\")");
  }

  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
  std::unique_ptr<BIGNUM, BignumFree> bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!bn) return refuse(why, "certificate serial is unreadable");
  std::unique_ptr<char, OpenSslFree> hex(BN_bn2hex(bn.get()));
  if (!hex) return refuse(why, "certificate serial is unreadable");

  Identity identity;
  identity.id = std::move(*id);
  identity.role = *role;
  identity.town = std::move(*town);
  identity.member = std::move(*member);
  identity.serial_hex = hex.get();
  return identity;
}

}  // namespace saferlink
