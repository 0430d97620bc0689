// Issuer: device certificates for simulated handsets, made in memory and signed by the
// partnership CA in a CA directory (the layout certs/ca.hpp writes: ca.crt, ca.key, issued/).
//
// A handset the scenario names by id uses DIR/issued/ID.{crt,key} when they exist and is
// issued there with ca::issue (saferlink_certs) when they do not, so a person can reuse it.
// Generated swarm handsets (thousands) get certificates in memory only: the same subject and
// subjectAltName layout as ca::issue (core/identity.hpp), a random serial, valid from an hour
// ago for two days, never written to index.json — writing and fsyncing index.json for each of
// ten thousand handsets would take minutes. The hub accepts both alike; they cannot be revoked
// one by one (they expire).
//
// Not thread-safe; used while the swarm is being built.
#pragma once

#include "core/identity.hpp"

#include <openssl/types.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace saferlink::sim {

struct IssueError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct X509Deleter {
  void operator()(X509* x) const;
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const;
};
using CertPtr = std::unique_ptr<X509, X509Deleter>;
using KeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

struct Credentials {
  CertPtr cert;
  KeyPtr key;
};

// A certificate and key from PEM files (a handset's own, DIR/issued/ID.{crt,key}). Throws
// IssueError naming the file.
Credentials read_credentials(const std::filesystem::path& cert, const std::filesystem::path& key);

class Issuer {
 public:
  // Loads DIR/ca.crt and DIR/ca.key. Throws IssueError naming what is missing.
  explicit Issuer(std::filesystem::path ca_dir);
  ~Issuer();

  // In memory, signed by the CA.
  Credentials issue_in_memory(Role role, const std::string& town, const std::string& id,
                              const std::string& member) const;
  // DIR/issued/ID.{crt,key}, issued with ca::issue first if missing.
  Credentials named(Role role, const std::string& town, const std::string& id,
                    const std::string& member) const;

  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  CertPtr ca_cert_;
  KeyPtr ca_key_;
};

}  // namespace saferlink::sim
