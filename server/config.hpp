// HubConfig: everything the hub is told at start-up. Loaded from a TOML file, then command-line
// flags override individual values (server/main.cpp). Plain data; copy freely.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace saferlink::server {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct HubConfig {
  std::string listen = "127.0.0.1:7443";        // device port, HOST:PORT (port 0: any)
  // The /metrics endpoint (plain HTTP, server/metrics.hpp), HOST:PORT on a loopback address
  // only; empty: off.
  std::string metrics_listen;
  // The console (server/console.hpp): HTTPS with client certificates, HOST:PORT; empty: off.
  std::string console_listen;
  // Development: serve the console's files from this directory instead of the copies compiled
  // into the hub (`--console-dir`; empty: the compiled-in ones).
  std::string console_dir;
  std::filesystem::path certs = "certs";        // CA dir: ca.crt, crl.pem, issued/hub.{crt,key}
  std::filesystem::path db = "saferlink.db";
  std::filesystem::path blobs;                  // image files; empty: "blobs" beside the db
  std::chrono::milliseconds maintenance_interval{60'000};  // notice expiry and reminders
  std::chrono::milliseconds purge_interval{std::chrono::hours(24)};
  std::chrono::milliseconds retention{std::chrono::days(730)};  // forms and profiles
  std::chrono::milliseconds ended_notice_retention{std::chrono::days(730)};  // after it ended
  std::chrono::milliseconds notice_validity{std::chrono::days(365)};  // served -> expires
  std::chrono::milliseconds notice_review_after{std::chrono::days(182)};  // served -> review
  std::int64_t candidate_min_incidents = 3;  // in 12 months, for an exclusion candidate
  std::int64_t candidate_min_members = 2;    // distinct members affected
  std::vector<std::string> towns;               // empty: the five Medway towns
  std::chrono::milliseconds escalation_interval{15'000};
  std::chrono::milliseconds cancel_window{30'000};
  // Store-and-forward: how long a relayed message waits for a device that is off air.
  std::chrono::milliseconds alert_replay_ttl{30 * 60'000};      // panics and cancels
  std::chrono::milliseconds sighting_replay_ttl{2 * 3'600'000};  // sightings (and their photos)
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds heartbeat_interval{10'000};
  std::chrono::milliseconds idle_timeout{35'000};
  std::chrono::milliseconds write_timeout{20'000};
  std::chrono::milliseconds crl_poll_interval{2'000};
  std::uint32_t max_frame_bytes = 64 * 1024;
  std::size_t queue_max_bytes = 4 * 1024 * 1024;
  std::size_t queue_max_messages = 4096;
  std::size_t image_cap_bytes = 8 * 1024 * 1024;  // largest image a device may upload
  // TLS handshakes run at once; further connections wait in the listen backlog, so that a
  // reconnect storm completes handshakes instead of letting them all pass their deadline.
  unsigned max_handshakes = 128;
  unsigned threads = 2;                         // network threads
};

// Reads a TOML file. Unknown keys and wrong types are refused with a message naming the key.
// Layout:
//   listen = "127.0.0.1:7443"
//   metrics_listen = "127.0.0.1:9464"   (optional; loopback only)
//   console_listen = "127.0.0.1:8443"   (optional)
//   certs = "certs"
//   db = "saferlink.db"
//   towns = ["rochester", ...]
//   threads = 2
//   [alerts]   escalation_interval_ms, cancel_window_ms
//   [replay]   alert_ttl_ms, sighting_ttl_ms   (store-and-forward time to live)
//   [limits]   max_frame_bytes, queue_max_bytes, queue_max_messages, image_cap_bytes,
//              max_handshakes
//   [timeouts] handshake_ms, heartbeat_ms, idle_ms, write_ms, crl_poll_ms
HubConfig load_config(const std::filesystem::path& file);
// Same, from TOML text (tests).
HubConfig parse_config(std::string_view toml_text, const std::string& source_name);

// Splits "HOST:PORT" (IPv6 as "[::1]:PORT"). Throws ConfigError naming `what` when malformed.
struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};
HostPort parse_host_port(std::string_view text, const std::string& what);

// True for an IP address in 127.0.0.0/8 or ::1 (not a name: "localhost" is false).
bool is_loopback_address(std::string_view host);

// Checks cross-field sanity (metrics_listen empty or on loopback, intervals positive, idle > heartbeat, frame cap within 1 KiB..16 MiB,
// image cap within 1 byte..64 MiB).
void validate(const HubConfig& config);

}  // namespace saferlink::server
