#include "server/config.hpp"

#include "core/identity.hpp"

#include <toml++/toml.h>

#include <arpa/inet.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>

// Towns: HubConfig::towns empty means "the default towns" (default_towns(), the five Medway
// towns), as the header says. parse_config leaves it empty when the file has no `towns` key,
// validate() accepts an empty list, and whoever needs the actual list (the hub, at start-up)
// substitutes default_towns() for an empty one. An explicit `towns = []` in a file is refused
// rather than silently read as "the defaults".

namespace saferlink::server {
namespace {

constexpr std::int64_t kMaxDurationMs = 24LL * 60 * 60 * 1000;  // one day
constexpr std::uint32_t kMinFrameBytes = 1024;
constexpr std::uint32_t kMaxFrameBytes = 16 * 1024 * 1024;
// An image is checked in memory in one piece (core/image.hpp): keep that bounded.
constexpr std::size_t kMaxImageCapBytes = 64 * 1024 * 1024;
constexpr unsigned kMaxThreads = 64;
constexpr std::size_t kMaxTownLength = 32;

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::none: return "nothing";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
  }
  return "an unknown type";
}

// Reads one parsed document into a HubConfig; every error names the source and the key.
class Reader {
 public:
  explicit Reader(const std::string& source) : source_(source) {}

  void read_root(const toml::table& root, HubConfig& config) const {
    for (auto&& [k, node] : root) {
      const std::string key(k.str());
      if (key == "listen") {
        config.listen = string_value(node, key);
        parse_host_port(config.listen, source_ + ": key 'listen'");
      } else if (key == "metrics_listen") {
        config.metrics_listen = string_value(node, key);
        if (!config.metrics_listen.empty()) {
          parse_host_port(config.metrics_listen, source_ + ": key 'metrics_listen'");
        }
      } else if (key == "console_listen") {
        config.console_listen = string_value(node, key);
        if (!config.console_listen.empty()) {
          parse_host_port(config.console_listen, source_ + ": key 'console_listen'");
        }
      } else if (key == "certs") {
        config.certs = string_value(node, key);
      } else if (key == "db") {
        config.db = string_value(node, key);
      } else if (key == "blobs") {
        config.blobs = string_value(node, key);
      } else if (key == "retention") {
        read_retention(table_value(node, key), config);
      } else if (key == "notices") {
        read_notices(table_value(node, key), config);
      } else if (key == "towns") {
        config.towns = towns_value(node, key);
      } else if (key == "threads") {
        config.threads = unsigned_value<unsigned>(node, key);
      } else if (key == "alerts") {
        read_alerts(table_value(node, key), config);
      } else if (key == "replay") {
        read_replay(table_value(node, key), config);
      } else if (key == "limits") {
        read_limits(table_value(node, key), config);
      } else if (key == "timeouts") {
        read_timeouts(table_value(node, key), config);
      } else {
        unknown(key);
      }
    }
  }

 private:
  void read_notices(const toml::table& table, HubConfig& config) const {
    for (auto&& [k, node] : table) {
      const std::string key = "notices." + std::string(k.str());
      if (k.str() == "validity_days") {
        config.notice_validity = std::chrono::days(unsigned_value<unsigned>(node, key));
      } else if (k.str() == "review_days") {
        config.notice_review_after = std::chrono::days(unsigned_value<unsigned>(node, key));
      } else if (k.str() == "candidate_min_incidents") {
        config.candidate_min_incidents = unsigned_value<unsigned>(node, key);
      } else if (k.str() == "candidate_min_members") {
        config.candidate_min_members = unsigned_value<unsigned>(node, key);
      } else {
        unknown(key);
      }
    }
  }

  void read_retention(const toml::table& table, HubConfig& config) const {
    for (auto&& [k, node] : table) {
      const std::string key = "retention." + std::string(k.str());
      if (k.str() == "forms_and_profiles_days") {
        config.retention = std::chrono::days(unsigned_value<unsigned>(node, key));
      } else if (k.str() == "ended_notices_days") {
        config.ended_notice_retention = std::chrono::days(unsigned_value<unsigned>(node, key));
      } else if (k.str() == "purge_interval_ms") {
        config.purge_interval = ms_value(node, key);
      } else if (k.str() == "maintenance_interval_ms") {
        config.maintenance_interval = ms_value(node, key);
      } else {
        unknown(key);
      }
    }
  }

