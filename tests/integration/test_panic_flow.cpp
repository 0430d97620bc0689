// Panic alerts end to end: real hub, real TLS on loopback port 0, certificates made here.
#include "tests/support/device.hpp"
#include "tests/support/hub_fixture.hpp"
#include "tests/support/pki.hpp"

#include "server/alert_store.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

using namespace saferlink;
using namespace saferlink::test;

namespace {

// A small town: two Chatham shops, one Strood shop, CCTV, police in Chatham, Strood and all
// towns, and a coordinator.
struct Town {
  explicit Town(const std::function<void(server::HubConfig&)>& tweak = {}) {
    pki.issue(Role::shop, "chatham", "shop-chatham-1", "Boots Chatham");
    pki.issue(Role::shop, "chatham", "shop-chatham-2", "WHSmith Chatham");
    pki.issue(Role::shop, "strood", "shop-strood-1", "Co-op Strood");
    pki.issue(Role::cctv, "all", "cctv-01", "Medway CCTV");
    pki.issue(Role::police, "chatham", "police-chatham", "Kent Police");
    pki.issue(Role::police, "strood", "police-strood", "Kent Police");
    pki.issue(Role::police, "all", "police-all", "Kent Police");
    pki.issue(Role::coordinator, "all", "coord-1", "Safer Medway");
    hub = std::make_unique<HubFixture>(pki, tweak);
  }

  std::unique_ptr<TestDevice> device(const std::string& id, bool auto_delivered = true) {
    auto d = std::make_unique<TestDevice>(pki.dir(), id, hub->address(), auto_delivered);
    d->connect();
    return d;
  }

  // Waits until the hub has attached `n` sessions (attach is posted to the hub strand).
  void wait_sessions(std::uint64_t n) {
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (hub->hub->stats().sessions_live < n && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(5ms);
    }
    REQUIRE(hub->hub->stats().sessions_live >= n);
  }

  TestPki pki;
  std::unique_ptr<HubFixture> hub;
};

bool got_accepted(TestDevice& d, const std::string& alert_id, bool* duplicate = nullptr) {
  auto e = d.wait_for([&](const v1::Envelope& x) {
    return x.has_accepted() && x.accepted().alert_id() == alert_id;
  });
  if (e && duplicate) *duplicate = e->accepted().duplicate();
  return e.has_value();
}

}  // namespace

TEST_CASE("a Chatham shop's panic reaches CCTV, Chatham and all-town police and the other Chatham "
          "shop, but not Strood") {
  Town town;
  auto sender = town.device("shop-chatham-1");
  auto neighbour = town.device("shop-chatham-2");
  auto strood_shop = town.device("shop-strood-1");
  auto cctv = town.device("cctv-01");
  auto police = town.device("police-chatham");
  auto police_strood = town.device("police-strood");
  auto police_all = town.device("police-all");
  auto coordinator = town.device("coord-1");
  town.wait_sessions(8);

  sender->panic(1);
  const std::string id = "shop-chatham-1:1";
  REQUIRE(got_accepted(*sender, id));

  for (auto* d : {neighbour.get(), cctv.get(), police.get(), police_all.get()}) {
    CAPTURE(d->id());
    auto e = d->wait_for(is_panic(id));
    REQUIRE(e);
    CHECK(e->panic().origin_id() == "shop-chatham-1");
    CHECK(e->panic().origin_town() == "chatham");
    CHECK(e->panic().origin_member() == "Boots Chatham");
    CHECK_FALSE(e->panic().escalated());
  }
  // Those outside the route hear nothing (escalation is far away at the default 15 s).
  for (auto* d : {strood_shop.get(), police_strood.get(), coordinator.get(), sender.get()}) {
    CAPTURE(d->id());
    auto e = d->wait_for(is_panic(id), 300ms);
    CHECK_FALSE(e);
  }
}

