#include "server/sighting_store.hpp"

#include <doctest/doctest.h>

#include <SQLiteCpp/Database.h>

#include <cstdint>
#include <string>
#include <vector>

#include "server/audit.hpp"
#include "server/store.hpp"

namespace {

namespace sightings = saferlink::server::sightings;
namespace audit = saferlink::server::audit;

constexpr std::int64_t kNow = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
const std::string kPhoto(64, 'b');

// An in-memory database as the store would have it: profile 7 with an active notice for
// Chatham, 8 merged into 7, 9 with only a proposed notice for all towns, 10 with an active
// notice for all towns, 11 with a disputed one for Chatham, 12 with an active one for Strood,
// 13 with an active one for Chatham whose term ended an hour ago (not yet expired by the
// scheduled run), 14 with an expired and a revoked one; one photo.
struct Fixture {
  SQLite::Database db{":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE};
  Fixture() {
    db.exec("PRAGMA foreign_keys = ON");
    saferlink::server::migrate(db);
    db.exec(
        "INSERT INTO profiles (profile_id, name, created_at_ms, created_by, updated_at_ms) VALUES "
        "(7, 'Subject Seven', 0, 'coord-a', 0), (9, 'Subject Nine', 0, 'coord-a', 0), "
        "(10, 'Subject Ten', 0, 'coord-a', 0), (11, 'Subject Eleven', 0, 'coord-a', 0), "
        "(12, 'Subject Twelve', 0, 'coord-a', 0), (13, 'Subject Thirteen', 0, 'coord-a', 0), "
        "(14, 'Subject Fourteen', 0, 'coord-a', 0);"
        "INSERT INTO profiles (profile_id, name, merged_into, created_at_ms, created_by, "
        "updated_at_ms) VALUES (8, 'Duplicate of Seven', 7, 0, 'coord-a', 0);"
        "INSERT INTO blobs (sha256, mime, size, stored_at_ms) VALUES ('" +
        kPhoto + "', 'image/jpeg', 1234, 0);");
    notice(101, 7, "active", "chatham", kNow + 1'000'000);
    notice(102, 9, "proposed", "all", std::nullopt);
    notice(103, 10, "active", "all", kNow + 1'000'000);
    notice(104, 11, "disputed", "chatham", kNow + 1'000'000);
    notice(105, 12, "active", "strood", kNow + 1'000'000);
    notice(106, 13, "active", "chatham", kNow - 3'600'000);
    notice(107, 14, "expired", "chatham", kNow - 3'600'000);
    notice(108, 14, "revoked", "all", kNow + 1'000'000);
  }
  void notice(std::int64_t id, std::int64_t profile, const std::string& state,
              const std::string& towns, std::optional<std::int64_t> expires) {
    SQLite::Statement insert(db,
                             "INSERT INTO notices (notice_id, profile_id, state, conditions, towns, "
                             "proposed_by, proposed_at_ms, expires_at_ms, updated_at_ms) "
                             "VALUES (?, ?, ?, 'Not to enter member premises', ?, 'coord-a', 0, "
                             "?, 0)");
    insert.bind(1, id);
    insert.bind(2, profile);
    insert.bind(3, state);
    insert.bind(4, towns);
    if (expires) {
      insert.bind(5, *expires);
    } else {
      insert.bind(5);
    }
    insert.exec();
  }
};

sightings::Record record(std::uint64_t seq, std::optional<std::int64_t> profile,
                         const std::string& town = "chatham") {
  sightings::Record r;
  r.device_id = "shop-chatham-1";
  r.device_seq = seq;
  r.sighting_id = r.device_id + ":" + std::to_string(seq);
  r.sender_role = "shop";
  r.sender_member = "Boots Chatham";
  r.sender_town = "chatham";
  r.town = town;
  r.text = "seen by the tills";
  r.location = "Pentagon Centre";
  r.heading = "north exit";
  r.profile_id = profile;
  r.seen_at_ms = kNow - 60'000;
  r.accepted_at_ms = kNow;
  return r;
}

int audit_rows(SQLite::Database& db) {
  return db.execAndGet("SELECT count(*) FROM audit_log").getInt();
}

}  // namespace

TEST_SUITE("sighting store") {

TEST_CASE("a sighting of a profile with an active notice for its town is a possible breach") {
  Fixture f;
  const auto result = sightings::insert(f.db, record(1, 7), kNow);
  REQUIRE(result.outcome == sightings::Outcome::inserted);
  CHECK(result.stored.possible_breach);
  CHECK(result.stored.notice_id == 101);
  CHECK(result.stored.profile_name == "Subject Seven");
  const auto stored = sightings::find(f.db, "shop-chatham-1:1");
  REQUIRE(stored.has_value());
  CHECK(stored->possible_breach);
  CHECK(stored->notice_id == 101);
  CHECK(stored->profile_id == 7);
  CHECK(stored->text == "seen by the tills");
  CHECK(stored->heading == "north exit");
  CHECK(stored->profile_name == "Subject Seven");
}

TEST_CASE("breach flag per notice state and town: only an active notice in term that covers "
          "the town flags") {
  struct Row {
    std::int64_t profile;
    const char* town;
    bool breach;
    std::int64_t notice;
  };
  const Row rows[] = {
      {7, "chatham", true, 101},  {7, "strood", false, 0},     // active, Chatham only
      {9, "chatham", false, 0},                                 // proposed, all towns
      {10, "chatham", true, 103}, {10, "gillingham", true, 103},  // active, all towns
      {11, "chatham", false, 0},                                // disputed
      {12, "chatham", false, 0},  {12, "strood", true, 105},    // active, Strood only
      {13, "chatham", false, 0},                                // active but past its term
      {14, "chatham", false, 0},                                // expired and revoked
  };
  Fixture f;
  std::uint64_t seq = 1;
  for (const auto& row : rows) {
    INFO("profile ", row.profile, " in ", row.town);
    const auto result = sightings::insert(f.db, record(seq++, row.profile, row.town), kNow);
    REQUIRE(result.outcome == sightings::Outcome::inserted);
    CHECK(result.stored.possible_breach == row.breach);
    CHECK(result.stored.notice_id.value_or(0) == row.notice);
  }
}

TEST_CASE("a sighting naming a merged profile is stored against the profile it was merged "
          "into and inherits its notice") {
  Fixture f;
  const auto result = sightings::insert(f.db, record(1, 8), kNow);
  REQUIRE(result.outcome == sightings::Outcome::inserted);
  CHECK(result.stored.profile_id == 7);
  CHECK(result.stored.profile_name == "Subject Seven");
  CHECK(result.stored.possible_breach);
  CHECK(result.stored.notice_id == 101);
}

TEST_CASE("a sighting naming an unknown profile is refused and nothing is written") {
  Fixture f;
  const int before = audit_rows(f.db);
  const auto result = sightings::insert(f.db, record(1, 999), kNow);
  CHECK(result.outcome == sightings::Outcome::refused);
  CHECK(result.error == "profile_id: no profile 999");
  CHECK_FALSE(sightings::find(f.db, "shop-chatham-1:1").has_value());
  CHECK(audit_rows(f.db) == before);
}

TEST_CASE("a sighting citing a photo the hub does not hold is refused, one it holds is kept") {
  Fixture f;
  auto missing = record(1, std::nullopt);
  missing.photo_sha256 = std::string(64, 'c');
  const auto refused = sightings::insert(f.db, missing, kNow);
  CHECK(refused.outcome == sightings::Outcome::refused);
  CHECK(refused.error.rfind("photo_sha256", 0) == 0);
  CHECK_FALSE(sightings::find(f.db, "shop-chatham-1:1").has_value());

  auto held = record(2, std::nullopt);
  held.photo_sha256 = kPhoto;
  REQUIRE(sightings::insert(f.db, held, kNow).outcome == sightings::Outcome::inserted);
  CHECK(sightings::find(f.db, "shop-chatham-1:2")->photo_sha256 == kPhoto);
}

TEST_CASE("naming a profile appends an audit row about it, ids only, and the chain verifies, "
          "a sighting without a profile is not audited") {
  Fixture f;
  const int before = audit_rows(f.db);
  REQUIRE(sightings::insert(f.db, record(1, std::nullopt), kNow).outcome ==
          sightings::Outcome::inserted);
  CHECK(audit_rows(f.db) == before);

  REQUIRE(sightings::insert(f.db, record(2, 7), kNow).outcome == sightings::Outcome::inserted);
  audit::Filter filter;
  filter.object_type = "profile";
  filter.object_id = "7";
  const auto rows = audit::list(f.db, filter);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].entry.actor_id == "shop-chatham-1");
  CHECK(rows[0].entry.actor_role == "shop");
  CHECK(rows[0].entry.action == "update");
  CHECK(rows[0].entry.detail == "sighting shop-chatham-1:2 (possible breach of notice 101)");
  CHECK(rows[0].entry.detail.find("tills") == std::string::npos);  // no free text
  CHECK(audit::verify(f.db).ok);
}