  void read_alerts(const toml::table& table, HubConfig& config) const {
    for (auto&& [k, node] : table) {
      const std::string key = "alerts." + std::string(k.str());
      if (k.str() == "escalation_interval_ms") {
        config.escalation_interval = ms_value(node, key);
      } else if (k.str() == "cancel_window_ms") {
        config.cancel_window = ms_value(node, key);
      } else {
        unknown(key);
      }
    }
  }

  void read_replay(const toml::table& table, HubConfig& config) const {
    for (auto&& [k, node] : table) {
      const std::string key = "replay." + std::string(k.str());
      if (k.str() == "alert_ttl_ms") {
        config.alert_replay_ttl = ms_value(node, key);
      } else if (k.str() == "sighting_ttl_ms") {
        config.sighting_replay_ttl = ms_value(node, key);
      } else {
        unknown(key);
      }
    }
  }

  void read_limits(const toml::table& table, HubConfig& config) const {
    for (auto&& [k, node] : table) {
      const std::string key = "limits." + std::string(k.str());
      if (k.str() == "max_frame_bytes") {
        config.max_frame_bytes = unsigned_value<std::uint32_t>(node, key);
      } else if (k.str() == "queue_max_bytes") {
        config.queue_max_bytes = unsigned_value<std::size_t>(node, key);
      } else if (k.str() == "queue_max_messages") {
        config.queue_max_messages = unsigned_value<std::size_t>(node, key);
      } else if (k.str() == "image_cap_bytes") {
        config.image_cap_bytes = unsigned_value<std::size_t>(node, key);
      } else if (k.str() == "max_handshakes") {
        config.max_handshakes = unsigned_value<unsigned>(node, key);
      } else {
        unknown(key);
      }
    }
  }

  void read_timeouts(const toml::table& table, HubConfig& config) const {
    for (auto&& [k, node] : table) {
      const std::string key = "timeouts." + std::string(k.str());
      if (k.str() == "handshake_ms") {
        config.handshake_timeout = ms_value(node, key);
      } else if (k.str() == "heartbeat_ms") {
        config.heartbeat_interval = ms_value(node, key);
      } else if (k.str() == "idle_ms") {
        config.idle_timeout = ms_value(node, key);
      } else if (k.str() == "write_ms") {
        config.write_timeout = ms_value(node, key);
      } else if (k.str() == "crl_poll_ms") {
        config.crl_poll_interval = ms_value(node, key);
      } else {
        unknown(key);
      }
    }
  }

  [[noreturn]] void fail(const std::string& message) const {
    throw ConfigError(source_ + ": " + message);
  }

  [[noreturn]] void unknown(const std::string& key) const { fail("unknown key '" + key + "'"); }

  [[noreturn]] void wrong_type(const toml::node& node, const std::string& key,
                               std::string_view expected) const {
    fail("key '" + key + "' must be " + std::string(expected) + ", not " +
         std::string(type_name(node.type())));
  }

  const toml::table& table_value(const toml::node& node, const std::string& key) const {
    const auto* table = node.as_table();
    if (table == nullptr) wrong_type(node, key, "a table");
    return *table;
  }

  std::string string_value(const toml::node& node, const std::string& key) const {
    const auto* value = node.as_string();
    if (value == nullptr) wrong_type(node, key, "a string");
    return value->get();
  }

  std::int64_t integer_value(const toml::node& node, const std::string& key) const {
    const auto* value = node.as_integer();
    if (value == nullptr) wrong_type(node, key, "an integer");
    return value->get();
  }

  template <typename T>
  T unsigned_value(const toml::node& node, const std::string& key) const {
    const std::int64_t value = integer_value(node, key);
    if (value < 0) fail("key '" + key + "' must not be negative");
    if (static_cast<std::uint64_t>(value) > std::numeric_limits<T>::max()) {
      fail("key '" + key + "' is too large (at most " +
           std::to_string(std::numeric_limits<T>::max()) + ")");
    }
    return static_cast<T>(value);
  }

