// Identity: who a peer is, as its verified certificate says — the only source of identity in
// SaferLink (never a message field).
//
// Certificate layout (written by certs/ca.cpp, read here):
//   subject CN = device or person id        e.g. "shop-chatham-01"
//   subject OU = role                        shop | police | cctv | coordinator | hub
//   subject L  = town id or "all"            e.g. "chatham"
//   subject O  = member organisation         e.g. "Pentagon Centre Boots"
//   SAN URI    = "saferlink:<role>/<town>/<id>"  (must agree with the subject)
// Plain functions; no shared state; callable from any thread.
#pragma once

#include <openssl/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace saferlink {

enum class Role { shop, police, cctv, coordinator, hub };

std::optional<Role> parse_role(std::string_view text);
std::string_view to_string(Role role);

// The town value that means "every town" (police, CCTV and coordinators may have it).
inline constexpr std::string_view kAllTowns = "all";

struct Identity {
  std::string id;
  Role role = Role::shop;
  std::string town;
  std::string member;
  std::string serial_hex;  // certificate serial, upper-case hex, to match against the CRL

  bool all_towns() const { return town == kAllTowns; }
};

// Ids: 1..64 characters of [A-Za-z0-9._-]. Used by the CA and checked again on read.
bool valid_id(std::string_view id);

// Reads the identity from `cert` (which the caller has already verified against the CA).
// Returns nullopt and sets *why when a field is missing, malformed, or the SAN disagrees.
std::optional<Identity> identity_from_cert(X509* cert, std::string* why);

// The SAN URI for an identity: "saferlink:<role>/<town>/<id>".
std::string identity_uri(Role role, std::string_view town, std::string_view id);

}  // namespace saferlink
