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

TEST_CASE("an ended notice's record is purged once its own retention has passed, not before") {
  SQLite::Database db(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  db.exec("PRAGMA foreign_keys=ON");
  migrate(db);
  intel::ProfileInput input;
  input.name = "Banned Bob";
  const auto profile = intel::create_profile(db, input, coordinator(), kNow - 900 * kDay);
  REQUIRE(profile.ok());
  auto add_notice = [&](const char* state, std::int64_t ended_at) {
    SQLite::Statement insert(
        db,
        "INSERT INTO notices (profile_id, state, conditions, towns, proposed_by, proposed_at_ms, "
        "ended_at_ms, updated_at_ms) VALUES (?, ?, 'stay out', 'all', 'coord-1', ?, ?, ?)");
    insert.bind(1, *profile.value);
    insert.bind(2, state);
    insert.bind(3, ended_at - kDay);
    insert.bind(4, ended_at);
    insert.bind(5, ended_at);
    insert.exec();
    return db.getLastInsertRowid();
  };
  const auto old_notice = add_notice("revoked", kNow - 800 * kDay);
  const auto recent_notice = add_notice("expired", kNow - 100 * kDay);

  const auto report = intel::purge(db, kNow, {}, false, coordinator());
  REQUIRE(report.ok());
  CHECK(report.value->notices == std::vector<std::int64_t>{old_notice});
  CHECK(db.execAndGet("SELECT COUNT(*) FROM notices").getInt() == 1);
  CHECK(db.execAndGet("SELECT notice_id FROM notices").getInt64() == recent_notice);
  // The recent record still keeps the profile.
  CHECK(db.execAndGet("SELECT COUNT(*) FROM profiles").getInt() == 1);

  // Once that one has aged too, both the record and the profile go.
  const auto later = intel::purge(db, kNow + 700 * kDay, {}, false, coordinator());
  REQUIRE(later.ok());
  CHECK(later.value->notices == std::vector<std::int64_t>{recent_notice});
  CHECK(db.execAndGet("SELECT COUNT(*) FROM profiles").getInt() == 0);
}