  // Range checks beyond "fits the type" are validate()'s; this only keeps the arithmetic on
  // time points from overflowing.
  std::chrono::milliseconds ms_value(const toml::node& node, const std::string& key) const {
    const std::int64_t value = integer_value(node, key);
    if (value > kMaxDurationMs) {
      fail("key '" + key + "' is too large (at most " + std::to_string(kMaxDurationMs) + ")");
    }
    return std::chrono::milliseconds(value);
  }

  std::vector<std::string> towns_value(const toml::node& node, const std::string& key) const {
    const auto* array = node.as_array();
    if (array == nullptr) wrong_type(node, key, "an array of strings");
    if (array->empty()) {
      fail("key '" + key + "' must list at least one town (omit it for the default)");
    }
    std::vector<std::string> towns;
    for (const auto& element : *array) {
      const auto* town = element.as_string();
      if (town == nullptr) {
        fail("key '" + key + "' must be an array of strings, but holds " +
             std::string(type_name(element.type())));
      }
      towns.push_back(town->get());
    }
    return towns;
  }

  const std::string& source_;
};

bool valid_town_id(std::string_view town) {
  if (town.empty() || town.size() > kMaxTownLength) return false;
  for (const char c : town) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

void require_positive(std::chrono::milliseconds value, std::string_view key) {
  if (value <= std::chrono::milliseconds::zero()) {
    throw ConfigError(std::string(key) + " must be greater than 0 (got " +
                      std::to_string(value.count()) + ")");
  }
  if (value.count() > kMaxDurationMs) {
    throw ConfigError(std::string(key) + " must be at most " + std::to_string(kMaxDurationMs) +
                      " (got " + std::to_string(value.count()) + ")");
  }
}

}  // namespace

HubConfig parse_config(std::string_view toml_text, const std::string& source_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& error) {
    const auto& begin = error.source().begin;
    throw ConfigError(source_name + ":" + std::to_string(begin.line) + ":" +
                      std::to_string(begin.column) + ": " + std::string(error.description()));
  }
  HubConfig config;
  Reader(source_name).read_root(root, config);
  return config;
}

HubConfig load_config(const std::filesystem::path& file) {
  const std::string name = file.string();
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    throw ConfigError("cannot read config " + name + ": is a directory");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError("cannot read config " + name + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError("cannot read config " + name + ": " + std::strerror(errno));
  return parse_config(text.str(), name);
}

HostPort parse_host_port(std::string_view text, const std::string& what) {
  const auto fail = [&](const std::string& why) -> ConfigError {
    return ConfigError(what + ": '" + std::string(text) + "' " + why);
  };
  std::string_view host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) throw fail("has an unclosed '['");
    host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (rest.empty()) throw fail("has no port (expected HOST:PORT)");
    if (rest.front() != ':') throw fail("needs ':' after ']' (expected [HOST]:PORT)");
    port_text = rest.substr(1);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) throw fail("has no port (expected HOST:PORT)");
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      throw fail("has an IPv6 host without brackets (write it as [::1]:7443)");
    }
  }
  if (host.empty()) throw fail("has no host (expected HOST:PORT)");
  for (const char c : host) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      throw fail("has a space or control character in the host");
    }
  }
  if (port_text.empty()) throw fail("has no port (expected HOST:PORT)");
  std::uint32_t port = 0;
  for (const char c : port_text) {
    if (c < '0' || c > '9' || port > 65535) throw fail("has a port that is not 0..65535");
    port = port * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (port > 65535) throw fail("has a port that is not 0..65535");
  return HostPort{std::string(host), static_cast<std::uint16_t>(port)};
}

bool is_loopback_address(std::string_view host) {
  const std::string text(host);
  unsigned char bytes[16] = {};
  if (inet_pton(AF_INET, text.c_str(), bytes) == 1) return bytes[0] == 127;
  if (inet_pton(AF_INET6, text.c_str(), bytes) == 1) {
    for (int i = 0; i < 15; ++i) {
      if (bytes[i] != 0) return false;
    }
    return bytes[15] == 1;
  }
  return false;
}

