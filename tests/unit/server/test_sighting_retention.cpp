#include "server/intel_store.hpp"

#include "server/store.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace saferlink;
using namespace saferlink::server;

namespace {

constexpr std::int64_t kNow = 1'800'000'000'000;
constexpr std::int64_t kDay = intel::kDayMs;

Identity coordinator() {
  Identity who;
  who.id = "coord-1";
  who.role = Role::coordinator;
  who.town = "all";
  who.member = "Safer Medway";
  return who;
}

void add_sighting(SQLite::Database& db, const std::string& id, std::int64_t profile,
                  std::int64_t accepted_at) {
  SQLite::Statement insert(
      db,
      "INSERT INTO sightings (sighting_id, device_id, device_seq, sender_role, sender_member, "
      "sender_town, town, text, profile_id, seen_at_ms, accepted_at_ms) "
      "VALUES (?, 'shop-1', 1, 'shop', 'Boots', 'chatham', 'chatham', ?, ?, ?, ?)");
  insert.bind(1, id);
  insert.bind(2, "seen near the tills: " + id);
  insert.bind(3, profile);
  insert.bind(4, accepted_at);
  insert.bind(5, accepted_at);
  insert.exec();
}

}  // namespace

TEST_CASE("the purge deletes sightings past the retention period and keeps recent ones") {
  SQLite::Database db(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  db.exec("PRAGMA foreign_keys=ON");
  migrate(db);
  intel::ProfileInput input;
  input.name = "Seen Sam";
  const auto profile = intel::create_profile(db, input, coordinator(), kNow - 800 * kDay);
  REQUIRE(profile.ok());
  add_sighting(db, "shop-1:1", *profile.value, kNow - 800 * kDay);  // past 730 days
  add_sighting(db, "shop-1:2", *profile.value, kNow - 10 * kDay);

  const auto dry = intel::purge(db, kNow, {}, true, coordinator());
  REQUIRE(dry.ok());
  CHECK(dry.value->sightings == std::vector<std::string>{"shop-1:1"});
  CHECK(db.execAndGet("SELECT COUNT(*) FROM sightings").getInt() == 2);  // dry run: nothing

  const auto done = intel::purge(db, kNow, {}, false, coordinator());
  REQUIRE(done.ok());
  CHECK(db.execAndGet("SELECT COUNT(*) FROM sightings").getInt() == 1);
  CHECK(db.execAndGet("SELECT sighting_id FROM sightings").getString() == "shop-1:2");
}

TEST_CASE("a subject access export includes the sightings that named the person") {
  SQLite::Database db(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  db.exec("PRAGMA foreign_keys=ON");
  migrate(db);
  intel::ProfileInput input;
  input.name = "Seen Sam";
  const auto profile = intel::create_profile(db, input, coordinator(), kNow - 5 * kDay);
  REQUIRE(profile.ok());
  add_sighting(db, "shop-1:7", *profile.value, kNow - kDay);
  const auto sar = intel::gather_sar(db, *profile.value, coordinator(), kNow);
  REQUIRE(sar.ok());
  const auto doc = nlohmann::json::parse(sar.value->json);
  REQUIRE(doc["sightings"].size() == 1);
  CHECK(doc["sightings"][0]["sighting_id"] == "shop-1:7");
  CHECK(doc["sightings"][0]["text"] == "seen near the tills: shop-1:7");
}
