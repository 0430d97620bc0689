#include "certs/ca.hpp"

#include "core/towns.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <system_error>
#include <utility>

namespace saferlink::ca {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// ---- RAII for OpenSSL objects ----------------------------------------------------------------

template <auto Fn>
struct Free {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using X509Ptr = std::unique_ptr<X509, Free<X509_free>>;
using X509CrlPtr = std::unique_ptr<X509_CRL, Free<X509_CRL_free>>;
using X509RevokedPtr = std::unique_ptr<X509_REVOKED, Free<X509_REVOKED_free>>;
using X509ExtPtr = std::unique_ptr<X509_EXTENSION, Free<X509_EXTENSION_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Free<BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Free<BN_free>>;
using AsnIntPtr = std::unique_ptr<ASN1_INTEGER, Free<ASN1_INTEGER_free>>;
using AsnTimePtr = std::unique_ptr<ASN1_TIME, Free<ASN1_TIME_free>>;
using AsnOctetPtr = std::unique_ptr<ASN1_OCTET_STRING, Free<ASN1_OCTET_STRING_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, Free<GENERAL_NAME_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Free<GENERAL_NAMES_free>>;

struct OpenSslFree {
  void operator()(char* p) const { OPENSSL_free(p); }
};

// ---- errors ----------------------------------------------------------------------------------

[[noreturn]] void fail(std::string message) { throw CaError(std::move(message)); }

// Fails with `what` and the first reason on OpenSSL's error queue (then clears the queue).
[[noreturn]] void fail_ssl(const std::string& what) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) fail(what);
  char buffer[256];
  ERR_error_string_n(code, buffer, sizeof buffer);
  fail(what + " (" + buffer + ")");
}

// ---- the directory ---------------------------------------------------------------------------

constexpr int kMaxNameLength = 60;    // leaves room for " CA" within ub_common_name (64)
constexpr int kMaxMemberLength = 64;  // ub_organization_name
constexpr int kCrlDays = 365;

struct Paths {
  explicit Paths(const fs::path& d)
      : dir(d),
        ca_crt(d / "ca.crt"),
        ca_key(d / "ca.key"),
        crl(d / "crl.pem"),
        towns(d / "towns.txt"),
        index(d / "index.json"),
        issued(d / "issued") {}
  fs::path dir, ca_crt, ca_key, crl, towns, index, issued;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read " + path.string() + ": " + std::strerror(errno));
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) fail("cannot read " + path.string());
  return out.str();
}

// A file written to a temporary name next to its destination; commit() renames it into place.
// Dropped uncommitted, it removes the temporary file, so a refusal leaves the old state.
class StagedFile {
 public:
  StagedFile(fs::path target, const std::string& content, mode_t mode)
      : target_(std::move(target)) {
    temp_ = target_;
    temp_ += ".tmp-" + std::to_string(::getpid());
    ::unlink(temp_.c_str());
    // Created with its final mode: a key is never readable by others, not even briefly.
    int fd = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) fail("cannot write " + temp_.string() + ": " + std::strerror(errno));
    std::size_t done = 0;
    while (done < content.size()) {
      ssize_t n = ::write(fd, content.data() + done, content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        ::unlink(temp_.c_str());
        fail("cannot write " + temp_.string() + ": " + std::strerror(err));
      }
      done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
      int err = errno;
      ::unlink(temp_.c_str());
      fail("cannot write " + temp_.string() + ": " + std::strerror(err));
    }
    staged_ = true;
  }
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  ~StagedFile() {
    if (staged_) ::unlink(temp_.c_str());
  }

  void commit() {
    if (::rename(temp_.c_str(), target_.c_str()) != 0) {
      fail("cannot write " + target_.string() + ": " + std::strerror(errno));
    }
    staged_ = false;
  }

 private:
  fs::path target_;
  fs::path temp_;
  bool staged_ = false;
};

// ---- time ------------------------------------------------------------------------------------

std::string iso8601(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

std::optional<std::time_t> parse_iso8601(const std::string& text) {
  std::tm tm{};
  char zone = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &zone, &consumed) != 7 ||
      zone != 'Z' || static_cast<std::size_t>(consumed) != text.size()) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return timegm(&tm);
}

std::time_t to_time_t(const ASN1_TIME* time) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(time, &tm) != 1) fail_ssl("unreadable certificate time");
  return timegm(&tm);
}

// ---- index.json ------------------------------------------------------------------------------

