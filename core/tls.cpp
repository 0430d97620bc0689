#include "core/tls.hpp"

#include <boost/asio/ssl/context.hpp>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cstdio>

namespace saferlink {
namespace {

namespace ssl = boost::asio::ssl;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

File open_file(const std::filesystem::path& path, const char* what) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) throw TlsError("cannot read " + std::string(what) + " " + path.string());
  return f;
}

std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

void load_own(ssl::context& ctx, const TlsFiles& files) {
  boost::system::error_code ec;
  ctx.use_certificate_chain_file(files.cert.string(), ec);
  if (ec) throw TlsError("cannot load certificate " + files.cert.string() + ": " + ec.message());
  ctx.use_private_key_file(files.key.string(), ssl::context::pem, ec);
  if (ec) throw TlsError("cannot load key " + files.key.string() + ": " + ec.message());
  ctx.load_verify_file(files.ca.string(), ec);
  if (ec) throw TlsError("cannot load CA " + files.ca.string() + ": " + ec.message());
}

void tls13_only(ssl::context& ctx) {
  SSL_CTX* native = ctx.native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(native, TLS1_3_VERSION) != 1) {
    throw TlsError("cannot restrict TLS to 1.3: " + openssl_error());
  }
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // An idle connection gives its read and write buffers back (about 34 KiB each).
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
}

struct CrlFree {
  void operator()(X509_CRL* c) const { X509_CRL_free(c); }
};
struct X509Free {
  void operator()(X509* c) const { X509_free(c); }
};

std::unique_ptr<X509_CRL, CrlFree> read_crl(const std::filesystem::path& path) {
  File f = open_file(path, "CRL");
  std::unique_ptr<X509_CRL, CrlFree> crl(PEM_read_X509_CRL(f.get(), nullptr, nullptr, nullptr));
  if (!crl) throw TlsError("cannot parse CRL " + path.string() + ": " + openssl_error());
  return crl;
}

}  // namespace

TlsFiles tls_files(const std::filesystem::path& certs_dir, const std::string& id) {
  return TlsFiles{certs_dir / "ca.crt", certs_dir / "crl.pem",
                  certs_dir / "issued" / (id + ".crt"), certs_dir / "issued" / (id + ".key")};
}

std::shared_ptr<ssl::context> make_server_context(const TlsFiles& files) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  tls13_only(*ctx);
  load_own(*ctx, files);
  ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  auto crl = read_crl(files.crl);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx->native_handle());
  if (X509_STORE_add_crl(store, crl.get()) != 1) {
    throw TlsError("cannot use CRL " + files.crl.string() + ": " + openssl_error());
  }
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  // Session tickets would let a revoked client resume without a fresh verification.
  SSL_CTX_set_num_tickets(ctx->native_handle(), 0);
  SSL_CTX_set_session_cache_mode(ctx->native_handle(), SSL_SESS_CACHE_OFF);
  return ctx;
}

std::shared_ptr<ssl::context> make_client_context(const TlsFiles& files) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  tls13_only(*ctx);
  load_own(*ctx, files);
  ctx->set_verify_mode(ssl::verify_peer);
  return ctx;
}

std::optional<Identity> peer_identity(SSL* ssl_handle, std::string* why) {
  if (SSL_get_verify_result(ssl_handle) != X509_V_OK) {
    if (why) *why = "peer certificate not verified";
    return std::nullopt;
  }
  std::unique_ptr<X509, X509Free> cert(SSL_get1_peer_certificate(ssl_handle));
  if (!cert) {
    if (why) *why = "no peer certificate";
    return std::nullopt;
  }
  return identity_from_cert(cert.get(), why);
}

std::string handshake_failure(SSL* ssl_handle, const std::string& fallback) {
  if (ssl_handle == nullptr) return fallback;
  const long result = SSL_get_verify_result(ssl_handle);
  if (result != X509_V_OK) return X509_verify_cert_error_string(result);
  return fallback;
}

std::set<std::string> revoked_serials(const std::filesystem::path& crl_file,
                                      const std::filesystem::path& ca_file) {
  auto crl = read_crl(crl_file);
  File f = open_file(ca_file, "CA");
  std::unique_ptr<X509, X509Free> ca(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
  if (!ca) throw TlsError("cannot parse CA " + ca_file.string());
  EVP_PKEY* key = X509_get0_pubkey(ca.get());
  if (key == nullptr || X509_CRL_verify(crl.get(), key) != 1) {
    throw TlsError("CRL " + crl_file.string() + " is not signed by " + ca_file.string());
  }
  std::set<std::string> serials;
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i) {
    const ASN1_INTEGER* serial = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i));
    BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
    if (bn == nullptr) continue;
    char* hex = BN_bn2hex(bn);
    if (hex != nullptr) serials.insert(hex);
    OPENSSL_free(hex);
    BN_free(bn);
  }
  return serials;
}

}  // namespace saferlink