TEST_CASE("the sender sees delivered from each recipient and acknowledged naming the operator") {
  Town town;
  auto sender = town.device("shop-chatham-1");
  auto cctv = town.device("cctv-01");
  auto police = town.device("police-chatham");
  town.wait_sessions(3);

  sender->panic(7);
  const std::string id = "shop-chatham-1:7";
  REQUIRE(got_accepted(*sender, id));
  REQUIRE(cctv->wait_for(is_panic(id)));
  REQUIRE(police->wait_for(is_panic(id)));

  std::set<std::string> delivered_by;
  for (int i = 0; i < 2; ++i) {
    auto e = sender->wait_for(is_update(id, v1::DELIVERED));
    REQUIRE(e);
    delivered_by.insert(e->update().by_id());
  }
  CHECK(delivered_by == std::set<std::string>{"cctv-01", "police-chatham"});

  const auto ack = cctv->status(id, v1::ACKNOWLEDGED);
  auto receipt = cctv->wait_for(is_reply(ack));
  REQUIRE(receipt);
  CHECK(receipt->has_receipt());
  auto update = sender->wait_for(is_update(id, v1::ACKNOWLEDGED));
  REQUIRE(update);
  CHECK(update->update().by_id() == "cctv-01");
  CHECK(update->update().by_role() == "cctv");
  CHECK(update->update().at_ms() > 0);

  police->status(id, v1::EN_ROUTE);
  auto en_route = sender->wait_for(is_update(id, v1::EN_ROUTE));
  REQUIRE(en_route);
  CHECK(en_route->update().by_id() == "police-chatham");
}

TEST_CASE("an alert nobody acknowledges escalates to every police officer, CCTV and coordinators, "
          "and stops once acknowledged") {
  Town town([](server::HubConfig& c) { c.escalation_interval = 300ms; });
  auto sender = town.device("shop-chatham-1");
  auto cctv = town.device("cctv-01", false);  // hears it but nobody answers
  auto police_strood = town.device("police-strood");
  auto coordinator = town.device("coord-1");
  auto strood_shop = town.device("shop-strood-1");
  town.wait_sessions(5);

  sender->panic(3);
  const std::string id = "shop-chatham-1:3";
  REQUIRE(got_accepted(*sender, id));
  auto first = cctv->wait_for(is_panic(id));
  REQUIRE(first);
  CHECK_FALSE(first->panic().escalated());

  auto escalated_to = [&](TestDevice& d) {
    return d.wait_for([&](const v1::Envelope& e) {
      return e.has_panic() && e.panic().alert_id() == id && e.panic().escalated();
    }, 3s);
  };
  auto strood = escalated_to(*police_strood);
  REQUIRE(strood);
  CHECK(strood->panic().escalation_round() >= 1);
  REQUIRE(escalated_to(*coordinator));
  REQUIRE(escalated_to(*cctv));
  auto told = sender->wait_for([&](const v1::Envelope& e) {
    return e.has_update() && e.update().alert_id() == id && e.update().event() == v1::ESCALATED;
  });
  REQUIRE(told);
  CHECK_FALSE(strood_shop->wait_for(is_panic(id), 200ms));

  // Strood police, reached by the escalation, acknowledges: the repeats stop.
  const auto ack = police_strood->status(id, v1::ACKNOWLEDGED);
  REQUIRE(police_strood->wait_for(is_reply(ack))->has_receipt());
  REQUIRE(sender->wait_for(is_update(id, v1::ACKNOWLEDGED)));
  const auto escalations = town.hub->hub->stats().escalations;
  coordinator->drain(900ms);
  CHECK(town.hub->hub->stats().escalations == escalations);
}

TEST_CASE("a repeated alert id is accepted again but relayed only once") {
  Town town;
  auto sender = town.device("shop-chatham-1");
  auto cctv = town.device("cctv-01");
  town.wait_sessions(2);

  sender->panic(11);
  const std::string id = "shop-chatham-1:11";
  bool duplicate = true;
  REQUIRE(got_accepted(*sender, id, &duplicate));
  CHECK_FALSE(duplicate);
  REQUIRE(cctv->wait_for(is_panic(id)));

  sender->panic(11);  // the handset retries: same alert id
  REQUIRE(got_accepted(*sender, id, &duplicate));
  CHECK(duplicate);
  auto later = cctv->drain(400ms);
  CHECK(std::count_if(later.begin(), later.end(), is_panic(id)) == 0);
  CHECK(town.hub->hub->stats().alerts_accepted == 1);
  CHECK(town.hub->hub->stats().alerts_duplicate == 1);
}

