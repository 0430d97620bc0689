// Durability: an alert the hub said `accepted` survives SIGKILL of the hub process.
#include "tests/support/device.hpp"
#include "tests/support/hub_process.hpp"
#include "tests/support/pki.hpp"

#include "server/alert_store.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <csignal>
#include <set>

using namespace saferlink;
using namespace saferlink::test;

TEST_CASE("every alert the hub said accepted is in the database after SIGKILL and restart") {
  TestPki pki;
  pki.issue(Role::shop, "chatham", "shop-1", "Boots Chatham");
  TempDir data;
  const auto db = data.path / "hub.db";
  const auto log = data.path / "hub.log";  // the hubs' stderr, kept out of the test output

  std::set<std::string> accepted;
  {
    HubProcess hub(SAFERLINK_HUB_BINARY, pki.dir(), db, log);
    TestDevice shop(pki.dir(), "shop-1", hub.address());
    shop.connect();
    // Many alerts in flight, then the hub dies the moment enough have been confirmed: some
    // accepted ones were committed just before the kill, others are still in the store queue.
    for (std::uint64_t seq = 1; seq <= 200; ++seq) shop.panic(seq);
    while (accepted.size() < 40) {
      auto e = shop.next(5s);
      REQUIRE(e);
      if (e->has_accepted()) accepted.insert(e->accepted().alert_id());
    }
    hub.kill(SIGKILL);
  }
  REQUIRE(accepted.size() >= 40);

  HubProcess restarted(SAFERLINK_HUB_BINARY, pki.dir(), db, log);
  {
    SQLite::Database check(db.string(), SQLite::OPEN_READONLY);
    for (const auto& id : accepted) {
      CAPTURE(id);
      CHECK(server::alerts::find(check, id).has_value());
    }
  }
  // The restarted hub knows them: a retry is a duplicate, not a new alert.
  TestDevice shop(pki.dir(), "shop-1", restarted.address());
  shop.connect();
  const std::string first = *accepted.begin();
  const auto seq = std::stoull(first.substr(first.find(':') + 1));
  shop.panic(seq);
  auto e = shop.wait_for([&](const v1::Envelope& x) {
    return x.has_accepted() && x.accepted().alert_id() == first;
  });
  REQUIRE(e);
  CHECK(e->accepted().duplicate());
}