struct Record {
  std::string id;
  std::string serial;
  std::string role;
  std::string town;
  std::string member;
  std::string not_after;
  std::string revoked_at;  // empty while not revoked
};

std::vector<Record> load_index(const Paths& paths) {
  json doc = json::parse(read_text(paths.index), nullptr, false);
  if (doc.is_discarded()) fail(paths.index.string() + " is not valid JSON");
  const std::string damaged = paths.index.string() + " is damaged: ";
  std::vector<Record> records;
  try {
    const json& list = doc.at("certificates");
    if (!list.is_array()) fail(damaged + "\"certificates\" is not a list");
    for (const json& item : list) {
      Record r;
      r.id = item.at("id").get<std::string>();
      r.serial = item.at("serial").get<std::string>();
      r.role = item.at("role").get<std::string>();
      r.town = item.at("town").get<std::string>();
      r.member = item.at("member").get<std::string>();
      r.not_after = item.at("not_after").get<std::string>();
      const json& revoked = item.at("revoked_at");
      if (!revoked.is_null()) r.revoked_at = revoked.get<std::string>();
      bool ok = valid_id(r.id) && parse_role(r.role).has_value() && !r.serial.empty() &&
                r.serial.find_first_not_of("0123456789ABCDEF") == std::string::npos &&
                parse_iso8601(r.not_after).has_value() &&
                (r.revoked_at.empty() || parse_iso8601(r.revoked_at).has_value());
      if (!ok) fail(damaged + "bad entry for \"" + r.id + "\"");
      records.push_back(std::move(r));
    }
  } catch (const json::exception& e) {
    fail(damaged + e.what());
  }
  return records;
}

std::string dump_index(const std::vector<Record>& records) {
  json list = json::array();
  for (const Record& r : records) {
    list.push_back({{"id", r.id},
                    {"serial", r.serial},
                    {"role", r.role},
                    {"town", r.town},
                    {"member", r.member},
                    {"not_after", r.not_after},
                    {"revoked_at", r.revoked_at.empty() ? json(nullptr) : json(r.revoked_at)}});
  }
  json doc{{"version", 1}, {"certificates", std::move(list)}};
  return doc.dump(2) + "\n";
}

// ---- towns.txt -------------------------------------------------------------------------------

bool valid_town(std::string_view town) {
  if (town.empty() || town.size() > 64) return false;
  return std::all_of(town.begin(), town.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

std::vector<std::string> load_towns(const Paths& paths) {
  std::istringstream in(read_text(paths.towns));
  std::vector<std::string> towns;
  std::string line;
  while (std::getline(in, line)) {
    auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    auto last = line.find_last_not_of(" \t\r");
    towns.push_back(line.substr(first, last - first + 1));
  }
  return towns;
}

// ---- text checks -----------------------------------------------------------------------------

bool printable(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

bool valid_dns_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  std::size_t start = 0;
  while (start <= host.size()) {
    std::size_t dot = host.find('.', start);
    if (dot == std::string_view::npos) dot = host.size();
    std::string_view label = host.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return false;
    }
    start = dot + 1;
  }
  // An all-numeric last label ("10.0.0.300") is a mistyped address, not a name.
  std::size_t last_dot = host.rfind('.');
  std::string_view last = last_dot == std::string_view::npos ? host : host.substr(last_dot + 1);
  return !std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// ---- OpenSSL building blocks -----------------------------------------------------------------

PkeyPtr new_p256_key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) fail_ssl("cannot generate a P-256 key");
  return key;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(length));
}

BioPtr memory_bio() {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) fail_ssl("out of memory");
  return bio;
}

std::string key_pem(EVP_PKEY* key) {
  BioPtr bio = memory_bio();
  if (PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    fail_ssl("cannot encode a private key");
  }
  return bio_text(bio.get());
}

std::string cert_pem(X509* cert) {
  BioPtr bio = memory_bio();
  if (PEM_write_bio_X509(bio.get(), cert) != 1) fail_ssl("cannot encode a certificate");
  return bio_text(bio.get());
}

std::string crl_pem(X509_CRL* crl) {
  BioPtr bio = memory_bio();
  if (PEM_write_bio_X509_CRL(bio.get(), crl) != 1) fail_ssl("cannot encode the CRL");
  return bio_text(bio.get());
}

BioPtr open_for_reading(const fs::path& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    fail("cannot read " + path.string() + ": " + std::strerror(errno));
  }
  return bio;
}

