// Store-and-forward (issue 4, item 4): every relayed panic, cancel and sighting carries the
// receiving device's sequence number; a device that comes back names the last one it processed
// and the hub replays, in order and once, what it missed and what has not outlived its time to
// live. Real hub, real TLS on loopback port 0.
#include "tests/support/device.hpp"
#include "tests/support/hub_fixture.hpp"
#include "tests/support/pki.hpp"

#include <doctest/doctest.h>

#include <algorithm>

#include <thread>

using namespace saferlink;
using namespace saferlink::test;

namespace {

struct Chatham {
  explicit Chatham(const std::function<void(server::HubConfig&)>& tweak = {}) {
    pki.issue(Role::shop, "chatham", "shop-chatham-1", "Boots Chatham");
    pki.issue(Role::shop, "chatham", "shop-chatham-2", "WHSmith Chatham");
    pki.issue(Role::police, "chatham", "police-chatham", "Kent Police");
    hub = std::make_unique<HubFixture>(pki, tweak);
  }
  // A handset that asks for what it missed since `cursor`.
  std::unique_ptr<TestDevice> handset(const std::string& id, client::Cursors cursor) {
    auto d = std::make_unique<TestDevice>(pki.dir(), id, hub->address(),
                                          [cursor](client::ClientOptions& o) {
                                            o.resume = true;
                                            o.resume_cursor = cursor;
                                          });
    d->connect();
    return d;
  }
  std::unique_ptr<TestDevice> plain(const std::string& id) {
    auto d = std::make_unique<TestDevice>(pki.dir(), id, hub->address());
    d->connect();
    return d;
  }
  void wait_sessions(std::uint64_t n) {
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (hub->hub->stats().sessions_live != n && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(5ms);
    }
    REQUIRE(hub->hub->stats().sessions_live == n);
  }
  TestPki pki;
  std::unique_ptr<HubFixture> hub;
};

void panic_accepted(TestDevice& shop, std::uint64_t seq) {
  shop.panic(seq);
  const std::string id = shop.id() + ":" + std::to_string(seq);
  REQUIRE(shop.wait_for([&](const v1::Envelope& e) {
    return e.has_accepted() && e.accepted().alert_id() == id;
  }));
}

void sighting_accepted(TestDevice& shop, std::uint64_t seq) {
  v1::Envelope e;
  auto* s = e.mutable_sighting();
  s->set_sighting_id(shop.id() + ":" + std::to_string(seq));
  s->set_device_seq(seq);
  s->set_text("grey hoodie, filling a bag");
  shop.send(e);
  const std::string id = s->sighting_id();
  REQUIRE(shop.wait_for([&](const v1::Envelope& x) {
    return x.has_sighting_accepted() && x.sighting_accepted().sighting_id() == id;
  }));
}

// What a relayed message is about: "panic <id>", "sighting <id>", "cancel <id>".
std::string what(const v1::Envelope& e) {
  if (e.has_panic()) return "panic " + e.panic().alert_id();
  if (e.has_sighting()) return "sighting " + e.sighting().sighting_id();
  if (e.has_cancel()) return "cancel " + e.cancel().alert_id();
  return "other";
}

std::vector<v1::Envelope> relayed(TestDevice& d, std::size_t n) {
  std::vector<v1::Envelope> out;
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (out.size() < n && std::chrono::steady_clock::now() < until) {
    auto e = d.next(200ms);
    if (e && (e->has_panic() || e->has_sighting() || e->has_cancel())) out.push_back(*e);
  }
  return out;
}

}  // namespace

