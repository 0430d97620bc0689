// A device that stops reading while others receive alerts (issue 4, "Slow and dead peers"): the
// others get every alert, exactly once and in order, and the stalled device is disconnected by
// the write deadline or the queue bound, and counted.
#include "tests/support/device.hpp"
#include "tests/support/hub_fixture.hpp"
#include "tests/support/pki.hpp"

#include "core/envelope.hpp"
#include "core/frame.hpp"
#include "core/metrics.hpp"
#include "core/tls.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace saferlink;
using namespace saferlink::test;

namespace {

namespace asio = boost::asio;

constexpr std::uint64_t kPanics = 300;
constexpr std::uint64_t kWindow = 25;  // panics sent before waiting for their acceptance

// A device that completes the TLS handshake with a small receive buffer, says hello and then
// never reads: the hub's writes to it back up in the socket buffers until they stall.
struct StalledPeer {
  StalledPeer(const TestPki& pki, const std::string& id, std::uint16_t port)
      : context(make_client_context(tls_files(pki.dir(), id))), stream(io, *context) {
    stream.set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
    auto& socket = stream.lowest_layer();
    socket.open(asio::ip::tcp::v4());
    // Before connect, so that the window the client advertises is small from the start, and
    // a small segment size: on loopback the hub's send buffer is sized from the peer's segment
    // size (up to tcp_wmem's 4 MiB for 64 KiB segments), and it must fill for writes to stall.
    socket.set_option(asio::socket_base::receive_buffer_size(4096));
    const int mss = 256;
    REQUIRE(::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss) == 0);
    socket.connect({asio::ip::make_address("127.0.0.1"), port});
    stream.handshake(asio::ssl::stream_base::client);
    v1::Envelope hello;
    hello.set_msg_id(1);
    hello.mutable_hello()->set_protocol_version(kProtocolVersion);
    asio::write(stream, asio::buffer(*encode(hello)));
    // From here on nothing is read.
  }

  asio::io_context io;
  std::shared_ptr<asio::ssl::context> context;
  asio::ssl::stream<asio::ip::tcp::socket> stream;
};

// A panic with a long note, so that every copy queued for the stalled device is sizeable.
v1::Envelope big_panic(const std::string& device_id, std::uint64_t seq) {
  v1::Envelope e;
  auto* p = e.mutable_panic();
  p->set_alert_id(device_id + ":" + std::to_string(seq));
  p->set_device_seq(seq);
  p->set_pressed_at_ms(1);
  p->set_note(std::string(400, 'n'));
  p->set_status(v1::ACTUAL);
  p->set_severity(v1::SEVERE);
  return e;
}

std::string alert_id(std::uint64_t seq) { return "shop-chatham-1:" + std::to_string(seq); }

// Reads panics from `device` until all `kPanics` distinct ones have come or nothing more comes
// within 5 s; then a short quiet window catches any repeat. Returns the alert ids in arrival order.
std::vector<std::string> collect_panics(TestDevice& device) {
  std::vector<std::string> order;
  std::map<std::string, int> distinct;
  auto take = [&](const v1::Envelope& e) {
    if (!e.has_panic()) return;
    order.push_back(e.panic().alert_id());
    ++distinct[e.panic().alert_id()];
  };
  for (const auto& e : device.drain(0ms)) take(e);
  while (distinct.size() < kPanics) {
    auto e = device.next(5s);
    if (!e) break;
    take(*e);
  }
  for (const auto& e : device.drain(200ms)) take(e);
  return order;
}

}  // namespace