void add_name(X509_NAME* name, const char* field, const std::string& value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1) {
    fail_ssl(std::string("cannot set subject ") + field + " to \"" + value + "\"");
  }
}

void add_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    fail_ssl(std::string("cannot add extension ") + OBJ_nid2sn(nid));
  }
}

void set_time(ASN1_TIME* field, std::time_t t) {
  if (ASN1_TIME_set(field, t) == nullptr) fail_ssl("cannot set a certificate time");
}

// A random positive 128-bit serial not yet in `records`; returns it and its BN_bn2hex text.
std::pair<AsnIntPtr, std::string> new_serial(const std::vector<Record>& records) {
  for (;;) {
    BnPtr bn(BN_new());
    if (!bn || BN_rand(bn.get(), 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1) {
      fail_ssl("cannot make a random serial");
    }
    std::unique_ptr<char, OpenSslFree> hex(BN_bn2hex(bn.get()));
    AsnIntPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
    if (!hex || !serial) fail_ssl("cannot make a random serial");
    std::string text = hex.get();
    bool taken = std::any_of(records.begin(), records.end(),
                             [&](const Record& r) { return r.serial == text; });
    if (!taken) return {std::move(serial), text};
  }
}

// ---- the CA ----------------------------------------------------------------------------------

struct Authority {
  X509Ptr cert;
  PkeyPtr key;
  std::string name;  // subject O
};

std::string no_ca_message(const Paths& paths) {
  return "no CA in " + paths.dir.string() + ": run saferlink-ca init first";
}

void require_ca(const Paths& paths) {
  std::error_code ec;
  if (!fs::exists(paths.ca_crt, ec) || !fs::exists(paths.ca_key, ec) ||
      !fs::exists(paths.index, ec)) {
    fail(no_ca_message(paths));
  }
}

Authority load_ca(const Paths& paths) {
  require_ca(paths);
  Authority ca;
  {
    BioPtr bio = open_for_reading(paths.ca_crt);
    ca.cert.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!ca.cert) fail_ssl(paths.ca_crt.string() + " is not a PEM certificate");
  }
  {
    BioPtr bio = open_for_reading(paths.ca_key);
    ca.key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!ca.key) fail_ssl(paths.ca_key.string() + " is not a PEM private key");
  }
  if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1) {
    ERR_clear_error();
    fail(paths.ca_key.string() + " does not belong to " + paths.ca_crt.string());
  }
  X509_NAME* subject = X509_get_subject_name(ca.cert.get());
  int index = X509_NAME_get_index_by_NID(subject, NID_organizationName, -1);
  if (index >= 0) {
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    ca.name.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                   static_cast<std::size_t>(ASN1_STRING_length(data)));
  }
  return ca;
}