TEST_CASE("a handset off air while 3 alerts and 2 sightings are sent gets all 5 on reconnect, "
          "in order and exactly once") {
  Chatham town;
  auto shop = town.plain("shop-chatham-1");
  {
    auto handset = town.handset("shop-chatham-2", {});  // the hub now knows the handset
    town.wait_sessions(2);
  }
  town.wait_sessions(1);

  panic_accepted(*shop, 1);
  sighting_accepted(*shop, 2);
  panic_accepted(*shop, 3);
  sighting_accepted(*shop, 4);
  panic_accepted(*shop, 5);

  // Alerts overtake sightings on the way, so the replay arrives as the three alerts in order,
  // then the two sightings in order; sequence numbers grow within each lane and, over both,
  // follow the order the messages were sent in.
  const std::vector<std::string> alerts = {"panic shop-chatham-1:1", "panic shop-chatham-1:3",
                                           "panic shop-chatham-1:5"};
  const std::vector<std::string> sightings = {"sighting shop-chatham-1:2",
                                              "sighting shop-chatham-1:4"};
  auto split = [](const std::vector<v1::Envelope>& got) {
    std::vector<v1::Envelope> a, o;
    for (const auto& e : got) (e.has_panic() || e.has_cancel() ? a : o).push_back(e);
    return std::pair{a, o};
  };
  client::Cursors after_first_two;
  {
    auto handset = town.handset("shop-chatham-2", {});
    const auto got = relayed(*handset, 5);
    REQUIRE(got.size() == 5);
    const auto [a, o] = split(got);
    REQUIRE(a.size() == 3);
    REQUIRE(o.size() == 2);
    for (std::size_t i = 0; i < 3; ++i) CHECK(what(a[i]) == alerts[i]);
    for (std::size_t i = 0; i < 2; ++i) CHECK(what(o[i]) == sightings[i]);
    CHECK(a[0].seq() < o[0].seq());
    CHECK(o[0].seq() < a[1].seq());
    CHECK(a[1].seq() < o[1].seq());
    CHECK(o[1].seq() < a[2].seq());
    // Only the receipts of its three `delivered` follow (collected for up to 5 s: a loaded
    // machine, or a sanitizer build, may take longer than one short window).
    std::vector<v1::Envelope> after;
    for (int i = 0; i < 50 && after.size() < 3; ++i) {
      for (auto& e : handset->drain(100ms)) after.push_back(std::move(e));
    }
    for (auto& e : handset->drain(300ms)) after.push_back(std::move(e));
    CHECK(after.size() == 3);
    CHECK(std::all_of(after.begin(), after.end(),
                      [](const v1::Envelope& e) { return e.has_receipt(); }));
    CHECK(handset->duplicates() == 0);
    CHECK(town.hub->hub->stats().replayed == 5);
    // The replayed panics were answered `delivered`: the sender hears about each.
    for (const std::uint64_t seq : {1, 3, 5}) {
      CHECK(shop->wait_for(is_update("shop-chatham-1:" + std::to_string(seq), v1::DELIVERED)));
    }
    // As if it had processed only the first alert and the first sighting when its power went.
    after_first_two = {a[0].seq(), o[0].seq()};
  }
  town.wait_sessions(1);

  // It gets the rest again, and nothing else.
  client::Cursors last;
  {
    auto handset = town.handset("shop-chatham-2", after_first_two);
    const auto got = relayed(*handset, 3);
    REQUIRE(got.size() == 3);
    const auto [a, o] = split(got);
    REQUIRE(a.size() == 2);
    REQUIRE(o.size() == 1);
    CHECK(what(a[0]) == alerts[1]);
    CHECK(what(a[1]) == alerts[2]);
    CHECK(what(o[0]) == sightings[1]);
    CHECK(relayed(*handset, 1).empty());
    last = handset->cursor();
    CHECK(last.alert == a[1].seq());
    CHECK(last.other == o[0].seq());
  }
  town.wait_sessions(1);

  // Once it has said it processed everything, nothing is replayed.
  auto handset = town.handset("shop-chatham-2", last);
  CHECK(relayed(*handset, 1).empty());
}

TEST_CASE("a handset that stays away past the alert time to live gets the sighting but not the "
          "stale alert") {
  Chatham town([](server::HubConfig& c) {
    c.alert_replay_ttl = 1500ms;
    c.sighting_replay_ttl = 60s;
  });
  auto shop = town.plain("shop-chatham-1");
  { auto handset = town.handset("shop-chatham-2", {}); }
  town.wait_sessions(1);

  panic_accepted(*shop, 1);
  sighting_accepted(*shop, 2);
  std::this_thread::sleep_for(2s);  // past the alert's 1.5 s, well within the sighting's 60 s

  auto handset = town.handset("shop-chatham-2", {});
  const auto got = relayed(*handset, 2);
  REQUIRE(got.size() == 1);
  CHECK(what(got[0]) == "sighting shop-chatham-1:2");
}

