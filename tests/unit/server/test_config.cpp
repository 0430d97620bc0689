#include "server/config.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <unistd.h>

namespace saferlink::server {
namespace {

using namespace std::chrono_literals;

// The ConfigError message `action` throws; "(no error)" when it does not throw.
std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "(no error)";
}

std::string parse_error(const std::string& text) {
  return error_of([&] { parse_config(text, "config.toml"); });
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// --- reading files ---------------------------------------------------------------------

TEST_CASE("a full config file is read into every field") {
  const auto config = parse_config(R"(
listen = "0.0.0.0:8443"
certs = "/etc/saferlink/ca"
db = "/var/lib/saferlink/hub.db"
towns = ["chatham", "strood", "upnor"]
threads = 4

[alerts]
escalation_interval_ms = 5000
cancel_window_ms = 20000

[limits]
max_frame_bytes = 131072
queue_max_bytes = 1048576
queue_max_messages = 100
image_cap_bytes = 2097152

[timeouts]
handshake_ms = 3000
heartbeat_ms = 4000
idle_ms = 12000
write_ms = 6000
crl_poll_ms = 500
)",
                                   "config.toml");
  CHECK(config.listen == "0.0.0.0:8443");
  CHECK(config.certs == "/etc/saferlink/ca");
  CHECK(config.db == "/var/lib/saferlink/hub.db");
  CHECK(config.towns == std::vector<std::string>{"chatham", "strood", "upnor"});
  CHECK(config.threads == 4);
  CHECK(config.escalation_interval == 5s);
  CHECK(config.cancel_window == 20s);
  CHECK(config.max_frame_bytes == 131072);
  CHECK(config.queue_max_bytes == 1048576);
  CHECK(config.queue_max_messages == 100);
  CHECK(config.image_cap_bytes == 2097152);
  CHECK(config.handshake_timeout == 3s);
  CHECK(config.heartbeat_interval == 4s);
  CHECK(config.idle_timeout == 12s);
  CHECK(config.write_timeout == 6s);
  CHECK(config.crl_poll_interval == 500ms);
  CHECK_NOTHROW(validate(config));
}

TEST_CASE("keys absent from the file keep their defaults, and absent towns mean the default "
          "towns") {
  const HubConfig defaults;
  SUBCASE("an empty file") {
    const auto config = parse_config("", "config.toml");
    CHECK(config.listen == "127.0.0.1:7443");
    CHECK(config.certs == "certs");
    CHECK(config.db == "saferlink.db");
    CHECK(config.towns.empty());
    CHECK(config.threads == 2);
    CHECK(config.escalation_interval == 15s);
    CHECK(config.cancel_window == 30s);
    CHECK(config.handshake_timeout == 10s);
    CHECK(config.heartbeat_interval == 10s);
    CHECK(config.idle_timeout == 35s);
    CHECK(config.write_timeout == 20s);
    CHECK(config.crl_poll_interval == 2s);
    CHECK(config.max_frame_bytes == 64 * 1024);
    CHECK(config.queue_max_bytes == 4 * 1024 * 1024);
    CHECK(config.queue_max_messages == 4096);
    CHECK(config.image_cap_bytes == 8 * 1024 * 1024);
    CHECK_NOTHROW(validate(config));
  }
  SUBCASE("a file setting one key of a section") {
    const auto config = parse_config("[alerts]\ncancel_window_ms = 10000\n", "config.toml");
    CHECK(config.cancel_window == 10s);
    CHECK(config.escalation_interval == defaults.escalation_interval);
    CHECK(config.listen == defaults.listen);
    CHECK(config.idle_timeout == defaults.idle_timeout);
    CHECK(config.towns.empty());
  }
}

TEST_CASE("an unknown key is refused, naming the key with its section") {
  CHECK(parse_error("listne = \"127.0.0.1:7443\"\n") == "config.toml: unknown key 'listne'");
  CHECK(parse_error("[alerts]\nescalation_intervl = 15000\n") ==
        "config.toml: unknown key 'alerts.escalation_intervl'");
  CHECK(parse_error("[limits]\nmax_frame = 1\n") == "config.toml: unknown key 'limits.max_frame'");
  CHECK(parse_error("[timeouts]\nidle = 1\n") == "config.toml: unknown key 'timeouts.idle'");
  CHECK(parse_error("[metrics]\nport = 9100\n") == "config.toml: unknown key 'metrics'");
}

TEST_CASE("a value of the wrong type is refused, naming the key and the expected type") {
  CHECK(parse_error("threads = \"two\"\n") ==
        "config.toml: key 'threads' must be an integer, not a string");
  CHECK(parse_error("listen = 7443\n") ==
        "config.toml: key 'listen' must be a string, not an integer");
  CHECK(parse_error("db = true\n") == "config.toml: key 'db' must be a string, not a boolean");
  CHECK(parse_error("[alerts]\nescalation_interval_ms = 1.5\n") ==
        "config.toml: key 'alerts.escalation_interval_ms' must be an integer, not a "
        "floating-point number");
  CHECK(parse_error("[timeouts]\nidle_ms = \"35s\"\n") ==
        "config.toml: key 'timeouts.idle_ms' must be an integer, not a string");
  CHECK(parse_error("alerts = 5\n") == "config.toml: key 'alerts' must be a table, not an integer");
  CHECK(parse_error("towns = \"chatham\"\n") ==
        "config.toml: key 'towns' must be an array of strings, not a string");
  CHECK(parse_error("towns = [\"chatham\", 3]\n") ==
        "config.toml: key 'towns' must be an array of strings, but holds an integer");
}

TEST_CASE("a number that does not fit its field is refused, naming the key") {
  CHECK(parse_error("threads = -1\n") == "config.toml: key 'threads' must not be negative");
  CHECK(parse_error("[limits]\nmax_frame_bytes = 5000000000\n") ==
        "config.toml: key 'limits.max_frame_bytes' is too large (at most 4294967295)");
  CHECK(contains(parse_error("[timeouts]\nidle_ms = 9223372036854775807\n"),
                 "config.toml: key 'timeouts.idle_ms' is too large"));
}

TEST_CASE("an explicitly empty town list is refused") {
  CHECK(parse_error("towns = []\n") ==
        "config.toml: key 'towns' must list at least one town (omit it for the default)");
}

TEST_CASE("a TOML syntax error is reported as FILE:LINE:COL: message") {
  const auto error = parse_error("threads = 2\n\nlisten = \n");
  CHECK(error.rfind("config.toml:3:", 0) == 0);
  CHECK(error.size() > std::string("config.toml:3:1: ").size());
}

TEST_CASE("a malformed listen address in the file is refused, naming the file and the key") {
  CHECK(parse_error("listen = \"127.0.0.1\"\n") ==
        "config.toml: key 'listen': '127.0.0.1' has no port (expected HOST:PORT)");
}

TEST_CASE("load_config reads a file, and names it when it is missing or broken") {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("saferlink-config-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto good = dir / "hub.toml";
  const auto bad = dir / "bad.toml";
  std::ofstream(good) << "threads = 3\n[alerts]\nescalation_interval_ms = 7000\n";
  std::ofstream(bad) << "[alerts]\nescalation_intervl = 7000\n";

  const auto config = load_config(good);
  CHECK(config.threads == 3);
  CHECK(config.escalation_interval == 7s);

  CHECK(error_of([&] { load_config(bad); }) ==
        bad.string() + ": unknown key 'alerts.escalation_intervl'");
  const auto missing = dir / "missing.toml";
  CHECK(error_of([&] { load_config(missing); }) ==
        "cannot read config " + missing.string() + ": No such file or directory");
  CHECK(error_of([&] { load_config(dir); }) ==
        "cannot read config " + dir.string() + ": is a directory");

  std::filesystem::remove_all(dir);
}

// --- HOST:PORT ----------------------------------------------------------------------------

TEST_CASE("parse_host_port splits IPv4, names and bracketed IPv6") {
  auto hp = parse_host_port("127.0.0.1:7443", "listen");
  CHECK(hp.host == "127.0.0.1");
  CHECK(hp.port == 7443);
  hp = parse_host_port("localhost:0", "listen");
  CHECK(hp.host == "localhost");
  CHECK(hp.port == 0);
  hp = parse_host_port("[::1]:7443", "listen");
  CHECK(hp.host == "::1");
  CHECK(hp.port == 7443);
  hp = parse_host_port("hub.example:65535", "listen");
  CHECK(hp.port == 65535);
}

TEST_CASE("parse_host_port refuses a malformed address, naming what it was") {
  const auto refusal = [](const std::string& text) {
    return error_of([&] { parse_host_port(text, "--listen"); });
  };
  CHECK(refusal("127.0.0.1") == "--listen: '127.0.0.1' has no port (expected HOST:PORT)");
  CHECK(refusal("127.0.0.1:") == "--listen: '127.0.0.1:' has no port (expected HOST:PORT)");
  CHECK(refusal(":7443") == "--listen: ':7443' has no host (expected HOST:PORT)");
  CHECK(refusal("") == "--listen: '' has no port (expected HOST:PORT)");
  CHECK(refusal("host:65536") == "--listen: 'host:65536' has a port that is not 0..65535");
  CHECK(refusal("host:99999999999999999999") ==
        "--listen: 'host:99999999999999999999' has a port that is not 0..65535");
  CHECK(refusal("host:74x3") == "--listen: 'host:74x3' has a port that is not 0..65535");
  CHECK(refusal("host:-1") == "--listen: 'host:-1' has a port that is not 0..65535");
  CHECK(refusal("host:+80") == "--listen: 'host:+80' has a port that is not 0..65535");
  CHECK(refusal("[::1]") == "--listen: '[::1]' has no port (expected HOST:PORT)");
  CHECK(refusal("[::1]7443") == "--listen: '[::1]7443' needs ':' after ']' (expected [HOST]:PORT)");
  CHECK(refusal("[::1:7443") == "--listen: '[::1:7443' has an unclosed '['");
  CHECK(refusal("[]:7443") == "--listen: '[]:7443' has no host (expected HOST:PORT)");
  CHECK(refusal("::1:7443") ==
        "--listen: '::1:7443' has an IPv6 host without brackets (write it as [::1]:7443)");
  CHECK(refusal("my host:80") ==
        "--listen: 'my host:80' has a space or control character in the host");
}

// --- validate -----------------------------------------------------------------------------

TEST_CASE("the default configuration is valid") { CHECK_NOTHROW(validate(HubConfig{})); }

TEST_CASE("validate refuses an idle timeout that is not longer than the heartbeat interval") {
  HubConfig config;
  config.heartbeat_interval = 10s;
  config.idle_timeout = 10s;
  CHECK(error_of([&] { validate(config); }) ==
        "timeouts.idle_ms (10000) must be greater than timeouts.heartbeat_ms (10000)");
  config.idle_timeout = 5s;
  CHECK(contains(error_of([&] { validate(config); }),
                 "must be greater than timeouts.heartbeat_ms"));
  config.idle_timeout = 10001ms;
  CHECK_NOTHROW(validate(config));
}

TEST_CASE("validate refuses zero or negative durations, naming the key") {
  const auto check = [](auto member, const std::string& key) {
    HubConfig config;
    config.*member = 0ms;
    CHECK(error_of([&] { validate(config); }) == key + " must be greater than 0 (got 0)");
    config.*member = -5ms;
    CHECK(error_of([&] { validate(config); }) == key + " must be greater than 0 (got -5)");
  };
  check(&HubConfig::escalation_interval, "alerts.escalation_interval_ms");
  check(&HubConfig::cancel_window, "alerts.cancel_window_ms");
  check(&HubConfig::handshake_timeout, "timeouts.handshake_ms");
  check(&HubConfig::heartbeat_interval, "timeouts.heartbeat_ms");
  check(&HubConfig::idle_timeout, "timeouts.idle_ms");
  check(&HubConfig::write_timeout, "timeouts.write_ms");
  check(&HubConfig::crl_poll_interval, "timeouts.crl_poll_ms");
}

TEST_CASE("validate keeps the frame cap within 1 KiB to 16 MiB") {
  HubConfig config;
  config.max_frame_bytes = 1023;
  CHECK(error_of([&] { validate(config); }) ==
        "limits.max_frame_bytes must be between 1024 and 16777216 (got 1023)");
  config.max_frame_bytes = 1024;
  CHECK_NOTHROW(validate(config));
  config.max_frame_bytes = 16777216;
  CHECK_NOTHROW(validate(config));
  config.max_frame_bytes = 16777217;
  CHECK(contains(error_of([&] { validate(config); }), "limits.max_frame_bytes must be between"));
}

TEST_CASE("validate keeps the image cap within 1 byte to 64 MiB") {
  HubConfig config;
  config.image_cap_bytes = 0;
  CHECK(error_of([&] { validate(config); }) ==
        "limits.image_cap_bytes must be between 1 and 67108864 (got 0)");
  config.image_cap_bytes = 1;
  CHECK_NOTHROW(validate(config));
  config.image_cap_bytes = 64 * 1024 * 1024;
  CHECK_NOTHROW(validate(config));
  config.image_cap_bytes = 64 * 1024 * 1024 + 1;
  CHECK(contains(error_of([&] { validate(config); }), "limits.image_cap_bytes must be between"));
  CHECK(parse_error("[limits]\nimage_cap_bytes = -1\n") ==
        "config.toml: key 'limits.image_cap_bytes' must not be negative");
}

TEST_CASE("validate refuses empty queues and a thread count outside 1..64") {
  HubConfig config;
  config.queue_max_bytes = 0;
  CHECK(error_of([&] { validate(config); }) == "limits.queue_max_bytes must be greater than 0");
  config = HubConfig{};
  config.queue_max_messages = 0;
  CHECK(error_of([&] { validate(config); }) == "limits.queue_max_messages must be greater than 0");
  config = HubConfig{};
  config.threads = 0;
  CHECK(error_of([&] { validate(config); }) == "threads must be between 1 and 64 (got 0)");
  config.threads = 65;
  CHECK(error_of([&] { validate(config); }) == "threads must be between 1 and 64 (got 65)");
  config.threads = 1;
  CHECK_NOTHROW(validate(config));
  config.threads = 64;
  CHECK_NOTHROW(validate(config));
}

TEST_CASE("validate refuses a malformed listen address and empty paths") {
  HubConfig config;
  config.listen = "localhost";
  CHECK(error_of([&] { validate(config); }) ==
        "listen: 'localhost' has no port (expected HOST:PORT)");
  config = HubConfig{};
  config.db = "";
  CHECK(error_of([&] { validate(config); }) == "db must not be empty");
  config = HubConfig{};
  config.certs = "";
  CHECK(error_of([&] { validate(config); }) == "certs must not be empty");
}

TEST_CASE("validate refuses a duplicate town") {
  HubConfig config;
  config.towns = {"chatham", "strood", "chatham"};
  CHECK(error_of([&] { validate(config); }) == "towns: 'chatham' is listed twice");
}

TEST_CASE("validate accepts well-formed town ids and refuses 'all' and malformed ones") {
  HubConfig config;
  config.towns = {"chatham", "st-marys-island", "zone-9", std::string(32, 'a')};
  CHECK_NOTHROW(validate(config));
  config.towns = {};
  CHECK_NOTHROW(validate(config));  // empty: the default towns

  const auto refusal = [](const std::string& town) {
    HubConfig bad;
    bad.towns = {"chatham", town};
    return error_of([&] { validate(bad); });
  };
  CHECK(refusal("all") == "towns: 'all' is reserved for \"every town\"");
  CHECK(refusal("Chatham") == "towns: 'Chatham' is not a town id (1 to 32 of a-z, 0-9, '-')");
  CHECK(refusal("") == "towns: '' is not a town id (1 to 32 of a-z, 0-9, '-')");
  CHECK(contains(refusal(std::string(33, 'a')), "is not a town id"));
  CHECK(contains(refusal("st marys"), "is not a town id"));
  CHECK(contains(refusal("strood_north"), "is not a town id"));
}

// --- metrics_listen ----------------------------------------------------------------------

TEST_CASE("metrics are off unless metrics_listen is given") {
  CHECK(HubConfig{}.metrics_listen.empty());
  CHECK(parse_config("listen = \"127.0.0.1:7443\"\n", "config.toml").metrics_listen.empty());
  CHECK_NOTHROW(validate(HubConfig{}));
}

TEST_CASE("metrics_listen is read from the config file") {
  const auto config = parse_config("metrics_listen = \"127.0.0.1:9464\"\n", "config.toml");
  CHECK(config.metrics_listen == "127.0.0.1:9464");
  CHECK_NOTHROW(validate(config));
}

TEST_CASE("metrics_listen of the wrong type or without a port is refused naming the key") {
  CHECK(parse_error("metrics_listen = 9464\n") ==
        "config.toml: key 'metrics_listen' must be a string, not an integer");
  CHECK(parse_error("metrics_listen = \"127.0.0.1\"\n") ==
        "config.toml: key 'metrics_listen': '127.0.0.1' has no port (expected HOST:PORT)");
}

TEST_CASE("validate accepts metrics_listen on 127.0.0.0/8 and ::1 and refuses other hosts") {
  HubConfig config;
  for (const char* good : {"127.0.0.1:9464", "127.0.0.1:0", "127.8.9.10:9464", "[::1]:9464"}) {
    CAPTURE(good);
    config.metrics_listen = good;
    CHECK_NOTHROW(validate(config));
  }
  for (const char* bad : {"0.0.0.0:9464", "192.168.1.5:9464", "[::]:9464", "[::2]:9464",
                          "localhost:9464", "128.0.0.1:9464", "[::ffff:127.0.0.1]:9464"}) {
    CAPTURE(bad);
    config.metrics_listen = bad;
    const std::string error = error_of([&] { validate(config); });
    CHECK(contains(error, "metrics_listen: '"));
    CHECK(contains(error, "is not a loopback address"));
  }
  config.metrics_listen = "0.0.0.0:9464";
  CHECK(contains(error_of([&] { validate(config); }), "'0.0.0.0' is not a loopback address"));
  config.metrics_listen = "127.0.0.1";
  CHECK(error_of([&] { validate(config); }) ==
        "metrics_listen: '127.0.0.1' has no port (expected HOST:PORT)");
}

TEST_CASE("is_loopback_address knows 127.0.0.0/8 and ::1 only") {
  CHECK(is_loopback_address("127.0.0.1"));
  CHECK(is_loopback_address("127.255.255.254"));
  CHECK(is_loopback_address("::1"));
  CHECK_FALSE(is_loopback_address("10.0.0.1"));
  CHECK_FALSE(is_loopback_address("::"));
  CHECK_FALSE(is_loopback_address("localhost"));
  CHECK_FALSE(is_loopback_address(""));
  CHECK_FALSE(is_loopback_address("127.0.0.1.5"));
}

}  // namespace
}  // namespace saferlink::server

