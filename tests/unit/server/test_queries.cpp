#include "server/queries.hpp"

#include "server/store.hpp"

#include <SQLiteCpp/Database.h>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

using namespace saferlink;
using namespace saferlink::server;

namespace {

SQLite::Database fresh_db() {
  SQLite::Database db(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  db.exec("PRAGMA foreign_keys=ON");
  migrate(db);
  return db;
}

queries::Context as(Role role, const std::string& town = "chatham") {
  queries::Context c;
  c.actor.id = "someone";
  c.actor.role = role;
  c.actor.town = town;
  c.actor.member = "Member";
  c.now_ms = 1'800'000'000'000;
  return c;
}

v1::ErrorCode code_of(SQLite::Database& db, const std::string& op, const std::string& args,
                      const queries::Context& c) {
  try {
    queries::run(db, op, args, c);
  } catch (const queries::QueryError& e) {
    return e.code;
  }
  return v1::ERROR_UNSPECIFIED;
}

}  // namespace

TEST_CASE("every op refuses every role it does not list, before looking at its arguments") {
  auto db = fresh_db();
  const Role roles[] = {Role::shop, Role::police, Role::cctv, Role::coordinator, Role::hub};
  std::size_t refusals = 0;
  for (const auto& info : queries::ops()) {
    for (Role role : roles) {
      const bool listed = std::find(info.roles.begin(), info.roles.end(), role) != info.roles.end();
      if (listed) continue;
      CAPTURE(info.op);
      CAPTURE(to_string(role));
      CHECK(code_of(db, info.op, "{}", as(role)) == v1::NOT_ALLOWED);
      ++refusals;
    }
  }
  CHECK(refusals > 50);  // the table really denies most pairs
}

TEST_CASE("the op table gives coordinators every op and shops only form and gallery reads") {
  std::set<std::string> shop_ops;
  for (const auto& info : queries::ops()) {
    CAPTURE(info.op);
    CHECK(std::find(info.roles.begin(), info.roles.end(), Role::coordinator) != info.roles.end());
    CHECK(std::find(info.roles.begin(), info.roles.end(), Role::hub) == info.roles.end());
    if (std::find(info.roles.begin(), info.roles.end(), Role::shop) != info.roles.end()) {
      shop_ops.insert(info.op);
    }
  }
  CHECK(shop_ops ==
        std::set<std::string>{"incidents.list", "incidents.show", "gallery", "photos.get"});
}

TEST_CASE("an unknown op and malformed arguments are refused as INVALID naming the problem") {
  auto db = fresh_db();
  const auto coordinator = as(Role::coordinator, "all");
  CHECK(code_of(db, "drop.everything", "{}", coordinator) == v1::INVALID);
  CHECK(code_of(db, "profiles.show", "[1,2]", coordinator) == v1::INVALID);
  CHECK(code_of(db, "profiles.show", "{", coordinator) == v1::INVALID);
  try {
    queries::run(db, "profiles.show", R"({"profile_id":"7"})", coordinator);
    FAIL("a string profile id was accepted");
  } catch (const queries::QueryError& e) {
    CHECK(std::string(e.what()).rfind("profile_id", 0) == 0);
  }
  try {
    queries::run(db, "notice.resolve", R"({"notice_id":1,"outcome":"maybe","reason":"r"})",
                 coordinator);
    FAIL("an unknown outcome was accepted");
  } catch (const queries::QueryError& e) {
    CHECK(std::string(e.what()).rfind("outcome", 0) == 0);
  }
}

TEST_CASE("a coordinator creates, lists and shows a profile through queries, and the reads "
          "are audited") {
  auto db = fresh_db();
  const auto coordinator = as(Role::coordinator, "all");
  const auto created = nlohmann::json::parse(
      queries::run(db, "profiles.create", R"({"name":"Test Person","violent":true})", coordinator)
          .json);
  const std::int64_t id = created["profile_id"];
  CHECK(created["violent"] == true);
  const auto listed = nlohmann::json::parse(queries::run(db, "profiles.list", "{}", coordinator).json);
  REQUIRE(listed.size() == 1);
  CHECK(listed[0]["name"] == "Test Person");
  const auto before = db.execAndGet("SELECT COUNT(*) FROM audit_log").getInt64();
  queries::run(db, "profiles.show", nlohmann::json{{"profile_id", id}}.dump(), coordinator);
  CHECK(db.execAndGet("SELECT COUNT(*) FROM audit_log").getInt64() == before + 1);
}
