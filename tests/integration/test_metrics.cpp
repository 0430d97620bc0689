// The hub's /metrics endpoint: plain HTTP on a loopback port 0, scraped with a raw socket, so
// that the test sees exactly the bytes a Prometheus scraper would.
#include "tests/support/device.hpp"
#include "tests/support/hub_fixture.hpp"
#include "tests/support/pki.hpp"

#include "core/envelope.hpp"
#include "core/frame.hpp"
#include "core/metrics.hpp"
#include "core/tls.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <doctest/doctest.h>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace saferlink;
using namespace saferlink::test;

namespace {

namespace asio = boost::asio;

struct HttpAnswer {
  std::string raw;  // everything the hub wrote before closing
  int status = 0;   // 0: closed without an answer
  std::string head;
  std::string body;
};

// Sends `request` as is, reads until the hub closes, splits the answer.
HttpAnswer http_exchange(std::uint16_t port, const std::string& request) {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  asio::write(socket, asio::buffer(request));
  HttpAnswer answer;
  boost::system::error_code ec;
  asio::read(socket, asio::dynamic_buffer(answer.raw), ec);  // until EOF (or a reset)
  const auto end_of_head = answer.raw.find("\r\n\r\n");
  if (answer.raw.rfind("HTTP/1.1 ", 0) == 0 && end_of_head != std::string::npos) {
    answer.status = std::stoi(answer.raw.substr(9, 3));
    answer.head = answer.raw.substr(0, end_of_head);
    answer.body = answer.raw.substr(end_of_head + 4);
  }
  return answer;
}

HttpAnswer get(std::uint16_t port, const std::string& target) {
  return http_exchange(port, "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The value on the sample line of `name` in an exposition text; nullopt when absent.
std::optional<std::uint64_t> value_of(const std::string& text, const std::string& name) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stoull(line.substr(name.size() + 1));
  }
  return std::nullopt;
}

const std::vector<std::string> kCounters = {
    "saferlink_sessions_dropped_total",
    "saferlink_handshake_failures_total",
    "saferlink_alerts_accepted_total",
    "saferlink_alerts_duplicate_total",
    "saferlink_escalations_total",
    "saferlink_sightings_accepted_total",
    "saferlink_replayed_total",
    "saferlink_gallery_entries_sent_total",
    "saferlink_gallery_removals_sent_total",
    "saferlink_photo_bytes_sent_total",
    "saferlink_forms_stored_total",
    "saferlink_queries_total",
    "saferlink_refusals_total",
    "saferlink_slow_consumer_disconnects_total",
    "saferlink_write_stall_disconnects_total",
    "saferlink_idle_disconnects_total",
    "saferlink_frames_sent_total",
    "saferlink_frames_received_total",
    "saferlink_malformed_frames_total",
    "saferlink_oversize_frames_total",
};
const std::vector<std::string> kGauges = {
    "saferlink_sessions_live",
    "saferlink_handshakes_in_flight",
    "saferlink_queue_messages",
    "saferlink_queue_messages_max",
};

struct MetricsTown {
  explicit MetricsTown(const std::function<void(server::HubConfig&)>& tweak = {}) {
    pki.issue(Role::shop, "chatham", "shop-chatham-1", "Boots Chatham");
    pki.issue(Role::cctv, "all", "cctv-01", "Medway CCTV");
    hub = std::make_unique<HubFixture>(pki, [&](server::HubConfig& config) {
      config.metrics_listen = "127.0.0.1:0";
      if (tweak) tweak(config);
    });
  }

  std::unique_ptr<TestDevice> device(const std::string& id) {
    auto d = std::make_unique<TestDevice>(pki.dir(), id, hub->address());
    d->connect();
    return d;
  }

  std::uint16_t port() const { return hub->hub->metrics_port(); }

  std::string scrape() {
    const HttpAnswer answer = get(port(), "/metrics");
    REQUIRE(answer.status == 200);
    return answer.body;
  }