namespace saferlink::server {

TEST_CASE("retention keys set the form, profile and ended-notice periods") {
  const auto config = parse_config(R"(
[retention]
forms_and_profiles_days = 365
ended_notices_days = 90
)",
                                   "config.toml");
  CHECK(config.retention == std::chrono::days(365));
  CHECK(config.ended_notice_retention == std::chrono::days(90));
  HubConfig zero;
  zero.ended_notice_retention = std::chrono::milliseconds(0);
  CHECK_THROWS_AS(validate(zero), ConfigError);
}

}  // namespace saferlink::server

namespace saferlink::server {

TEST_CASE("notice keys set the validity, the review and the candidate thresholds") {
  const auto config = parse_config(R"(
[notices]
validity_days = 180
review_days = 90
candidate_min_incidents = 4
candidate_min_members = 3
)",
                                   "config.toml");
  CHECK(config.notice_validity == std::chrono::days(180));
  CHECK(config.notice_review_after == std::chrono::days(90));
  CHECK(config.candidate_min_incidents == 4);
  CHECK(config.candidate_min_members == 3);
  CHECK_NOTHROW(validate(config));
  HubConfig late_review;
  late_review.notice_review_after = late_review.notice_validity;
  CHECK_THROWS_AS(validate(late_review), ConfigError);
  CHECK_THROWS_AS(parse_config("[notices]\nvalidty_days = 3\n", "config.toml"), ConfigError);
}