// The number of the CRL now in DIR/crl.pem, or 0 if there is none readable.
long current_crl_number(const Paths& paths) {
  BioPtr bio(BIO_new_file(paths.crl.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    return 0;
  }
  X509CrlPtr crl(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
  if (!crl) {
    ERR_clear_error();
    return 0;
  }
  AsnIntPtr number(static_cast<ASN1_INTEGER*>(
      X509_CRL_get_ext_d2i(crl.get(), NID_crl_number, nullptr, nullptr)));
  long value = number ? ASN1_INTEGER_get(number.get()) : 0;
  ERR_clear_error();
  return value < 0 ? 0 : value;
}

// A v2 CRL signed by the CA listing every revoked record, valid from now for kCrlDays.
std::string build_crl(const Authority& ca, const std::vector<Record>& records, long number) {
  X509CrlPtr crl(X509_CRL_new());
  if (!crl) fail_ssl("out of memory");
  if (X509_CRL_set_version(crl.get(), 1) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.cert.get())) != 1) {
    fail_ssl("cannot build the CRL");
  }
  std::time_t now = std::time(nullptr);
  AsnTimePtr last(ASN1_TIME_set(nullptr, now));
  AsnTimePtr next(ASN1_TIME_set(nullptr, now + std::time_t{kCrlDays} * 24 * 3600));
  if (!last || !next || X509_CRL_set1_lastUpdate(crl.get(), last.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1) {
    fail_ssl("cannot set the CRL times");
  }

  for (const Record& r : records) {
    if (r.revoked_at.empty()) continue;
    auto when = parse_iso8601(r.revoked_at);
    if (!when) fail("index.json: revoked_at of \"" + r.id + "\" is not an ISO 8601 time");
    BIGNUM* raw = nullptr;
    if (BN_hex2bn(&raw, r.serial.c_str()) == 0) {
      fail("index.json: serial of \"" + r.id + "\" is not hexadecimal");
    }
    BnPtr bn(raw);
    AsnIntPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
    AsnTimePtr date(ASN1_TIME_set(nullptr, *when));
    X509RevokedPtr revoked(X509_REVOKED_new());
    if (!serial || !date || !revoked ||
        X509_REVOKED_set_serialNumber(revoked.get(), serial.get()) != 1 ||
        X509_REVOKED_set_revocationDate(revoked.get(), date.get()) != 1) {
      fail_ssl("cannot add \"" + r.id + "\" to the CRL");
    }
    if (X509_CRL_add0_revoked(crl.get(), revoked.get()) != 1) {
      fail_ssl("cannot add \"" + r.id + "\" to the CRL");
    }
    revoked.release();  // owned by the CRL now
  }
  if (X509_CRL_sort(crl.get()) != 1) fail_ssl("cannot sort the CRL");

  AsnIntPtr crl_number(ASN1_INTEGER_new());
  if (!crl_number || ASN1_INTEGER_set(crl_number.get(), number) != 1 ||
      X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, crl_number.get(), 0, 0) != 1) {
    fail_ssl("cannot number the CRL");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca.cert.get(), nullptr, nullptr, crl.get(), 0);
  X509ExtPtr akid(
      X509V3_EXT_nconf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
  if (!akid || X509_CRL_add_ext(crl.get(), akid.get(), -1) != 1) {
    fail_ssl("cannot add the CRL's authority key identifier");
  }

  if (X509_CRL_sign(crl.get(), ca.key.get(), EVP_sha256()) <= 0) fail_ssl("cannot sign the CRL");
  return crl_pem(crl.get());
}

GeneralNamePtr uri_name(const std::string& uri) {
  GeneralNamePtr name(GENERAL_NAME_new());
  ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
  if (!name || !ia5 || ASN1_STRING_set(ia5, uri.data(), static_cast<int>(uri.size())) != 1) {
    ASN1_IA5STRING_free(ia5);
    fail_ssl("cannot build the subjectAltName");
  }
  GENERAL_NAME_set0_value(name.get(), GEN_URI, ia5);
  return name;
}

GeneralNamePtr dns_name(const std::string& host) {
  GeneralNamePtr name(GENERAL_NAME_new());
  ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
  if (!name || !ia5 || ASN1_STRING_set(ia5, host.data(), static_cast<int>(host.size())) != 1) {
    ASN1_IA5STRING_free(ia5);
    fail_ssl("cannot build the subjectAltName");
  }
  GENERAL_NAME_set0_value(name.get(), GEN_DNS, ia5);
  return name;
}

// An IP address SAN entry if `host` is an IPv4 or IPv6 address, else nullptr.
GeneralNamePtr ip_name(const std::string& host) {
  unsigned char bytes[16];
  int length = 0;
  if (::inet_pton(AF_INET, host.c_str(), bytes) == 1) {
    length = 4;
  } else if (::inet_pton(AF_INET6, host.c_str(), bytes) == 1) {
    length = 16;
  } else {
    return nullptr;
  }
  GeneralNamePtr name(GENERAL_NAME_new());
  ASN1_OCTET_STRING* octets = ASN1_OCTET_STRING_new();
  if (!name || !octets || ASN1_OCTET_STRING_set(octets, bytes, length) != 1) {
    ASN1_OCTET_STRING_free(octets);
    fail_ssl("cannot build the subjectAltName");
  }
  GENERAL_NAME_set0_value(name.get(), GEN_IPADD, octets);
  return name;
}

void push_name(GENERAL_NAMES* names, GeneralNamePtr name) {
  if (sk_GENERAL_NAME_push(names, name.get()) <= 0) fail_ssl("cannot build the subjectAltName");
  name.release();  // owned by the stack now
}

}  // namespace

// ---- init ------------------------------------------------------------------------------------