  // Scrapes until `name` reads `value` (the hub's counters move on its strand) or 5 s pass.
  std::uint64_t wait_value(const std::string& name, std::uint64_t value) {
    const auto until = std::chrono::steady_clock::now() + 5s;
    std::optional<std::uint64_t> seen;
    for (;;) {
      seen = value_of(scrape(), name);
      REQUIRE(seen);
      if (*seen == value || std::chrono::steady_clock::now() > until) return *seen;
      std::this_thread::sleep_for(10ms);
    }
  }

  TestPki pki;
  std::unique_ptr<HubFixture> hub;
};

}  // namespace

TEST_CASE("GET /metrics answers 200 in Prometheus text format with HELP and TYPE for every "
          "metric") {
  MetricsTown town;
  REQUIRE(town.port() != 0);
  CHECK(town.port() != town.hub->hub->port());
  const HttpAnswer answer = get(town.port(), "/metrics");
  REQUIRE(answer.status == 200);
  CHECK(contains(answer.head, "\r\nContent-Type: text/plain; version=0.0.4"));
  CHECK(contains(answer.head, "\r\nConnection: close"));
  for (const auto& name : kCounters) {
    CAPTURE(name);
    CHECK(contains(answer.body, "# HELP " + name + " "));
    CHECK(contains(answer.body, "# TYPE " + name + " counter\n"));
    CHECK(value_of(answer.body, name).has_value());
  }
  for (const auto& name : kGauges) {
    CAPTURE(name);
    CHECK(contains(answer.body, "# HELP " + name + " "));
    CHECK(contains(answer.body, "# TYPE " + name + " gauge\n"));
    CHECK(value_of(answer.body, name).has_value());
  }
  // Every sample line belongs to a listed metric: nothing unlisted, nothing unprefixed.
  std::istringstream lines(answer.body);
  std::size_t samples = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    ++samples;
    CHECK(line.rfind("saferlink_", 0) == 0);
  }
  CHECK(samples == kCounters.size() + kGauges.size());
}

TEST_CASE("the metrics count a shop's panic and the live sessions") {
  MetricsTown town;
  CHECK(value_of(town.scrape(), "saferlink_alerts_accepted_total") == 0u);
  auto shop = town.device("shop-chatham-1");
  auto cctv = town.device("cctv-01");
  CHECK(town.wait_value("saferlink_sessions_live", 2) == 2);

  shop->panic(1);
  REQUIRE(shop->wait_for([](const v1::Envelope& e) {
    return e.has_accepted() && e.accepted().alert_id() == "shop-chatham-1:1";
  }));
  REQUIRE(cctv->wait_for(is_panic("shop-chatham-1:1")));
  const std::string text = town.scrape();
  CHECK(value_of(text, "saferlink_alerts_accepted_total") == 1u);
  CHECK(value_of(text, "saferlink_alerts_duplicate_total") == 0u);
  CHECK(value_of(text, "saferlink_frames_received_total") >= 1u);
  CHECK(value_of(text, "saferlink_frames_sent_total") >= 2u);

  shop.reset();
  CHECK(town.wait_value("saferlink_sessions_live", 1) == 1);
}