TEST_CASE("the sender cancels within the window and every recipient is told, a late cancel is "
          "refused") {
  Town town([](server::HubConfig& c) { c.cancel_window = 1500ms; });
  auto sender = town.device("shop-chatham-1");
  auto neighbour = town.device("shop-chatham-2");
  auto cctv = town.device("cctv-01");
  town.wait_sessions(3);

  sender->panic(21);
  const std::string id = "shop-chatham-1:21";
  REQUIRE(got_accepted(*sender, id));
  REQUIRE(cctv->wait_for(is_panic(id)));
  REQUIRE(neighbour->wait_for(is_panic(id)));

  // Someone else may not cancel it.
  const auto theirs = neighbour->cancel(id);
  auto refused = neighbour->wait_for(is_reply(theirs));
  REQUIRE(refused);
  REQUIRE(refused->has_error());
  CHECK(refused->error().code() == v1::NOT_ALLOWED);

  const auto mine = sender->cancel(id);
  auto receipt = sender->wait_for(is_reply(mine));
  REQUIRE(receipt);
  CHECK(receipt->has_receipt());
  for (auto* d : {cctv.get(), neighbour.get()}) {
    auto e = d->wait_for([&](const v1::Envelope& x) {
      return x.has_cancel() && x.cancel().alert_id() == id;
    });
    REQUIRE(e);
    CHECK(e->cancel().origin_id() == "shop-chatham-1");
  }

  // The record stays, marked cancelled.
  town.hub->hub->store().run_sync([&](SQLite::Database& db) {
    auto record = server::alerts::find(db, id);
    REQUIRE(record);
    CHECK(record->cancelled_at_ms.has_value());
  });

  sender->panic(22);
  const std::string late = "shop-chatham-1:22";
  REQUIRE(got_accepted(*sender, late));
  std::this_thread::sleep_for(1700ms);  // past the (shortened) cancel window
  const auto too_late = sender->cancel(late);
  auto answer = sender->wait_for(is_reply(too_late));
  REQUIRE(answer);
  REQUIRE(answer->has_error());
  CHECK(answer->error().code() == v1::TOO_LATE);
}

TEST_CASE("an exercise alert is relayed marked as an exercise") {
  Town town;
  auto sender = town.device("shop-chatham-1");
  auto cctv = town.device("cctv-01");
  town.wait_sessions(2);
  sender->panic(31, v1::EXERCISE);
  auto e = cctv->wait_for(is_panic("shop-chatham-1:31"));
  REQUIRE(e);
  CHECK(e->panic().status() == v1::EXERCISE);
}

TEST_CASE("a status for an alert the hub does not know is refused with UNKNOWN_ALERT") {
  Town town;
  auto cctv = town.device("cctv-01");
  const auto msg = cctv->status("nobody:1", v1::ACKNOWLEDGED);
  auto e = cctv->wait_for(is_reply(msg));
  REQUIRE(e);
  REQUIRE(e->has_error());
  CHECK(e->error().code() == v1::UNKNOWN_ALERT);
}

TEST_CASE("an alert past its own expiry stops escalating") {
  Town town([](server::HubConfig& c) { c.escalation_interval = 200ms; });
  auto sender = town.device("shop-chatham-1");
  auto coordinator = town.device("coord-1");
  town.wait_sessions(2);
  v1::Envelope e;
  auto* p = e.mutable_panic();
  p->set_alert_id("shop-chatham-1:41");
  p->set_device_seq(41);
  p->set_pressed_at_ms(now_ms());
  p->set_expires_at_ms(now_ms() + 300);  // expires between the first and second escalation
  sender->send(e);
  REQUIRE(got_accepted(*sender, "shop-chatham-1:41"));
  auto seen = coordinator->drain(1200ms);
  const auto escalated = std::count_if(seen.begin(), seen.end(), [](const v1::Envelope& x) {
    return x.has_panic() && x.panic().escalated();
  });
  CHECK(escalated == 1);
}

TEST_CASE("a certificate for a town the hub does not serve is refused") {
  Town town([](server::HubConfig& c) { c.towns = {"chatham"}; });
  TestDevice strood(town.pki.dir(), "shop-strood-1", town.hub->address());
  CHECK_THROWS_AS(strood.connect(), client::ClientError);
  auto chatham = town.device("shop-chatham-1");  // still served
  CHECK(town.hub->hub->stats().handshake_failures >= 1);
}