void init(const fs::path& dir, const InitOptions& options) {
  Paths paths(dir);
  if (options.name.empty() || options.name.size() > kMaxNameLength || !printable(options.name)) {
    fail("the CA name must be 1 to " + std::to_string(kMaxNameLength) + " printable characters");
  }
  if (options.days < 1) fail("the CA must be valid for at least one day");
  std::vector<std::string> towns = options.towns.empty() ? default_towns() : options.towns;
  for (const std::string& town : towns) {
    if (town == kAllTowns) fail("\"all\" is not a town: it already means every town");
    if (!valid_town(town)) {
      fail("invalid town \"" + town + "\": use 1 to 64 characters of a-z 0-9 . _ -");
    }
    if (std::count(towns.begin(), towns.end(), town) > 1) {
      fail("town \"" + town + "\" is listed twice");
    }
  }
  std::error_code ec;
  if (fs::exists(paths.ca_crt, ec) || fs::exists(paths.ca_key, ec) || fs::exists(paths.index, ec)) {
    fail(dir.string() + " already holds a CA");
  }
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    fail(dir.string() + " exists and is not a directory");
  }

  // The CA key and its self-signed certificate.
  PkeyPtr key = new_p256_key();
  X509Ptr cert(X509_new());
  if (!cert) fail_ssl("out of memory");
  auto [serial, serial_hex] = new_serial({});
  std::time_t now = std::time(nullptr);
  X509_NAME* name = X509_get_subject_name(cert.get());
  add_name(name, "O", options.name);
  add_name(name, "CN", options.name + " CA");
  if (X509_set_version(cert.get(), 2) != 1 ||
      X509_set_serialNumber(cert.get(), serial.get()) != 1 ||
      X509_set_issuer_name(cert.get(), name) != 1 || X509_set_pubkey(cert.get(), key.get()) != 1) {
    fail_ssl("cannot build the CA certificate");
  }
  set_time(X509_getm_notBefore(cert.get()), now - 300);
  set_time(X509_getm_notAfter(cert.get()), now + std::time_t{options.days} * 24 * 3600);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0)
    fail_ssl("cannot sign the CA certificate");

  Authority ca{std::move(cert), std::move(key), options.name};
  std::string towns_text;
  for (const std::string& town : towns) towns_text += town + "\n";

  bool created = !fs::exists(dir, ec);
  fs::create_directories(paths.issued, ec);
  if (ec) fail("cannot create " + paths.issued.string() + ": " + ec.message());

  // Stage everything, then move it into place; ca.crt last, since it marks the CA as present.
  std::vector<fs::path> committed;
  try {
    StagedFile towns_file(paths.towns, towns_text, 0644);
    StagedFile index_file(paths.index, dump_index({}), 0644);
    StagedFile crl_file(paths.crl, build_crl(ca, {}, 1), 0644);
    StagedFile key_file(paths.ca_key, key_pem(ca.key.get()), 0600);
    StagedFile cert_file(paths.ca_crt, cert_pem(ca.cert.get()), 0644);
    auto commit = [&](StagedFile& file, const fs::path& path) {
      file.commit();
      committed.push_back(path);
    };
    commit(towns_file, paths.towns);
    commit(index_file, paths.index);
    commit(crl_file, paths.crl);
    commit(key_file, paths.ca_key);
    commit(cert_file, paths.ca_crt);
  } catch (...) {
    for (const fs::path& path : committed) fs::remove(path, ec);
    if (created) {
      fs::remove(paths.issued, ec);
      fs::remove(dir, ec);
    }
    throw;
  }
}

// ---- issue -----------------------------------------------------------------------------------