TEST_CASE("a device that stops reading while a shop sends 300 panics delays nobody and is "
          "disconnected and counted") {
  TestPki pki;
  pki.issue(Role::shop, "chatham", "shop-chatham-1", "Boots Chatham");
  pki.issue(Role::cctv, "all", "cctv-01", "Medway CCTV");
  pki.issue(Role::cctv, "all", "cctv-stalled", "Medway CCTV");
  pki.issue(Role::police, "chatham", "police-chatham", "Kent Police");
  HubFixture hub(pki, [](server::HubConfig& config) {
    config.write_timeout = 500ms;
    config.queue_max_messages = 128;
    config.queue_max_bytes = 128 * 1024;
    // No escalation re-sends within the test: each panic goes out exactly once.
    config.escalation_interval = std::chrono::minutes(10);
  });

  auto wait_sessions = [&](std::uint64_t n) {
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (hub.hub->stats().sessions_live != n && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(5ms);
    }
    return hub.hub->stats().sessions_live;
  };

  auto shop = std::make_unique<TestDevice>(pki.dir(), "shop-chatham-1", hub.address());
  auto cctv = std::make_unique<TestDevice>(pki.dir(), "cctv-01", hub.address());
  auto police = std::make_unique<TestDevice>(pki.dir(), "police-chatham", hub.address());
  shop->connect();
  cctv->connect();
  police->connect();
  REQUIRE(wait_sessions(3) == 3);

  const std::uint64_t write_stalls_before = net_counters().write_stall_disconnects.load();
  const std::uint64_t slow_before = net_counters().slow_consumer_disconnects.load();
  StalledPeer stalled(pki, "cctv-stalled", hub.hub->port());
  REQUIRE(wait_sessions(4) == 4);

  // The hub's memory for the stalled device stays bounded: its queue never holds more than the
  // configured bounds (alerts may reach twice them before the peer is cut off).
  std::uint64_t deepest = 0;
  auto sample_queues = [&] {
    asio::io_context local;
    auto depths = asio::co_spawn(local, hub.hub->queue_depths(), asio::use_future);
    local.run();
    deepest = std::max(deepest, depths.get().max_messages);
  };

  // Every panic is accepted, window by window: the hub never waits on the stalled device.
  std::map<std::string, int> accepted;
  for (std::uint64_t first = 1; first <= kPanics; first += kWindow) {
    const std::uint64_t last = std::min(kPanics, first + kWindow - 1);
    for (std::uint64_t seq = first; seq <= last; ++seq) {
      shop->send(big_panic("shop-chatham-1", seq));
    }
    for (std::uint64_t seq = first; seq <= last; ++seq) {
      CAPTURE(seq);
      auto e = shop->wait_for([id = alert_id(seq)](const v1::Envelope& x) {
        return x.has_accepted() && x.accepted().alert_id() == id;
      });
      REQUIRE(e);
      CHECK_FALSE(e->accepted().duplicate());
      ++accepted[e->accepted().alert_id()];
    }
    sample_queues();
  }
  MESSAGE("deepest queue seen: " << deepest << " messages");
  CHECK(deepest <= 2 * 128);
  CHECK(accepted.size() == kPanics);
  CHECK(hub.hub->stats().alerts_accepted == kPanics);

  // The healthy devices get all of them, each exactly once, in the order they were sent.
  std::vector<std::string> expected;
  for (std::uint64_t seq = 1; seq <= kPanics; ++seq) expected.push_back(alert_id(seq));
  for (auto* device : {cctv.get(), police.get()}) {
    CAPTURE(device->id());
    const std::vector<std::string> got = collect_panics(*device);
    CHECK(got.size() == kPanics);
    CHECK(got == expected);
  }

  // The stalled device is disconnected (write deadline or queue bound) and counted; the three
  // healthy sessions remain.
  CHECK(wait_sessions(3) == 3);
  const std::uint64_t write_stalls = net_counters().write_stall_disconnects.load() -
                                     write_stalls_before;
  const std::uint64_t slow = net_counters().slow_consumer_disconnects.load() - slow_before;
  MESSAGE("stalled peer ended by: write_stall_disconnects +" << write_stalls
                                                              << ", slow_consumer_disconnects +"
                                                              << slow);
  CHECK(write_stalls + slow == 1);

  // The healthy devices are still served.
  shop->send(big_panic("shop-chatham-1", kPanics + 1));
  CHECK(cctv->wait_for(is_panic(alert_id(kPanics + 1))));
  CHECK(police->wait_for(is_panic(alert_id(kPanics + 1))));
}
