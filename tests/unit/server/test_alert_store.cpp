#include "server/alert_store.hpp"

#include <doctest/doctest.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <stdlib.h>  // mkdtemp

#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "server/store.hpp"

namespace {

namespace alerts = saferlink::server::alerts;
using alerts::AlertRecord;
using alerts::EventRecord;
using alerts::InsertOutcome;

// An in-memory database as the store would have it: foreign keys on, schema migrated.
struct MemoryDb {
  SQLite::Database db{":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE};
  MemoryDb() {
    db.exec("PRAGMA foreign_keys = ON");
    saferlink::server::migrate(db);
  }
};

AlertRecord make_alert(const std::string& device, std::uint64_t seq, std::int64_t accepted_at) {
  AlertRecord r;
  r.device_id = device;
  r.device_seq = seq;
  r.alert_id = device + ":" + std::to_string(seq);
  r.member = "member-of-" + device;
  r.town = "Lagos";
  r.status = "actual";
  r.severity = "extreme";
  r.note = "gate by the market";
  r.pressed_at_ms = accepted_at - 5;
  r.expires_at_ms = accepted_at + 600'000;
  r.accepted_at_ms = accepted_at;
  return r;
}

void check_same(const AlertRecord& got, const AlertRecord& want) {
  INFO("alert ", want.alert_id);
  CHECK(got.alert_id == want.alert_id);
  CHECK(got.device_id == want.device_id);
  CHECK(got.device_seq == want.device_seq);
  CHECK(got.member == want.member);
  CHECK(got.town == want.town);
  CHECK(got.status == want.status);
  CHECK(got.severity == want.severity);
  CHECK(got.note == want.note);
  CHECK(got.pressed_at_ms == want.pressed_at_ms);
  CHECK(got.expires_at_ms == want.expires_at_ms);
  CHECK(got.accepted_at_ms == want.accepted_at_ms);
  CHECK(got.cancelled_at_ms == want.cancelled_at_ms);
  CHECK(got.cancel_reason == want.cancel_reason);
}

void check_same(const EventRecord& got, const EventRecord& want) {
  CHECK(got.alert_id == want.alert_id);
  CHECK(got.kind == want.kind);
  CHECK(got.by_id == want.by_id);
  CHECK(got.by_role == want.by_role);
  CHECK(got.by_town == want.by_town);
  CHECK(got.at_ms == want.at_ms);
  CHECK(got.round == want.round);
}

std::vector<std::string> ids(const std::vector<AlertRecord>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.alert_id);
  return out;
}

// A directory of its own, removed with everything in it (db, -wal, -shm).
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "saferlink-alerts-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace

TEST_SUITE("alert store") {

TEST_CASE("an inserted alert is found again with every field") {
  MemoryDb m;
  AlertRecord plain = make_alert("dev-1", 1, 1'000);
  AlertRecord unusual = make_alert("dev-2", std::numeric_limits<std::uint64_t>::max(), 2'000);
  unusual.status = "exercise";
  unusual.note = "it's \"quoted\"'); DROP TABLE alerts; --";
  unusual.cancelled_at_ms = 2'500;
  unusual.cancel_reason = "pressed by mistake";

  CHECK(alerts::insert(m.db, plain) == InsertOutcome::inserted);
  CHECK(alerts::insert(m.db, unusual) == InsertOutcome::inserted);

  auto found_plain = alerts::find(m.db, plain.alert_id);
  auto found_unusual = alerts::find(m.db, unusual.alert_id);
  REQUIRE(found_plain);
  REQUIRE(found_unusual);
  check_same(*found_plain, plain);
  check_same(*found_unusual, unusual);
}

TEST_CASE("find returns nothing for an unknown alert") {
  MemoryDb m;
  CHECK_FALSE(alerts::find(m.db, "nobody:1"));
}

TEST_CASE("inserting an alert_id again reports duplicate and leaves the stored row untouched") {
  MemoryDb m;
  const AlertRecord original = make_alert("dev-1", 7, 1'000);
  REQUIRE(alerts::insert(m.db, original) == InsertOutcome::inserted);

  AlertRecord again = original;
  again.member = "someone else";
  again.note = "a different note";
  again.accepted_at_ms = 9'999;
  AlertRecord existing;
  CHECK(alerts::insert(m.db, again, &existing) == InsertOutcome::duplicate);
  check_same(existing, original);

  auto stored = alerts::find(m.db, original.alert_id);
  REQUIRE(stored);
  check_same(*stored, original);

  CHECK(alerts::insert(m.db, again) == InsertOutcome::duplicate);  // no `existing` wanted
  CHECK(m.db.execAndGet("SELECT count(*) FROM alerts").getInt() == 1);
}

TEST_CASE("the schema refuses an alert with an unknown status") {
  MemoryDb m;
  AlertRecord bogus = make_alert("dev-1", 1, 1'000);
  bogus.status = "drill";
  CHECK_THROWS_AS(alerts::insert(m.db, bogus), SQLite::Exception);
  CHECK_FALSE(alerts::find(m.db, bogus.alert_id));
}

TEST_CASE("the first cancel of an alert wins") {
  MemoryDb m;
  const AlertRecord alert = make_alert("dev-1", 1, 1'000);
  REQUIRE(alerts::insert(m.db, alert) == InsertOutcome::inserted);

  CHECK(alerts::mark_cancelled(m.db, alert.alert_id, 1'100, "false alarm"));
  CHECK_FALSE(alerts::mark_cancelled(m.db, alert.alert_id, 1'200, "second thoughts"));

  auto stored = alerts::find(m.db, alert.alert_id);
  REQUIRE(stored);
  CHECK(stored->cancelled_at_ms == 1'100);
  CHECK(stored->cancel_reason == "false alarm");
  CHECK(stored->member == alert.member);
}

TEST_CASE("cancelling an unknown alert changes nothing") {
  MemoryDb m;
  CHECK_FALSE(alerts::mark_cancelled(m.db, "nobody:1", 1'100, "why"));
  CHECK(m.db.execAndGet("SELECT count(*) FROM alerts").getInt() == 0);
}

TEST_CASE("recorded events come back for their alert in the order recorded") {
  MemoryDb m;
  REQUIRE(alerts::insert(m.db, make_alert("dev-1", 1, 1'000)) == InsertOutcome::inserted);
  REQUIRE(alerts::insert(m.db, make_alert("dev-2", 1, 1'000)) == InsertOutcome::inserted);

  const std::vector<EventRecord> recorded = {
      {"dev-1:1", "delivered", "resp-9", "responder", "Lagos", 1'010, 0},
      {"dev-1:1", "escalated", "hub", "hub", "Lagos", 1'030, 2},
      {"dev-1:1", "acknowledged", "resp-3", "coordinator", "Ibadan", 1'020, 0},
  };
  const EventRecord other{"dev-2:1", "delivered", "resp-1", "responder", "Lagos", 1'005, 0};
  alerts::record_event(m.db, recorded[0]);
  alerts::record_event(m.db, other);
  alerts::record_event(m.db, recorded[1]);
  alerts::record_event(m.db, recorded[2]);

  const auto got = alerts::events(m.db, "dev-1:1");
  REQUIRE(got.size() == recorded.size());
  for (std::size_t i = 0; i < got.size(); ++i) check_same(got[i], recorded[i]);
  CHECK(alerts::events(m.db, "dev-3:1").empty());
}

TEST_CASE("an event for an unknown alert is refused by the foreign key") {
  MemoryDb m;
  const EventRecord orphan{"nobody:1", "delivered", "resp-1", "responder", "Lagos", 1'000, 0};
  CHECK_THROWS_AS(alerts::record_event(m.db, orphan), SQLite::Exception);
  CHECK(alerts::events(m.db, "nobody:1").empty());
}

TEST_CASE("open_since lists uncancelled alerts accepted at or after the time, oldest first") {
  MemoryDb m;
  const AlertRecord too_old = make_alert("old", 1, 199);
  const AlertRecord at_boundary = make_alert("edge", 1, 200);
  const AlertRecord cancelled = make_alert("cxl", 1, 300);
  const AlertRecord later_b = make_alert("b", 1, 400);
  const AlertRecord later_a = make_alert("a", 1, 400);
  const AlertRecord middle = make_alert("mid", 1, 350);
  for (const auto* r : {&too_old, &at_boundary, &cancelled, &later_b, &later_a, &middle}) {
    REQUIRE(alerts::insert(m.db, *r) == InsertOutcome::inserted);
  }
  REQUIRE(alerts::mark_cancelled(m.db, cancelled.alert_id, 310, "mistake"));

  const auto open = alerts::open_since(m.db, 200);
  CHECK(ids(open) == std::vector<std::string>{"edge:1", "mid:1", "a:1", "b:1"});
  REQUIRE(open.size() == 4);
  check_same(open[1], middle);
  CHECK(alerts::open_since(m.db, 401).empty());
}

TEST_CASE("recent lists alerts newest first, the later of two accepted in the same millisecond "
          "first, by town, and at most the limit") {
  MemoryDb m;
  const AlertRecord older = make_alert("shop", 1, 300);
  const AlertRecord first_in_ms = make_alert("shop", 2, 400);
  const AlertRecord second_in_ms = make_alert("shop", 3, 400);  // same ms, accepted after :2
  const AlertRecord elsewhere = [] {
    AlertRecord r = make_alert("other", 1, 500);
    r.town = "Kano";
    return r;
  }();
  for (const auto* r : {&older, &first_in_ms, &second_in_ms, &elsewhere}) {
    REQUIRE(alerts::insert(m.db, *r) == InsertOutcome::inserted);
  }
  CHECK(ids(alerts::recent(m.db, 0, "Lagos", 10)) ==
        std::vector<std::string>{"shop:3", "shop:2", "shop:1"});
  CHECK(ids(alerts::recent(m.db, 0, "all", 10)) ==
        std::vector<std::string>{"other:1", "shop:3", "shop:2", "shop:1"});
  CHECK(ids(alerts::recent(m.db, 350, "Lagos", 10)) == std::vector<std::string>{"shop:3", "shop:2"});
  CHECK(ids(alerts::recent(m.db, 0, "Lagos", 1)) == std::vector<std::string>{"shop:3"});
}

TEST_CASE("alerts written through a store job are there after the database is reopened") {
  TempDir dir;
  const std::string path = dir.file("hub.db");
  const AlertRecord alert = make_alert("dev-1", 3, 5'000);
  {
    saferlink::server::Store store({path});
    InsertOutcome outcome = InsertOutcome::duplicate;
    store.run_sync([&](SQLite::Database& db) {
      outcome = alerts::insert(db, alert);
      alerts::record_event(db, {alert.alert_id, "delivered", "resp-1", "responder", "Lagos",
                                5'010, 0});
    });
    CHECK(outcome == InsertOutcome::inserted);
    // The store turned foreign keys on: an orphan event fails its job.
    CHECK_THROWS_AS(store.run_sync([](SQLite::Database& db) {
      alerts::record_event(db, {"nobody:1", "delivered", "r", "responder", "Lagos", 1, 0});
    }),
                    SQLite::Exception);
  }
  saferlink::server::Store store({path});
  std::optional<AlertRecord> stored;
  std::size_t event_count = 0;
  store.run_sync([&](SQLite::Database& db) {
    stored = alerts::find(db, alert.alert_id);
    event_count = alerts::events(db, alert.alert_id).size();
  });
  REQUIRE(stored);
  check_same(*stored, alert);
  CHECK(event_count == 1);
}

}  // TEST_SUITE