Issued issue(const fs::path& dir, const IssueOptions& options) {
  Paths paths(dir);
  Authority ca = load_ca(paths);
  std::vector<std::string> towns = load_towns(paths);
  std::vector<Record> records = load_index(paths);

  const Role role = options.role;
  const std::string role_name(to_string(role));
  const std::string id =
      (role == Role::hub && options.id.empty()) ? std::string("hub") : options.id;
  if (!valid_id(id)) {
    fail("invalid id \"" + id + "\": use 1 to 64 characters of A-Z a-z 0-9 . _ -");
  }

  std::string town = options.town;
  if (role == Role::hub) {
    town = kAllTowns;
  } else if (town.empty()) {
    fail("a " + role_name + " certificate needs a town");
  } else if (town == kAllTowns) {
    if (role == Role::shop) fail("a shop belongs to one town: name its town, not \"all\"");
  } else if (!known_town(towns, town)) {
    fail("unknown town \"" + town + "\": not in " + paths.towns.string());
  }

  std::string member = options.member;
  if (member.empty() && role == Role::hub) member = ca.name;
  if (member.empty()) fail("a " + role_name + " certificate needs a member organisation");
  if (member.size() > kMaxMemberLength || !printable(member)) {
    fail("the member organisation must be 1 to " + std::to_string(kMaxMemberLength) +
         " printable characters");
  }

  if (role == Role::hub && options.hosts.empty()) {
    fail("the hub certificate needs at least one host (IP address or DNS name)");
  }
  if (role != Role::hub && !options.hosts.empty()) fail("hosts are only for the hub certificate");

  for (const Record& r : records) {
    if (r.id == id) {
      fail("id \"" + id + "\" is already issued" + (r.revoked_at.empty() ? "" : " (and revoked)"));
    }
  }
  const fs::path cert_path = paths.issued / (id + ".crt");
  const fs::path key_path = paths.issued / (id + ".key");
  std::error_code ec;
  if (fs::exists(cert_path, ec) || fs::exists(key_path, ec)) {
    fail(cert_path.string() + " or its key exists but is not in index.json: remove them first");
  }

  // The validity window; a window that would be empty (a test asking for an expired
  // certificate) starts a day before it ends.
  const std::time_t now = std::time(nullptr);
  const std::time_t not_after = now + static_cast<std::time_t>(options.not_after_offset.count());
  std::time_t not_before = now + static_cast<std::time_t>(options.not_before_offset.count());
  if (not_before >= not_after) not_before = not_after - 24 * 3600;
  const std::time_t ca_not_after = to_time_t(X509_get0_notAfter(ca.cert.get()));
  if (not_after > ca_not_after) {
    fail("the certificate would outlive the CA, which expires " + iso8601(ca_not_after));
  }

  // The certificate.
  PkeyPtr key = new_p256_key();
  X509Ptr cert(X509_new());
  if (!cert) fail_ssl("out of memory");
  auto [serial, serial_hex] = new_serial(records);
  X509_NAME* name = X509_get_subject_name(cert.get());
  add_name(name, "O", member);
  add_name(name, "L", town);
  add_name(name, "OU", role_name);
  add_name(name, "CN", id);
  if (X509_set_version(cert.get(), 2) != 1 ||
      X509_set_serialNumber(cert.get(), serial.get()) != 1 ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.cert.get())) != 1 ||
      X509_set_pubkey(cert.get(), key.get()) != 1) {
    fail_ssl("cannot build the certificate");
  }
  set_time(X509_getm_notBefore(cert.get()), not_before);
  set_time(X509_getm_notAfter(cert.get()), not_after);

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca.cert.get(), cert.get(), nullptr, nullptr, 0);
  add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature");
  add_ext(cert.get(), &ctx, NID_ext_key_usage,
          role == Role::hub ? "serverAuth,clientAuth" : "clientAuth");
  add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  add_ext(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");

  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) fail_ssl("out of memory");
  push_name(names.get(), uri_name(identity_uri(role, town, id)));
  for (const std::string& host : options.hosts) {
    if (GeneralNamePtr ip = ip_name(host)) {
      push_name(names.get(), std::move(ip));
    } else if (valid_dns_name(host)) {
      push_name(names.get(), dns_name(host));
    } else {
      fail("host \"" + host + "\" is neither an IP address nor a DNS name");
    }
  }
  if (X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) !=
      1) {
    fail_ssl("cannot add the subjectAltName");
  }
  if (X509_sign(cert.get(), ca.key.get(), EVP_sha256()) <= 0)
    fail_ssl("cannot sign the certificate");

  Record record;
  record.id = id;
  record.serial = serial_hex;
  record.role = role_name;
  record.town = town;
  record.member = member;
  record.not_after = iso8601(not_after);
  records.push_back(record);

  StagedFile key_file(key_path, key_pem(key.get()), 0600);
  StagedFile cert_file(cert_path, cert_pem(cert.get()), 0644);
  StagedFile index_file(paths.index, dump_index(records), 0644);
  key_file.commit();
  try {
    cert_file.commit();
    index_file.commit();
  } catch (...) {
    fs::remove(cert_path, ec);
    fs::remove(key_path, ec);
    throw;
  }
  return Issued{cert_path, key_path, serial_hex};
}

// ---- revoke, refresh_crl, list ---------------------------------------------------------------