TEST_CASE("the console address and the store-and-forward times to live are read, with their "
          "defaults and checks") {
  const auto defaults = parse_config("", "config.toml");
  CHECK(defaults.console_listen.empty());
  CHECK(defaults.alert_replay_ttl == std::chrono::minutes(30));
  CHECK(defaults.sighting_replay_ttl == std::chrono::hours(2));
  const auto config = parse_config(R"(
console_listen = "127.0.0.1:8443"
[replay]
alert_ttl_ms = 60000
sighting_ttl_ms = 120000
)",
                                   "config.toml");
  CHECK(config.console_listen == "127.0.0.1:8443");
  CHECK(config.alert_replay_ttl == std::chrono::milliseconds(60'000));
  CHECK(config.sighting_replay_ttl == std::chrono::milliseconds(120'000));
  CHECK(parse_error("[replay]\nalert_tll_ms = 5\n") == "config.toml: unknown key 'replay.alert_tll_ms'");
  CHECK(parse_error("console_listen = \"nowhere\"\n").find("console_listen") != std::string::npos);
  auto zero = parse_config("[replay]\nalert_ttl_ms = 0\n", "config.toml");
  CHECK(error_of([&] { validate(zero); }).find("replay.alert_ttl_ms") != std::string::npos);
}

}  // namespace saferlink::server