TEST_CASE("the metrics endpoint answers 404 for another path and 405 for another method") {
  MetricsTown town;
  const HttpAnswer other = get(town.port(), "/other");
  CHECK(other.status == 404);
  CHECK_FALSE(contains(other.body, "saferlink_"));
  CHECK(get(town.port(), "/").status == 404);
  CHECK(get(town.port(), "/metrics/x").status == 404);

  const HttpAnswer post =
      http_exchange(town.port(),
                    "POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
  CHECK(post.status == 405);
  CHECK(contains(post.head, "\r\nAllow: GET"));
}

TEST_CASE("a malformed or oversized request gets 400 or a close, and the hub still serves "
          "devices") {
  MetricsTown town;
  const HttpAnswer garbage = http_exchange(town.port(), "NOT HTTP AT ALL\r\n\r\n");
  CHECK(garbage.status == 400);
  CHECK_FALSE(contains(garbage.raw, "saferlink_"));

  const HttpAnswer binary =
      http_exchange(town.port(), std::string("\x16\x03\x01\x00\xff\x01\r\n\r\n", 10));
  CHECK((binary.status == 400 || binary.raw.empty()));

  const std::string huge_header(16 * 1024, 'a');
  const HttpAnswer oversized =
      http_exchange(town.port(), "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " +
                                     huge_header + "\r\n\r\n");
  CHECK((oversized.status == 400 || oversized.raw.empty()));
  CHECK_FALSE(contains(oversized.raw, "saferlink_"));

  const HttpAnswer with_body = http_exchange(
      town.port(), "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(with_body.status == 400);

  // Devices are unaffected and the endpoint still answers.
  auto shop = town.device("shop-chatham-1");
  auto cctv = town.device("cctv-01");
  shop->panic(3);
  REQUIRE(cctv->wait_for(is_panic("shop-chatham-1:3")));
  CHECK(value_of(town.scrape(), "saferlink_alerts_accepted_total") == 1u);
}

TEST_CASE("the hub has no metrics port unless metrics_listen is set") {
  TestPki pki;
  HubFixture hub(pki);
  CHECK(hub.hub->metrics_port() == 0);
}

TEST_CASE("a hub told to serve metrics on a non-loopback address refuses to start") {
  TestPki pki;
  std::string error;
  try {
    HubFixture hub(pki, [](server::HubConfig& config) { config.metrics_listen = "0.0.0.0:0"; });
  } catch (const server::ConfigError& e) {
    error = e.what();
  }
  CHECK(contains(error, "metrics_listen: '0.0.0.0' is not a loopback address"));
}

TEST_CASE("a device that floods the hub with empty frames and reads nothing overflows its queue, "
          "is disconnected as a slow consumer and is counted") {
  // Every empty frame is answered with Error(MALFORMED). The hub decodes a whole read's worth
  // of frames before its writer runs, so 1000 of them in one write queue far more answers than
  // the 16 allowed here, whatever the socket buffers could absorb.
  MetricsTown town([](server::HubConfig& config) { config.queue_max_messages = 16; });
  const std::uint64_t slow_before = net_counters().slow_consumer_disconnects.load();
  const std::uint64_t malformed_before = net_counters().malformed_frames.load();
  CHECK(value_of(town.scrape(), "saferlink_sessions_dropped_total") == 0u);

  asio::io_context io;
  auto context = make_client_context(tls_files(town.pki.dir(), "shop-chatham-1"));
  asio::ssl::stream<asio::ip::tcp::socket> stream(io, *context);
  stream.set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
  stream.lowest_layer().connect({asio::ip::make_address("127.0.0.1"), town.hub->hub->port()});
  stream.handshake(asio::ssl::stream_base::client);
  v1::Envelope hello;
  hello.set_msg_id(1);
  hello.mutable_hello()->set_protocol_version(kProtocolVersion);
  std::string bytes = *encode(hello);
  for (int i = 0; i < 1000; ++i) bytes += frame_bytes("");
  asio::write(stream, asio::buffer(bytes));
  // From here on the device reads nothing.

  CHECK(town.wait_value("saferlink_sessions_dropped_total", 1) == 1);
  CHECK(net_counters().slow_consumer_disconnects.load() >= slow_before + 1);
  CHECK(net_counters().malformed_frames.load() >= malformed_before + 17);
  const std::string text = town.scrape();
  CHECK(value_of(text, "saferlink_slow_consumer_disconnects_total") >= slow_before + 1);
  CHECK(value_of(text, "saferlink_malformed_frames_total") >= malformed_before + 17);
  CHECK(town.wait_value("saferlink_sessions_live", 0) == 0);
  CHECK(value_of(town.scrape(), "saferlink_queue_messages") == 0u);

  // The hub still serves devices.
  auto shop = town.device("shop-chatham-1");
  auto cctv = town.device("cctv-01");
  shop->panic(1);
  CHECK(cctv->wait_for(is_panic("shop-chatham-1:1")));
}