void revoke(const fs::path& dir, const std::string& id) {
  Paths paths(dir);
  Authority ca = load_ca(paths);
  std::vector<Record> records = load_index(paths);
  auto it =
      std::find_if(records.begin(), records.end(), [&](const Record& r) { return r.id == id; });
  if (it == records.end()) fail("unknown id \"" + id + "\": not in " + paths.index.string());
  if (!it->revoked_at.empty()) fail("\"" + id + "\" is already revoked (" + it->revoked_at + ")");
  it->revoked_at = iso8601(std::time(nullptr));

  // The CRL goes first: once it is in place the revocation takes effect at the hub.
  StagedFile crl_file(paths.crl, build_crl(ca, records, current_crl_number(paths) + 1), 0644);
  StagedFile index_file(paths.index, dump_index(records), 0644);
  crl_file.commit();
  index_file.commit();
}

void export_p12(const fs::path& dir, const std::string& id, const fs::path& out,
                const std::string& password) {
  Paths paths(dir);
  Authority ca = load_ca(paths);
  if (!valid_id(id)) fail("invalid id \"" + id + "\"");
  const std::vector<Record> records = load_index(paths);
  auto it =
      std::find_if(records.begin(), records.end(), [&](const Record& r) { return r.id == id; });
  if (it == records.end()) fail("unknown id \"" + id + "\": not in " + paths.index.string());
  if (!it->revoked_at.empty()) fail("\"" + id + "\" is revoked (" + it->revoked_at + ")");
  if (password.size() < 8) fail("the password must have at least 8 characters");
  std::error_code ec;
  if (fs::exists(out, ec)) fail(out.string() + " exists already; choose another file");

  X509Ptr cert;
  PkeyPtr key;
  {
    BioPtr bio = open_for_reading(paths.issued / (id + ".crt"));
    cert.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) fail_ssl("issued/" + id + ".crt is not a PEM certificate");
  }
  {
    BioPtr bio = open_for_reading(paths.issued / (id + ".key"));
    key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key) fail_ssl("issued/" + id + ".key is not a PEM private key");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    fail("issued/" + id + ".key does not belong to issued/" + id + ".crt");
  }
  std::unique_ptr<STACK_OF(X509), decltype([](STACK_OF(X509)* s) { sk_X509_free(s); })> chain(
      sk_X509_new_null());
  if (!chain || sk_X509_push(chain.get(), ca.cert.get()) == 0) fail_ssl("out of memory");
  // OpenSSL 3 defaults: AES-256-CBC with PBKDF2 for the key and certificates, SHA-256 MAC.
  std::unique_ptr<PKCS12, Free<PKCS12_free>> p12(
      PKCS12_create(password.c_str(), id.c_str(), key.get(), cert.get(), chain.get(), 0, 0, 0, 0,
                    0));
  if (!p12) fail_ssl("cannot build the PKCS#12 bundle");
  BioPtr mem(BIO_new(BIO_s_mem()));
  if (!mem || i2d_PKCS12_bio(mem.get(), p12.get()) != 1) fail_ssl("cannot encode the bundle");
  char* data = nullptr;
  const long size = BIO_get_mem_data(mem.get(), &data);
  StagedFile file(out, std::string(data, static_cast<std::size_t>(size)), 0600);
  file.commit();
}

void refresh_crl(const fs::path& dir) {
  Paths paths(dir);
  Authority ca = load_ca(paths);
  std::vector<Record> records = load_index(paths);
  StagedFile crl_file(paths.crl, build_crl(ca, records, current_crl_number(paths) + 1), 0644);
  crl_file.commit();
}

std::vector<Entry> list(const fs::path& dir) {
  Paths paths(dir);
  std::error_code ec;
  if (!fs::exists(paths.ca_crt, ec) || !fs::exists(paths.index, ec)) fail(no_ca_message(paths));
  const std::time_t now = std::time(nullptr);
  std::vector<Entry> entries;
  for (Record& r : load_index(paths)) {
    Entry e;
    auto not_after = parse_iso8601(r.not_after);
    if (!r.revoked_at.empty()) {
      e.state = "revoked";
    } else if (!not_after || *not_after < now) {
      e.state = "expired";
    } else {
      e.state = "valid";
    }
    e.id = std::move(r.id);
    e.role = std::move(r.role);
    e.town = std::move(r.town);
    e.member = std::move(r.member);
    e.serial_hex = std::move(r.serial);
    e.not_after = std::move(r.not_after);
    e.revoked_at = std::move(r.revoked_at);
    entries.push_back(std::move(e));
  }
  return entries;
}

}  // namespace saferlink::ca
