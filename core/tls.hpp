// TLS set-up shared by the hub and every client: TLS 1.3 only, mutual authentication against
// the partnership CA, CRL checking, and identity from the verified peer certificate.
//
// Contexts are built once and shared (std::shared_ptr) by the connections made from them; a
// context is never changed after it is built — a new CRL means a new context (server/hub.cpp).
// Functions are callable from any thread.
#pragma once

#include "core/identity.hpp"

#include <openssl/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace saferlink {

struct TlsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TlsFiles {
  std::filesystem::path ca;   // the partnership CA certificate
  std::filesystem::path crl;  // its CRL (PEM); required for the hub, optional for clients
  std::filesystem::path cert; // our own certificate
  std::filesystem::path key;  // our own private key
};

// The files of `id` in a CA-layout directory: DIR/ca.crt, DIR/crl.pem, DIR/issued/ID.{crt,key}.
TlsFiles tls_files(const std::filesystem::path& certs_dir, const std::string& id);

// Server side: requires and verifies a client certificate (and checks it against the CRL).
// Throws TlsError naming the file that is missing or bad.
std::shared_ptr<boost::asio::ssl::context> make_server_context(const TlsFiles& files);

// Client side: verifies the hub's certificate against the CA (host name checked per stream).
std::shared_ptr<boost::asio::ssl::context> make_client_context(const TlsFiles& files);

// The identity in the verified peer certificate of a completed handshake.
std::optional<Identity> peer_identity(SSL* ssl, std::string* why);

// Why a handshake failed, from OpenSSL's verify result when there is one
// ("certificate revoked", "certificate has expired", "peer did not return a certificate").
std::string handshake_failure(SSL* ssl, const std::string& fallback);

// Serials (upper-case hex) revoked in a CRL file signed by the CA in `ca_file`. Throws
// TlsError if the CRL cannot be read or its signature does not verify.
std::set<std::string> revoked_serials(const std::filesystem::path& crl_file,
                                      const std::filesystem::path& ca_file);

}  // namespace saferlink