TEST_CASE("live messages carry growing sequence numbers, a cancel follows its alert to a handset "
          "that was away, and a device that does not ask for a replay gets none") {
  Chatham town;
  auto shop = town.plain("shop-chatham-1");
  client::Cursors last;
  {
    auto handset = town.handset("shop-chatham-2", {});
    town.wait_sessions(2);
    panic_accepted(*shop, 1);
    const auto live = relayed(*handset, 1);
    REQUIRE(live.size() == 1);
    CHECK(live[0].seq() > 0);
    last = handset->cursor();
    CHECK(last.alert == live[0].seq());
  }
  town.wait_sessions(1);
  panic_accepted(*shop, 2);
  shop->cancel("shop-chatham-1:2");
  REQUIRE(shop->wait_for([](const v1::Envelope& e) { return e.has_receipt(); }));

  {
    // Without "resume" (a one-shot command): nothing is replayed.
    auto once = town.plain("shop-chatham-2");
    CHECK(relayed(*once, 1).empty());
  }
  town.wait_sessions(1);
  auto handset = town.handset("shop-chatham-2", last);
  const auto got = relayed(*handset, 2);
  REQUIRE(got.size() == 2);
  CHECK(what(got[0]) == "panic shop-chatham-1:2");
  CHECK(what(got[1]) == "cancel shop-chatham-1:2");
  CHECK(got[0].seq() > last.alert);
  CHECK(got[1].seq() > got[0].seq());
}

TEST_CASE("sequence numbers keep growing across a hub restart, so a handset's cursor never "
          "hides a new message") {
  TestPki pki;
  pki.issue(Role::shop, "chatham", "shop-chatham-1", "Boots Chatham");
  pki.issue(Role::shop, "chatham", "shop-chatham-2", "WHSmith Chatham");
  TempDir data;
  client::Cursors cursor;
  for (int run = 0; run < 2; ++run) {
    HubFixture hub(pki, [&](server::HubConfig& c) { c.db = data.path / "hub.db"; });
    auto handset = std::make_unique<TestDevice>(pki.dir(), "shop-chatham-2", hub.address(),
                                                [cursor](client::ClientOptions& o) {
                                                  o.resume = true;
                                                  o.resume_cursor = cursor;
                                                });
    handset->connect();
    auto shop = std::make_unique<TestDevice>(pki.dir(), "shop-chatham-1", hub.address());
    shop->connect();
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (hub.hub->stats().sessions_live < 2 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(5ms);
    }
    panic_accepted(*shop, static_cast<std::uint64_t>(run + 1));
    const auto got = relayed(*handset, 1);
    REQUIRE(got.size() == 1);
    CHECK(got[0].seq() > cursor.alert);
    cursor = handset->cursor();
  }
}

TEST_CASE("the receiver's sequence filter drops a duplicate in either lane and counts it") {
  auto panic = [](std::uint64_t seq) {
    v1::Envelope e;
    e.set_seq(seq);
    e.mutable_panic()->set_alert_id("a");
    return e;
  };
  auto sighting = [](std::uint64_t seq) {
    v1::Envelope e;
    e.set_seq(seq);
    e.mutable_sighting()->set_sighting_id("s");
    return e;
  };
  client::SequenceFilter filter({10, 4});
  CHECK_FALSE(filter.accept(panic(10)));
  CHECK_FALSE(filter.accept(panic(3)));
  CHECK(filter.accept(panic(12)));
  CHECK(filter.accept(sighting(11)));  // overtaken by the alert on the way: not a duplicate
  CHECK_FALSE(filter.accept(sighting(11)));
  CHECK_FALSE(filter.accept(sighting(4)));
  CHECK(filter.accept(panic(0)));  // not sequenced: never a duplicate
  CHECK(filter.accept(panic(0)));
  CHECK(filter.cursors() == client::Cursors{12, 11});
  CHECK(filter.duplicates() == 4);
}