TEST_CASE("a retry with the same sighting id is a duplicate answered with the stored record, "
          "written once") {
  Fixture f;
  REQUIRE(sightings::insert(f.db, record(1, 7), kNow).outcome == sightings::Outcome::inserted);
  const int rows_after_first = audit_rows(f.db);
  auto again = record(1, 7);
  again.accepted_at_ms = kNow + 5'000;
  const auto retry = sightings::insert(f.db, again, kNow + 5'000);
  CHECK(retry.outcome == sightings::Outcome::duplicate);
  CHECK(retry.stored.accepted_at_ms == kNow);
  CHECK(retry.stored.possible_breach);
  CHECK(retry.stored.notice_id == 101);
  CHECK(audit_rows(f.db) == rows_after_first);
  CHECK(f.db.execAndGet("SELECT count(*) FROM sightings").getInt() == 1);
}

TEST_CASE("deleting a profile, notice or image a sighting refers to leaves the sighting "
          "without it, never blocks") {
  Fixture f;
  auto r = record(1, 12, "strood");
  r.photo_sha256 = kPhoto;
  REQUIRE(sightings::insert(f.db, r, kNow).outcome == sightings::Outcome::inserted);
  f.db.exec("DELETE FROM blobs");
  f.db.exec("DELETE FROM profiles WHERE profile_id = 12");  // its notice goes with it
  const auto kept = sightings::find(f.db, "shop-chatham-1:1");
  REQUIRE(kept.has_value());
  CHECK_FALSE(kept->profile_id.has_value());
  CHECK_FALSE(kept->notice_id.has_value());
  CHECK(kept->photo_sha256.empty());
  CHECK(kept->possible_breach);  // what was decided at the time stays on the record
}

TEST_CASE("recent lists sightings newest first, the later of two accepted in the same "
          "millisecond first, by town") {
  Fixture f;
  auto older = record(1, std::nullopt);
  older.accepted_at_ms = kNow - 1;
  auto strood = record(4, std::nullopt, "strood");
  strood.accepted_at_ms = kNow + 1;
  // :2 and :3 are accepted in the same millisecond, :3 after :2.
  for (const auto& r : {older, record(2, std::nullopt), record(3, std::nullopt), strood}) {
    REQUIRE(sightings::insert(f.db, r, kNow).outcome == sightings::Outcome::inserted);
  }
  auto ids = [](const std::vector<sightings::Record>& records) {
    std::vector<std::string> out;
    for (const auto& r : records) out.push_back(r.sighting_id);
    return out;
  };
  CHECK(ids(sightings::recent(f.db, 0, "chatham", 10)) ==
        std::vector<std::string>{"shop-chatham-1:3", "shop-chatham-1:2", "shop-chatham-1:1"});
  CHECK(ids(sightings::recent(f.db, 0, "all", 2)) ==
        std::vector<std::string>{"shop-chatham-1:4", "shop-chatham-1:3"});
  CHECK(ids(sightings::recent(f.db, kNow, "chatham", 10)) ==
        std::vector<std::string>{"shop-chatham-1:3", "shop-chatham-1:2"});
}

}  // TEST_SUITE
