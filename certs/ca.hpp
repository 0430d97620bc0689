// The partnership's certificate authority (saferlink-ca): an ECDSA P-256 CA kept in a directory.
//
//   DIR/ca.crt, DIR/ca.key (0600)     the CA
//   DIR/crl.pem                        the current CRL (signed; empty list after init)
//   DIR/towns.txt                      the towns certificates may name, one per line
//   DIR/index.json                     every certificate issued: id, serial, role, town,
//                                      member, not_after, revoked_at
//   DIR/issued/ID.crt, ID.key (0600)   one device's or person's certificate and key
// `export` bundles one of them with the CA certificate as PKCS#12 for a browser.
//
// Certificates carry the identity as core/identity.hpp describes. Every function reports a
// refusal by throwing CaError with one line for a person; nothing is half-written on refusal.
// Not thread-safe: one process works on a directory at a time.
#pragma once

#include "core/identity.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace saferlink::ca {

struct CaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct InitOptions {
  std::string name = "Safer Medway Partnership";  // CA subject O and CN prefix
  std::vector<std::string> towns;                 // empty: default_towns()
  int days = 3650;
};

// Creates a new CA in `dir` (made if missing). Refuses if dir already holds a CA.
void init(const std::filesystem::path& dir, const InitOptions& options);

struct IssueOptions {
  Role role = Role::shop;
  std::string town;    // a known town or "all" (not for shops); ignored for the hub ("all")
  std::string member;  // member organisation; required except for the hub
  std::string id;
  std::vector<std::string> hosts;  // hub only: IP addresses or DNS names for the SAN
  // Validity window relative to now. Tests use a negative not_after to make expired ones.
  std::chrono::seconds not_before_offset{-300};
  std::chrono::seconds not_after_offset{std::chrono::hours(24 * 825)};
};

struct Issued {
  std::filesystem::path cert;
  std::filesystem::path key;
  std::string serial_hex;
};

// Issues a certificate and key into DIR/issued/. Refuses an unknown town, a duplicate id,
// an invalid id, a missing CA, a shop with town "all", a hub without hosts.
Issued issue(const std::filesystem::path& dir, const IssueOptions& options);

// Marks `id` revoked and rewrites DIR/crl.pem. Refuses an unknown or already revoked id.
void revoke(const std::filesystem::path& dir, const std::string& id);

// Re-signs DIR/crl.pem with the current revocations (fresh nextUpdate).
void refresh_crl(const std::filesystem::path& dir);

struct Entry {
  std::string id;
  std::string role;
  std::string town;
  std::string member;
  std::string serial_hex;
  std::string not_after;   // ISO 8601 UTC
  std::string state;       // "valid", "expired" or "revoked"
  std::string revoked_at;  // ISO 8601 UTC, empty if not revoked
};

std::vector<Entry> list(const std::filesystem::path& dir);

// Writes `id`'s certificate, key and the CA certificate as one PKCS#12 bundle to `out` (mode
// 0600), protected by `password` (at least 8 characters), for importing a person's
// certificate into a browser (the console login). Refuses an unknown or revoked id, an
// existing `out` (never overwritten) and a short password.
void export_p12(const std::filesystem::path& dir, const std::string& id,
                const std::filesystem::path& out, const std::string& password);

}  // namespace saferlink::ca