void validate(const HubConfig& config) {
  parse_host_port(config.listen, "listen");
  if (!config.metrics_listen.empty()) {
    const HostPort metrics = parse_host_port(config.metrics_listen, "metrics_listen");
    if (!is_loopback_address(metrics.host)) {
      throw ConfigError("metrics_listen: '" + metrics.host +
                        "' is not a loopback address; the metrics endpoint is plain HTTP for a "
                        "scraper on this machine, so give 127.0.0.1 (or another 127.x.x.x) or "
                        "[::1]");
    }
  }
  if (config.certs.empty()) throw ConfigError("certs must not be empty");
  if (config.db.empty()) throw ConfigError("db must not be empty");

  require_positive(config.escalation_interval, "alerts.escalation_interval_ms");
  require_positive(config.cancel_window, "alerts.cancel_window_ms");
  if (config.max_handshakes < 1 || config.max_handshakes > 100'000) {
    throw ConfigError("limits.max_handshakes must be between 1 and 100000");
  }
  require_positive(config.alert_replay_ttl, "replay.alert_ttl_ms");
  require_positive(config.sighting_replay_ttl, "replay.sighting_ttl_ms");
  require_positive(config.handshake_timeout, "timeouts.handshake_ms");
  require_positive(config.heartbeat_interval, "timeouts.heartbeat_ms");
  require_positive(config.idle_timeout, "timeouts.idle_ms");
  require_positive(config.write_timeout, "timeouts.write_ms");
  require_positive(config.crl_poll_interval, "timeouts.crl_poll_ms");
  require_positive(config.maintenance_interval, "retention.maintenance_interval_ms");
  if (config.purge_interval.count() <= 0) {
    throw ConfigError("retention.purge_interval_ms must be positive");
  }
  if (config.retention.count() <= 0) {
    throw ConfigError("retention.forms_and_profiles_days must be positive");
  }
  if (config.ended_notice_retention.count() <= 0) {
    throw ConfigError("retention.ended_notices_days must be positive");
  }
  if (config.notice_validity.count() <= 0) throw ConfigError("notices.validity_days must be positive");
  if (config.notice_review_after.count() <= 0 ||
      config.notice_review_after >= config.notice_validity) {
    throw ConfigError("notices.review_days must be positive and less than notices.validity_days");
  }
  if (config.candidate_min_incidents < 1 || config.candidate_min_members < 1) {
    throw ConfigError("notices.candidate_min_incidents and candidate_min_members must be at least 1");
  }
  if (config.idle_timeout <= config.heartbeat_interval) {
    throw ConfigError("timeouts.idle_ms (" + std::to_string(config.idle_timeout.count()) +
                      ") must be greater than timeouts.heartbeat_ms (" +
                      std::to_string(config.heartbeat_interval.count()) + ")");
  }

  if (config.max_frame_bytes < kMinFrameBytes || config.max_frame_bytes > kMaxFrameBytes) {
    throw ConfigError("limits.max_frame_bytes must be between " + std::to_string(kMinFrameBytes) +
                      " and " + std::to_string(kMaxFrameBytes) + " (got " +
                      std::to_string(config.max_frame_bytes) + ")");
  }
  if (config.queue_max_bytes == 0) {
    throw ConfigError("limits.queue_max_bytes must be greater than 0");
  }
  if (config.queue_max_messages == 0) {
    throw ConfigError("limits.queue_max_messages must be greater than 0");
  }
  if (config.image_cap_bytes == 0 || config.image_cap_bytes > kMaxImageCapBytes) {
    throw ConfigError("limits.image_cap_bytes must be between 1 and " +
                      std::to_string(kMaxImageCapBytes) + " (got " +
                      std::to_string(config.image_cap_bytes) + ")");
  }
  if (config.threads < 1 || config.threads > kMaxThreads) {
    throw ConfigError("threads must be between 1 and " + std::to_string(kMaxThreads) + " (got " +
                      std::to_string(config.threads) + ")");
  }

  // Empty means default_towns(), which are valid by construction.
  std::set<std::string_view> seen;
  for (const auto& town : config.towns) {
    if (!valid_town_id(town)) {
      throw ConfigError("towns: '" + town + "' is not a town id (1 to 32 of a-z, 0-9, '-')");
    }
    if (town == kAllTowns) throw ConfigError("towns: 'all' is reserved for \"every town\"");
    if (!seen.insert(town).second) throw ConfigError("towns: '" + town + "' is listed twice");
  }
}

}  // namespace saferlink::server
