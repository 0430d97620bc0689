// A reconnect storm: the hub runs at most limits.max_handshakes TLS handshakes at once and
// lets the rest wait in the listen backlog, so that handshakes finish instead of all passing
// their deadline together. Real hub, loopback port 0.
#include "tests/support/device.hpp"
#include "tests/support/hub_fixture.hpp"
#include "tests/support/pki.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <doctest/doctest.h>

#include <thread>
#include <vector>

using namespace saferlink;
using namespace saferlink::test;

TEST_CASE("at most max_handshakes TLS handshakes run at once: silent connections wait in the "
          "backlog and a real device still gets on once their deadline frees the slots") {
  TestPki pki;
  pki.issue(Role::shop, "chatham", "shop-chatham-1", "Boots Chatham");
  HubFixture hub(pki, [](server::HubConfig& c) {
    c.max_handshakes = 2;
    c.handshake_timeout = 1s;
  });
  boost::asio::io_context io;
  std::vector<boost::asio::ip::tcp::socket> silent;
  for (int i = 0; i < 5; ++i) {
    silent.emplace_back(io);
    silent.back().connect({boost::asio::ip::make_address("127.0.0.1"), hub.hub->port()});
  }
  std::uint64_t in_flight = 0;
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (in_flight < 2 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(10ms);
    in_flight = hub.hub->stats().handshakes_in_flight;
  }
  CHECK(in_flight == 2);
  std::this_thread::sleep_for(200ms);
  CHECK(hub.hub->stats().handshakes_in_flight <= 2);  // the other three wait in the backlog
  // Each silent connection in turn passes its deadline; then the device's handshake runs.
  TestDevice shop(pki.dir(), "shop-chatham-1", hub.address());
  CHECK_NOTHROW(shop.connect());
  // The four ahead of it in the backlog have passed their deadline (the fifth shared the last
  // round with the device).
  CHECK(hub.hub->stats().handshake_failures >= 4);
}
