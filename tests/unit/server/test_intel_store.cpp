#include "server/intel_store.hpp"

#include <doctest/doctest.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/identity.hpp"
#include "server/audit.hpp"
#include "core/forms.hpp"
#include "server/store.hpp"

namespace {

namespace intel = saferlink::server::intel;
namespace forms = saferlink::forms;
namespace audit = saferlink::server::audit;
using forms::Category;
using intel::Code;
using saferlink::Identity;
using saferlink::Role;

constexpr std::int64_t kDay = 86'400'000;
constexpr std::int64_t kNow = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

// An in-memory database as the store would have it: foreign keys on, schema migrated.
struct MemoryDb {
  SQLite::Database db{":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE};
  MemoryDb() {
    db.exec("PRAGMA foreign_keys = ON");
    saferlink::server::migrate(db);
  }
};

Identity person(Role role, std::string town, std::string id, std::string member = "SMP") {
  Identity who;
  who.id = std::move(id);
  who.role = role;
  who.town = std::move(town);
  who.member = std::move(member);
  return who;
}

const Identity kCoord = person(Role::coordinator, "all", "coord-01");
const Identity kCoord2 = person(Role::coordinator, "all", "coord-02");
const Identity kPoliceChatham = person(Role::police, "chatham", "pc-chatham-7");
const Identity kPoliceAll = person(Role::police, "all", "pc-all-1");
const Identity kCctvAll = person(Role::cctv, "all", "cctv-02");
const Identity kCctvStrood = person(Role::cctv, "strood", "cctv-strood-1");
const Identity kHub = person(Role::hub, "all", "hub");
const Identity kShopChatham = person(Role::shop, "chatham", "shop-chatham-01", "Pentagon Boots");
const Identity kShopChatham2 = person(Role::shop, "chatham", "shop-chatham-02", "High St Greggs");
const Identity kShopStrood = person(Role::shop, "strood", "shop-strood-01", "Strood Co-op");

forms::IncidentForm make_form(const std::string& id, const std::string& town,
                              std::int64_t occurred_at, Category category = Category::other) {
  forms::IncidentForm f;
  f.form_id = id;
  f.occurred_at_ms = occurred_at;
  f.town = town;
  f.premises = "Premises of " + id;
  f.category = category;
  f.description = "What happened in " + id;
  return f;
}

std::string file(SQLite::Database& db, const forms::IncidentForm& form, const Identity& reporter,
                 std::int64_t now) {
  auto result = intel::insert_form(db, form, reporter, now);
  REQUIRE_MESSAGE(result.outcome == intel::InsertOutcome::inserted, result.error);
  return result.confirmation;
}

std::int64_t count(SQLite::Database& db, const std::string& sql,
                   const std::optional<std::string>& arg = std::nullopt) {
  SQLite::Statement select(db, sql);
  if (arg) select.bind(1, *arg);
  REQUIRE(select.executeStep());
  return select.getColumn(0).getInt64();
}

std::string sha(char c) { return std::string(64, c); }

void add_blob(SQLite::Database& db, const std::string& sha256, std::int64_t stored_at) {
  SQLite::Statement insert(
      db, "INSERT INTO blobs (sha256, mime, size, stored_at_ms) VALUES (?, 'image/jpeg', 1234, ?)");
  insert.bind(1, sha256);
  insert.bind(2, stored_at);
  insert.exec();
}

// A notice row written directly (the notice lifecycle is server/notice_store's).
std::int64_t add_notice(SQLite::Database& db, std::int64_t profile_id, const std::string& state,
                        const std::optional<std::string>& photo = std::nullopt) {
  SQLite::Statement insert(db,
                           "INSERT INTO notices (profile_id, state, conditions, towns, "
                           "photo_sha256, proposed_by, proposed_at_ms, updated_at_ms) "
                           "VALUES (?, ?, 'not to enter member premises', 'all', ?, 'coord-01', "
                           "?, ?)");
  insert.bind(1, profile_id);
  insert.bind(2, state);
  if (photo) {
    insert.bind(3, *photo);
  } else {
    insert.bind(3);
  }
  insert.bind(4, kNow - 30 * kDay);
  insert.bind(5, kNow - 30 * kDay);
  insert.exec();
  return db.getLastInsertRowid();
}

std::int64_t new_profile(SQLite::Database& db, const std::string& name, std::int64_t now,
                         bool violent = false, bool weapons = false,
                         std::vector<std::string> aliases = {}) {
  intel::ProfileInput input;
  input.name = name;
  input.aliases = std::move(aliases);
  input.description = "Physical description of " + name;
  input.violent = violent;
  input.weapons = weapons;
  auto created = intel::create_profile(db, input, kCoord, now);
  REQUIRE_MESSAGE(created.ok(), created.status.error);
  return *created.value;
}

std::vector<audit::Row> audit_rows(SQLite::Database& db, const std::string& type,
                                   const std::string& id) {
  audit::Filter filter;
  filter.object_type = type;
  filter.object_id = id;
  return audit::list(db, filter);
}

std::int64_t audit_count(SQLite::Database& db) {
  return count(db, "SELECT count(*) FROM audit_log");
}

std::vector<std::string> ids_of(const std::vector<intel::FormSummary>& list) {
  std::vector<std::string> out;
  for (const auto& s : list) out.push_back(s.form_id);
  return out;
}

}  // namespace

// ---- forms ------------------------------------------------------------------------------------

TEST_CASE("intel: a retried form gets the same confirmation and is stored once") {
  MemoryDb m;
  const auto form = make_form("shop-chatham-01:0001", "chatham", kNow - kDay);
  auto first = intel::insert_form(m.db, form, kShopChatham, kNow);
  REQUIRE(first.outcome == intel::InsertOutcome::inserted);
  CHECK(first.confirmation == "F-shop-chatham-01:0001@" + std::to_string(kNow));

  auto retry = intel::insert_form(m.db, form, kShopChatham, kNow + 90'000);
  CHECK(retry.outcome == intel::InsertOutcome::duplicate);
  CHECK(retry.confirmation == first.confirmation);
  CHECK(count(m.db, "SELECT count(*) FROM incident_forms") == 1);
  CHECK(count(m.db, "SELECT received_at_ms FROM incident_forms") == kNow);

  // The filing is audited once, as the reporter.
  auto rows = audit_rows(m.db, "form", form.form_id);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].entry.action == "create");
  CHECK(rows[0].entry.actor_id == kShopChatham.id);
  CHECK(rows[0].entry.actor_role == "shop");
}

TEST_CASE("intel: a form_id reused for other content or by another reporter is refused") {
  MemoryDb m;
  const auto form = make_form("shop-chatham-01:0001", "chatham", kNow - kDay);
  file(m.db, form, kShopChatham, kNow);

  auto changed = form;
  changed.description = "something else entirely";
  auto same_reporter = intel::insert_form(m.db, changed, kShopChatham, kNow + 1);
  CHECK(same_reporter.outcome == intel::InsertOutcome::refused);
  CHECK(same_reporter.error.rfind("form_id:", 0) == 0);
  CHECK(same_reporter.confirmation.empty());

  auto other_reporter = intel::insert_form(m.db, changed, kShopChatham2, kNow + 1);
  CHECK(other_reporter.outcome == intel::InsertOutcome::refused);
  CHECK(other_reporter.error.find("another reporter") != std::string::npos);

  auto same_content_other_reporter = intel::insert_form(m.db, form, kShopChatham2, kNow + 1);
  CHECK(same_content_other_reporter.outcome == intel::InsertOutcome::refused);

  CHECK(count(m.db, "SELECT count(*) FROM incident_forms") == 1);
  CHECK(count(m.db, "SELECT count(*) FROM incident_forms WHERE description = ?",
              form.description) == 1);
}

TEST_CASE("intel: a form's stills must be uploaded and its profiles must exist") {
  MemoryDb m;
  auto form = make_form("shop-chatham-01:0002", "chatham", kNow - kDay);
  form.still_sha256s = {sha('b'), sha('a')};
  add_blob(m.db, sha('a'), kNow);

  auto missing_still = intel::insert_form(m.db, form, kShopChatham, kNow);
  CHECK(missing_still.outcome == intel::InsertOutcome::refused);
  CHECK(missing_still.error.rfind("stills[0]:", 0) == 0);

  add_blob(m.db, sha('b'), kNow);
  form.profile_ids = {999};
  auto missing_profile = intel::insert_form(m.db, form, kShopChatham, kNow);
  CHECK(missing_profile.outcome == intel::InsertOutcome::refused);
  CHECK(missing_profile.error == "profile_ids[0]: no profile 999");
  CHECK(count(m.db, "SELECT count(*) FROM incident_forms") == 0);
  CHECK(audit_count(m.db) == 0);

  // A merged profile is followed to the profile it was merged into.
  const auto a = new_profile(m.db, "Alan A", kNow);
  const auto b = new_profile(m.db, "Alan B", kNow);
  REQUIRE(intel::merge_profiles(m.db, a, b, kCoord, kNow).ok());
  form.profile_ids = {a, b};
  file(m.db, form, kShopChatham, kNow);

  auto read = intel::get_form(m.db, form.form_id, kCoord, kNow);
  REQUIRE(read.ok());
  CHECK(read.value->form.profile_ids == std::vector<std::int64_t>{b});
  CHECK(read.value->form.still_sha256s == std::vector<std::string>{sha('b'), sha('a')});
  CHECK(read.value->reporter_id == kShopChatham.id);
  CHECK(read.value->reporter_member == kShopChatham.member);
  CHECK(read.value->reporter_role == "shop");
}

TEST_CASE("intel: who may read a form in full") {
  MemoryDb m;
  auto chatham = make_form("shop-chatham-01:0003", "chatham", kNow - kDay);
  chatham.unknown_offenders = {"tall, red cap"};
  file(m.db, chatham, kShopChatham, kNow);
  file(m.db, make_form("shop-strood-01:00001", "strood", kNow - kDay), kShopStrood, kNow);

  struct Case {
    const Identity* who;
    const char* form;
    Code expected;
  };
  const Case cases[] = {
      {&kCoord, "shop-chatham-01:0003", Code::ok},
      {&kPoliceChatham, "shop-chatham-01:0003", Code::ok},
      {&kPoliceChatham, "shop-strood-01:00001", Code::refused},
      {&kPoliceAll, "shop-strood-01:00001", Code::ok},
      {&kCctvAll, "shop-chatham-01:0003", Code::ok},
      {&kCctvStrood, "shop-chatham-01:0003", Code::refused},
      {&kShopChatham, "shop-chatham-01:0003", Code::ok},
      {&kShopChatham2, "shop-chatham-01:0003", Code::refused},  // same town, other member
      {&kShopStrood, "shop-chatham-01:0003", Code::refused},
      {&kHub, "shop-chatham-01:0003", Code::refused},
      {&kCoord, "no-such-form-1", Code::not_found},
  };
  for (const auto& c : cases) {
    const auto before = audit_rows(m.db, "form", c.form).size();
    auto read = intel::get_form(m.db, c.form, *c.who, kNow + 5);
    CAPTURE(c.who->id);
    CAPTURE(c.form);
    CHECK(read.status.code == c.expected);
    CHECK(read.value.has_value() == (c.expected == Code::ok));
    const auto rows = audit_rows(m.db, "form", c.form);
    if (c.expected == Code::ok) {
      // Every successful read leaves an audit row naming the reader.
      REQUIRE(rows.size() == before + 1);
      CHECK(rows.back().entry.action == "read");
      CHECK(rows.back().entry.actor_id == c.who->id);
      CHECK(rows.back().entry.at_ms == kNow + 5);
      if (read.value->form.form_id == chatham.form_id) {
        CHECK(read.value->form.unknown_offenders == chatham.unknown_offenders);
      }
    } else {
      CHECK(rows.size() == before);
    }
  }
  CHECK(audit::verify(m.db).ok);
}

TEST_CASE("intel: listing forms shows each role only what it may see") {
  MemoryDb m;
  file(m.db, make_form("chatham-boots-1", "chatham", kNow - 3 * kDay), kShopChatham, kNow);
  file(m.db, make_form("chatham-boots-2", "chatham", kNow - 1 * kDay, Category::violence_or_threats),
       kShopChatham, kNow);
  file(m.db, make_form("chatham-greggs-1", "chatham", kNow - 2 * kDay), kShopChatham2, kNow);
  file(m.db, make_form("strood-coop-1", "strood", kNow - 4 * kDay), kShopStrood, kNow);
  file(m.db, make_form("strood-cctv-1", "strood", kNow - 5 * kDay), kCctvStrood, kNow);

  auto list = [&](const Identity& who, intel::FormFilter filter = {}) {
    return intel::list_forms(m.db, filter, who, kNow);
  };

  SUBCASE("coordinators see every form, newest incident first") {
    auto all = list(kCoord);
    REQUIRE(all.ok());
    CHECK(ids_of(*all.value) == std::vector<std::string>{"chatham-boots-2", "chatham-greggs-1",
                                                         "chatham-boots-1", "strood-coop-1",
                                                         "strood-cctv-1"});
    CHECK((*all.value)[0].category == Category::violence_or_threats);
    CHECK((*all.value)[0].reporter_member == kShopChatham.member);
  }
  SUBCASE("a Strood shop sees only its own forms, never Chatham's") {
    auto strood = list(kShopStrood);
    REQUIRE(strood.ok());
    CHECK(ids_of(*strood.value) == std::vector<std::string>{"strood-coop-1"});
    intel::FormFilter chatham;
    chatham.town = "chatham";
    auto asked = list(kShopStrood, chatham);
    CHECK(asked.status.code == Code::refused);
    CHECK_FALSE(asked.value);
  }
  SUBCASE("a Chatham shop sees its own member's forms, not its neighbour's") {
    auto boots = list(kShopChatham);
    REQUIRE(boots.ok());
    CHECK(ids_of(*boots.value) == std::vector<std::string>{"chatham-boots-2", "chatham-boots-1"});
  }
  SUBCASE("police of Chatham see Chatham only; police of all towns see all") {
    auto chatham = list(kPoliceChatham);
    REQUIRE(chatham.ok());
    CHECK(ids_of(*chatham.value) == std::vector<std::string>{"chatham-boots-2",
                                                             "chatham-greggs-1",
                                                             "chatham-boots-1"});
    intel::FormFilter strood;
    strood.town = "strood";
    CHECK(list(kPoliceChatham, strood).status.code == Code::refused);
    auto all_strood = list(kPoliceAll, strood);
    REQUIRE(all_strood.ok());
    CHECK(ids_of(*all_strood.value) == std::vector<std::string>{"strood-coop-1", "strood-cctv-1"});
    CHECK(list(kCctvAll).value->size() == 5);
    CHECK(ids_of(*list(kCctvStrood).value) ==
          std::vector<std::string>{"strood-coop-1", "strood-cctv-1"});
  }
  SUBCASE("the hub lists nothing") { CHECK(list(kHub).status.code == Code::refused); }
  SUBCASE("filters: time window, category, unreviewed, limit") {
    intel::FormFilter window;
    window.since_ms = kNow - 3 * kDay;
    window.until_ms = kNow - 1 * kDay;  // exclusive
    CHECK(ids_of(*list(kCoord, window).value) ==
          std::vector<std::string>{"chatham-greggs-1", "chatham-boots-1"});
    intel::FormFilter violent;
    violent.category = Category::violence_or_threats;
    CHECK(ids_of(*list(kCoord, violent).value) == std::vector<std::string>{"chatham-boots-2"});
    intel::FormFilter limited;
    limited.limit = 2;
    CHECK(list(kCoord, limited).value->size() == 2);

    REQUIRE(intel::mark_reviewed(m.db, "chatham-greggs-1", kCoord, kNow).ok());
    intel::FormFilter unreviewed;
    unreviewed.unreviewed_only = true;
    auto open = list(kCoord, unreviewed);
    CHECK(open.value->size() == 4);
    CHECK(std::none_of(open.value->begin(), open.value->end(),
                       [](const auto& s) { return s.form_id == "chatham-greggs-1"; }));
  }
  SUBCASE("a listing is audited as one row") {
    const auto before = audit_count(m.db);
    REQUIRE(list(kPoliceChatham).ok());
    auto rows = audit_rows(m.db, "form", "list");
    REQUIRE(rows.size() == 1);
    CHECK(audit_count(m.db) == before + 1);
    CHECK(rows[0].entry.actor_id == kPoliceChatham.id);
    CHECK(rows[0].entry.detail.find("listed 3") != std::string::npos);
  }
}

TEST_CASE("intel: only coordinators mark forms reviewed, once") {
  MemoryDb m;
  file(m.db, make_form("chatham-boots-1", "chatham", kNow - kDay), kShopChatham, kNow);
  CHECK(intel::mark_reviewed(m.db, "chatham-boots-1", kShopChatham, kNow).code == Code::refused);
  CHECK(intel::mark_reviewed(m.db, "chatham-boots-1", kPoliceAll, kNow).code == Code::refused);
  CHECK(intel::mark_reviewed(m.db, "missing-form", kCoord, kNow).code == Code::not_found);
  REQUIRE(intel::mark_reviewed(m.db, "chatham-boots-1", kCoord, kNow + 10).ok());
  REQUIRE(intel::mark_reviewed(m.db, "chatham-boots-1", kCoord2, kNow + 20).ok());
  auto read = intel::get_form(m.db, "chatham-boots-1", kCoord, kNow);
  CHECK(read.value->reviewed_at_ms == kNow + 10);
  CHECK(read.value->reviewed_by == kCoord.id);
  auto rows = audit_rows(m.db, "form", "chatham-boots-1");
  CHECK(std::count_if(rows.begin(), rows.end(),
                      [](const auto& r) { return r.entry.action == "update"; }) == 1);
}

// ---- profiles ---------------------------------------------------------------------------------

TEST_CASE("intel: profiles are created and changed by coordinators only, with rules") {
  MemoryDb m;
  intel::ProfileInput input;
  input.name = "John Smith";
  input.aliases = {"Smithy", "JS"};
  CHECK(intel::create_profile(m.db, input, kShopChatham, kNow).status.code == Code::refused);
  CHECK(intel::create_profile(m.db, input, kPoliceAll, kNow).status.code == Code::refused);
  CHECK(intel::create_profile(m.db, input, kCctvAll, kNow).status.code == Code::refused);

  auto bad = input;
  bad.name = "";
  CHECK(intel::create_profile(m.db, bad, kCoord, kNow).status.error == "name: required");
  bad.name = std::string(201, 'n');
  CHECK(intel::create_profile(m.db, bad, kCoord, kNow).status.error.rfind("name:", 0) == 0);
  bad = input;
  bad.aliases = {"Smithy", "Smithy"};
  CHECK(intel::create_profile(m.db, bad, kCoord, kNow).status.error == "aliases[1]: listed twice");
  bad = input;
  bad.description = std::string(4001, 'd');
  CHECK(intel::create_profile(m.db, bad, kCoord, kNow).status.code == Code::invalid);
  CHECK(count(m.db, "SELECT count(*) FROM profiles") == 0);

  auto created = intel::create_profile(m.db, input, kCoord, kNow);
  REQUIRE(created.ok());
  const auto id = *created.value;
  CHECK(audit_rows(m.db, "profile", std::to_string(id)).size() == 1);

  intel::ProfileEdit edit;
  edit.name = "John Smyth";
  edit.aliases = std::vector<std::string>{"JS"};
  edit.weapons = true;
  CHECK(intel::edit_profile(m.db, id, edit, kPoliceAll, kNow).code == Code::refused);
  REQUIRE(intel::edit_profile(m.db, id, edit, kCoord, kNow + 1).ok());
  CHECK(intel::edit_profile(m.db, id, {}, kCoord, kNow).code == Code::invalid);
  intel::ProfileEdit bad_edit;
  bad_edit.name = "";
  CHECK(intel::edit_profile(m.db, id, bad_edit, kCoord, kNow).error == "name: required");

  auto read = intel::get_profile(m.db, id, kCoord, kNow + 2);
  REQUIRE(read.ok());
  CHECK(read.value->name == "John Smyth");
  CHECK(read.value->aliases == std::vector<std::string>{"JS"});
  CHECK(read.value->weapons);
  CHECK_FALSE(read.value->violent);
  CHECK(read.value->updated_at_ms == kNow + 1);
  auto rows = audit_rows(m.db, "profile", std::to_string(id));
  REQUIRE(rows.size() == 3);  // create, update, read
  CHECK(rows[1].entry.action == "update");
  CHECK(rows[1].entry.detail == "changed name, aliases, weapons=1");
  // Names never go into the audit log (it outlives retention).
  for (const auto& row : rows) {
    CHECK(row.entry.detail.find("Smith") == std::string::npos);
    CHECK(row.entry.detail.find("Smyth") == std::string::npos);
  }
}

TEST_CASE("intel: a profile is full for coordinators, a summary for police and CCTV, refused to shops") {
  MemoryDb m;
  const auto id = new_profile(m.db, "Kevin Jones", kNow - 10 * kDay, true, false, {"Kev"});
  add_blob(m.db, sha('e'), kNow - 10 * kDay);
  REQUIRE(intel::add_profile_photo(m.db, id, sha('e'), kCoord, kNow - 10 * kDay).ok());
  auto f1 = make_form("chatham-boots-1", "chatham", kNow - 9 * kDay, Category::theft_from_shop);
  auto f2 = make_form("strood-coop-001", "strood", kNow - 2 * kDay, Category::violence_or_threats);
  f1.profile_ids = {id};
  file(m.db, f1, kShopChatham, kNow - 9 * kDay);
  file(m.db, f2, kShopStrood, kNow - 2 * kDay);
  REQUIRE(intel::link_form(m.db, f2.form_id, id, kCoord, kNow - kDay).ok());
  const auto notice = add_notice(m.db, id, "proposed");

  SUBCASE("a coordinator reads everything") {
    auto read = intel::get_profile(m.db, id, kCoord, kNow);
    REQUIRE(read.ok());
    const auto& p = *read.value;
    CHECK_FALSE(p.summary);
    CHECK(p.name == "Kevin Jones");
    CHECK(p.aliases == std::vector<std::string>{"Kev"});
    CHECK(p.violent);
    CHECK(p.towns == std::vector<std::string>{"chatham", "strood"});
    CHECK(p.first_seen_ms == kNow - 9 * kDay);
    CHECK(p.last_seen_ms == kNow - 2 * kDay);
    CHECK(p.photo_sha256s == std::vector<std::string>{sha('e')});
    REQUIRE(p.incidents.size() == 2);
    CHECK(p.incidents[0].form_id == "chatham-boots-1");
    CHECK(p.incidents[1].form_id == "strood-coop-001");
    CHECK(p.incidents[1].category == Category::violence_or_threats);
    REQUIRE(p.notices.size() == 1);
    CHECK(p.notices[0].notice_id == notice);
    CHECK(p.notices[0].state == "proposed");
    CHECK(p.created_by == kCoord.id);
    auto rows = audit_rows(m.db, "profile", std::to_string(id));
    CHECK(rows.back().entry.action == "read");
    CHECK(rows.back().entry.detail == "full");
  }
  SUBCASE("police and CCTV read a summary without the incident list") {
    for (const Identity* who : {&kPoliceChatham, &kPoliceAll, &kCctvAll, &kCctvStrood}) {
      CAPTURE(who->id);
      auto read = intel::get_profile(m.db, id, *who, kNow);
      REQUIRE(read.ok());
      const auto& p = *read.value;
      CHECK(p.summary);
      CHECK(p.name == "Kevin Jones");
      CHECK(p.aliases == std::vector<std::string>{"Kev"});
      CHECK(p.description == "Physical description of Kevin Jones");
      CHECK(p.violent);
      CHECK(p.towns == std::vector<std::string>{"chatham", "strood"});
      CHECK(p.last_seen_ms == kNow - 2 * kDay);
      CHECK(p.photo_sha256s == std::vector<std::string>{sha('e')});
      CHECK(p.incidents.empty());
      CHECK(p.notices.empty());
      CHECK_FALSE(p.first_seen_ms);
      CHECK(p.created_by.empty());
      auto rows = audit_rows(m.db, "profile", std::to_string(id));
      CHECK(rows.back().entry.actor_id == who->id);
      CHECK(rows.back().entry.detail == "summary");
    }
  }
  SUBCASE("a shop is refused, and the refusal reads nothing") {
    const auto before = audit_count(m.db);
    for (const Identity* who : {&kShopChatham, &kShopStrood}) {
      auto read = intel::get_profile(m.db, id, *who, kNow);
      CHECK(read.status.code == Code::refused);
      CHECK(read.status.error == "a shop may not read offender profiles");
      CHECK_FALSE(read.value);
      CHECK(intel::list_profiles(m.db, {}, *who, kNow).status.code == Code::refused);
    }
    CHECK(intel::get_profile(m.db, id, kHub, kNow).status.code == Code::refused);
    CHECK(audit_count(m.db) == before);
  }
  SUBCASE("an unknown profile is not found") {
    CHECK(intel::get_profile(m.db, 4242, kCoord, kNow).status.code == Code::not_found);
  }
}

TEST_CASE("intel: forms are linked and unlinked by coordinators, each change audited") {
  MemoryDb m;
  file(m.db, make_form("chatham-boots-1", "chatham", kNow - kDay), kShopChatham, kNow);
  const auto id = new_profile(m.db, "Lee Brown", kNow);

  CHECK(intel::link_form(m.db, "chatham-boots-1", id, kPoliceAll, kNow).code == Code::refused);
  CHECK(intel::link_form(m.db, "chatham-boots-1", id, kShopChatham, kNow).code == Code::refused);
  CHECK(intel::link_form(m.db, "no-such-form", id, kCoord, kNow).code == Code::not_found);
  CHECK(intel::link_form(m.db, "chatham-boots-1", 999, kCoord, kNow).code == Code::not_found);
  REQUIRE(intel::link_form(m.db, "chatham-boots-1", id, kCoord, kNow + 1).ok());
  CHECK(intel::link_form(m.db, "chatham-boots-1", id, kCoord, kNow + 2).code == Code::invalid);
  CHECK(count(m.db, "SELECT count(*) FROM form_profiles") == 1);
  CHECK(count(m.db, "SELECT linked_at_ms FROM form_profiles") == kNow + 1);

  REQUIRE(intel::unlink_form(m.db, "chatham-boots-1", id, kCoord, kNow + 3).ok());
  CHECK(intel::unlink_form(m.db, "chatham-boots-1", id, kCoord, kNow + 4).code == Code::invalid);
  CHECK(count(m.db, "SELECT count(*) FROM form_profiles") == 0);

  auto rows = audit_rows(m.db, "profile", std::to_string(id));
  REQUIRE(rows.size() == 3);  // create, link, unlink
  CHECK(rows[1].entry.action == "link");
  CHECK(rows[1].entry.detail == "form chatham-boots-1");
  CHECK(rows[2].entry.action == "unlink");

  auto from_form = intel::create_profile_from_form(m.db, "chatham-boots-1",
                                                   intel::ProfileInput{"Unknown male 1", {}, "", false, false},
                                                   kCoord, kNow + 5);
  REQUIRE(from_form.ok());
  auto read = intel::get_profile(m.db, *from_form.value, kCoord, kNow + 6);
  REQUIRE(read.value->incidents.size() == 1);
  CHECK(read.value->incidents[0].form_id == "chatham-boots-1");
  CHECK(intel::create_profile_from_form(m.db, "no-such-form", intel::ProfileInput{"X", {}, "", false, false},
                                        kCoord, kNow)
            .status.code == Code::not_found);
  CHECK(count(m.db, "SELECT count(*) FROM profiles") == 2);
}

TEST_CASE("intel: merging moves links, aliases, photos and notices and keeps both histories") {
  MemoryDb m;
  const auto a = new_profile(m.db, "Dean Carter", kNow, true, false, {"Deano", "DC"});
  const auto b = new_profile(m.db, "Dean Cartwright", kNow, false, true, {"DC"});
  add_blob(m.db, sha('1'), kNow);
  add_blob(m.db, sha('2'), kNow);
  REQUIRE(intel::add_profile_photo(m.db, a, sha('1'), kCoord, kNow).ok());
  REQUIRE(intel::add_profile_photo(m.db, b, sha('2'), kCoord, kNow).ok());
  auto shared = make_form("chatham-boots-1", "chatham", kNow - 3 * kDay);
  shared.profile_ids = {a, b};
  file(m.db, shared, kShopChatham, kNow);
  auto only_a = make_form("chatham-boots-2", "chatham", kNow - 2 * kDay);
  only_a.profile_ids = {a};
  file(m.db, only_a, kShopChatham, kNow);
  const auto notice = add_notice(m.db, a, "active");

  CHECK(intel::merge_profiles(m.db, a, a, kCoord, kNow).code == Code::invalid);
  CHECK(intel::merge_profiles(m.db, a, b, kPoliceAll, kNow).code == Code::refused);
  CHECK(intel::merge_profiles(m.db, a, 999, kCoord, kNow).code == Code::not_found);
  REQUIRE(intel::merge_profiles(m.db, a, b, kCoord, kNow + 100).ok());

  auto merged = intel::get_profile(m.db, b, kCoord, kNow + 200);
  REQUIRE(merged.ok());
  const auto& p = *merged.value;
  CHECK(p.name == "Dean Cartwright");
  CHECK(p.aliases == std::vector<std::string>{"DC", "Dean Carter", "Deano"});
  CHECK(p.violent);  // from a
  CHECK(p.weapons);  // b's own
  CHECK(p.photo_sha256s.size() == 2);
  REQUIRE(p.incidents.size() == 2);  // the shared form once, and a's own
  CHECK(p.notices.size() == 1);
  CHECK(p.notices[0].notice_id == notice);
  CHECK(p.merged_from == std::vector<std::int64_t>{a});
  CHECK(count(m.db, "SELECT count(*) FROM form_profiles WHERE form_id = 'chatham-boots-1'") == 1);

  // a stays as history: its row, name and description, pointing at b.
  auto old = intel::get_profile(m.db, a, kCoord, kNow + 200);
  REQUIRE(old.ok());
  CHECK(old.value->name == "Dean Carter");
  CHECK(old.value->merged_into == b);
  CHECK(old.value->incidents.empty());
  CHECK(old.value->aliases.empty());

  // Neither side may be merged again, nor a merged profile changed or linked.
  const auto c = new_profile(m.db, "Someone Else", kNow);
  CHECK(intel::merge_profiles(m.db, a, c, kCoord, kNow).code == Code::invalid);
  CHECK(intel::merge_profiles(m.db, c, a, kCoord, kNow).code == Code::invalid);
  CHECK(intel::link_form(m.db, "chatham-boots-2", a, kCoord, kNow).code == Code::invalid);
  intel::ProfileEdit edit;
  edit.name = "renamed";
  CHECK(intel::edit_profile(m.db, a, edit, kCoord, kNow).code == Code::invalid);

  auto from_rows = audit_rows(m.db, "profile", std::to_string(a));
  auto into_rows = audit_rows(m.db, "profile", std::to_string(b));
  CHECK(std::any_of(from_rows.begin(), from_rows.end(), [&](const auto& r) {
    return r.entry.action == "merge" && r.entry.detail == "merged into " + std::to_string(b);
  }));
  CHECK(std::any_of(into_rows.begin(), into_rows.end(), [&](const auto& r) {
    return r.entry.action == "merge" && r.entry.detail == "merged from " + std::to_string(a);
  }));

  // Lists hide merged profiles unless asked.
  auto listed = intel::list_profiles(m.db, {}, kCoord, kNow);
  REQUIRE(listed.ok());
  CHECK(listed.value->size() == 2);
  intel::ProfileFilter with_merged;
  with_merged.include_merged = true;
  CHECK(intel::list_profiles(m.db, with_merged, kCoord, kNow).value->size() == 3);
}

TEST_CASE("intel: profiles are listed by name or alias for coordinators, police and CCTV") {
  MemoryDb m;
  const auto a = new_profile(m.db, "Gary Mills", kNow, false, false, {"Gaz"});
  new_profile(m.db, "Tina Marsh", kNow);
  auto f = make_form("strood-coop-001", "strood", kNow - kDay);
  f.profile_ids = {a};
  file(m.db, f, kShopStrood, kNow);

  intel::ProfileFilter search;
  search.text = "gAz";
  for (const Identity* who : {&kCoord, &kPoliceChatham, &kCctvAll}) {
    auto found = intel::list_profiles(m.db, search, *who, kNow);
    REQUIRE(found.ok());
    REQUIRE(found.value->size() == 1);
    const auto& item = (*found.value)[0];
    CHECK(item.profile_id == a);
    CHECK(item.aliases == std::vector<std::string>{"Gaz"});
    CHECK(item.towns == std::vector<std::string>{"strood"});
    CHECK(item.last_seen_ms == kNow - kDay);
  }
  search.text = "MARSH";
  CHECK(intel::list_profiles(m.db, search, kCoord, kNow).value->size() == 1);
  search.text = "%";  // not a pattern
  CHECK(intel::list_profiles(m.db, search, kCoord, kNow).value->empty());
  auto rows = audit_rows(m.db, "profile", "list");
  REQUIRE(rows.size() == 5);
  CHECK(rows[0].entry.detail.find("gAz") == std::string::npos);
}

// ---- prolific ranking and exclusion candidates --------------------------------------------------

namespace {

// A generated partnership with known answers. Incidents are (member, days ago, violent?):
//   A  5 in the window at 3 members, 2 violent          score (5 + 2·2)        = 9
//   D  4 at 2 members, flagged violent, ACTIVE notice   score 4 × 1.5          = 6
//   I  3 at 3 members, PROPOSED notice                  score 3
//   H  3 at 2 members, EXPIRED notice                   score 3
//   B  3 at 1 member                                    score 3
//   E  2 at 2 members, flagged weapons                  score 2 × 1.5          = 3
//   C  3 at 2 members, but one 13 months old: 2 in the window at 2 members, score 2
//   G  1 incident 400 days ago only                     not ranked
// Ranking: A, D, I, H, B, E, C (ties on score broken by incidents, then members).
struct Partnership {
  MemoryDb m;
  std::int64_t a = 0, b = 0, c = 0, d = 0, e = 0, g = 0, h = 0, i = 0;
  std::vector<Identity> members;
  int seq = 0;

  Partnership() {
    for (int k = 0; k < 5; ++k) {
      members.push_back(person(Role::shop, "chatham", "shop-chatham-0" + std::to_string(k),
                               "Member " + std::to_string(k)));
    }
    a = new_profile(m.db, "A", kNow - 500 * kDay);
    b = new_profile(m.db, "B", kNow - 500 * kDay);
    c = new_profile(m.db, "C", kNow - 500 * kDay);
    d = new_profile(m.db, "D", kNow - 500 * kDay, true, false);
    e = new_profile(m.db, "E", kNow - 500 * kDay, false, true);
    g = new_profile(m.db, "G", kNow - 500 * kDay);
    h = new_profile(m.db, "H", kNow - 500 * kDay);
    i = new_profile(m.db, "I", kNow - 500 * kDay);
    incidents(a, {{0, 10, true}, {0, 40, false}, {1, 100, true}, {1, 200, false}, {2, 300, false}});
    incidents(d, {{0, 5, false}, {0, 6, false}, {1, 7, false}, {1, 8, false}});
    incidents(i, {{0, 20, false}, {1, 21, false}, {2, 22, false}});
    incidents(h, {{3, 30, false}, {4, 31, false}, {4, 32, false}});
    incidents(b, {{1, 50, false}, {1, 51, false}, {1, 52, false}});
    incidents(e, {{3, 60, false}, {4, 61, false}});
    incidents(c, {{0, 10, false}, {1, 20, false}, {1, 395, false}});
    incidents(g, {{2, 400, false}});
    add_notice(m.db, d, "active");
    add_notice(m.db, i, "proposed");
    add_notice(m.db, h, "expired");
  }

  struct Incident {
    int member;
    int days_ago;
    bool violent;
  };
  void incidents(std::int64_t profile, std::initializer_list<Incident> list) {
    for (const auto& inc : list) {
      const auto& who = members[static_cast<std::size_t>(inc.member)];
      auto f = make_form(who.id + ":" + std::to_string(++seq), "chatham",
                         kNow - inc.days_ago * kDay,
                         inc.violent ? Category::violence_or_threats : Category::theft_from_shop);
      f.profile_ids = {profile};
      file(m.db, f, who, kNow - inc.days_ago * kDay);
    }
  }
};

std::vector<std::int64_t> profile_ids(const std::vector<intel::ProlificEntry>& list) {
  std::vector<std::int64_t> out;
  for (const auto& e : list) out.push_back(e.profile_id);
  return out;
}

}  // namespace

TEST_CASE("intel: prolific ranking on a generated partnership gives the known order") {
  Partnership p;
  auto ranked = intel::prolific(p.m.db, {}, kCoord, kNow);
  REQUIRE(ranked.ok());
  const auto& r = *ranked.value;
  CHECK(profile_ids(r) == std::vector<std::int64_t>{p.a, p.d, p.i, p.h, p.b, p.e, p.c});

  REQUIRE(r.size() == 7);
  CHECK(r[0].name == "A");
  CHECK(r[0].incidents == 5);
  CHECK(r[0].violent_incidents == 2);
  CHECK(r[0].members == 3);
  CHECK(r[0].score == 9.0);
  CHECK(r[0].last_seen_ms == kNow - 10 * kDay);
  CHECK(r[1].score == 6.0);  // D: flagged violent, ×1.5
  CHECK(r[1].violent);
  CHECK(r[2].members == 3);  // I before H and B on members
  CHECK(r[3].members == 2);
  CHECK(r[4].members == 1);
  CHECK(r[5].score == 3.0);  // E: flagged weapons, ×1.5
  CHECK(r[5].incidents == 2);
  CHECK(r[6].incidents == 2);  // C: the 13-month-old incident is outside the window
  CHECK(r[6].members == 2);

  intel::RankingOptions top2;
  top2.limit = 2;
  CHECK(profile_ids(*intel::prolific(p.m.db, top2, kCoord, kNow).value) ==
        std::vector<std::int64_t>{p.a, p.d});

  // A longer window brings in C's old incident and G.
  intel::RankingOptions two_years;
  two_years.window_ms = 730 * kDay;
  auto wide = intel::prolific(p.m.db, two_years, kCoord, kNow);
  CHECK(wide.value->size() == 8);
  CHECK(std::any_of(wide.value->begin(), wide.value->end(),
                    [&](const auto& e) { return e.profile_id == p.c && e.incidents == 3; }));

  // Merged profiles are not ranked on their own.
  REQUIRE(intel::merge_profiles(p.m.db, p.b, p.a, kCoord, kNow).ok());
  auto after = intel::prolific(p.m.db, {}, kCoord, kNow);
  CHECK(after.value->front().profile_id == p.a);
  CHECK(after.value->front().incidents == 8);
  CHECK(std::none_of(after.value->begin(), after.value->end(),
                     [&](const auto& e) { return e.profile_id == p.b; }));
}

TEST_CASE("intel: exclusion candidates on a generated partnership are exactly the known ones") {
  Partnership p;
  auto candidates = intel::exclusion_candidates(p.m.db, {}, kCoord, kNow);
  REQUIRE(candidates.ok());
  // D has an active notice and I a proposed one; B is at one member; C has 2 in the window.
  // H's notice expired, so H is a candidate again.
  CHECK(profile_ids(*candidates.value) == std::vector<std::int64_t>{p.a, p.h});

  intel::CandidateOptions looser;
  looser.min_incidents = 2;
  looser.min_members = 2;
  CHECK(profile_ids(*intel::exclusion_candidates(p.m.db, looser, kCoord, kNow).value) ==
        std::vector<std::int64_t>{p.a, p.h, p.e, p.c});
  intel::CandidateOptions one_member;
  one_member.min_members = 1;
  CHECK(profile_ids(*intel::exclusion_candidates(p.m.db, one_member, kCoord, kNow).value) ==
        std::vector<std::int64_t>{p.a, p.h, p.b});

  // A disputed or approved notice also takes a profile off the list.
  add_notice(p.m.db, p.a, "disputed");
  CHECK(profile_ids(*intel::exclusion_candidates(p.m.db, {}, kCoord, kNow).value) ==
        std::vector<std::int64_t>{p.h});
  add_notice(p.m.db, p.h, "approved");
  CHECK(intel::exclusion_candidates(p.m.db, {}, kCoord, kNow).value->empty());
}

TEST_CASE("intel: ranking and candidates are for coordinators only, and audited") {
  Partnership p;
  for (const Identity* who : {&kShopChatham, &kPoliceAll, &kCctvAll, &kHub}) {
    CHECK(intel::prolific(p.m.db, {}, *who, kNow).status.code == Code::refused);
    CHECK(intel::exclusion_candidates(p.m.db, {}, *who, kNow).status.code == Code::refused);
  }
  const auto before = audit_count(p.m.db);
  REQUIRE(intel::prolific(p.m.db, {}, kCoord, kNow).ok());
  REQUIRE(intel::exclusion_candidates(p.m.db, {}, kCoord, kNow).ok());
  CHECK(audit_count(p.m.db) == before + 2);
  CHECK(audit_rows(p.m.db, "profile", "prolific").size() == 1);
  CHECK(audit_rows(p.m.db, "profile", "candidates").size() == 1);
}

// ---- retention --------------------------------------------------------------------------------

namespace {

// A generated store two years and more old. Received 800 days ago unless said otherwise.
//   old-free          no links                                  -> purged (and its still A)
//   old-active        linked to P_active (active notice)        -> stays
//   old-disputed      linked to P_disputed (disputed notice)    -> stays
//   old-cited         cited by P_active's notice, not linked    -> stays
//   old-expired       linked to P_expired (expired notice)      -> purged
//   old-of-p-old      linked to P_old                           -> purged
//   recent-free       100 days old (its still B stays)          -> stays
//   recent-of-p-keep  100 days old, linked to P_keep            -> stays
// Profiles: P_old (updated 800 days ago, photo C) and P_old_merged (merged into it) -> purged;
// P_keep (old, but a recent form) stays; P_new (created 100 days ago) stays; P_expired stays
// (it has a notice record); P_active, P_disputed stay.
// Notice photos: P_expired's expired notice (photo D, nowhere else) -> unlinked, D deleted;
// a revoked notice of P_new with photo E, also P_new's profile photo -> unlinked, E kept.
// Blobs (named by their hex digit): F unreferenced for 2 days -> deleted; 9 unreferenced for an hour -> kept (grace).
struct OldStore {
  MemoryDb m;
  const std::int64_t old_time = kNow - 800 * kDay;
  const std::int64_t recent = kNow - 100 * kDay;
  std::int64_t p_active = 0, p_disputed = 0, p_expired = 0, p_old = 0, p_old_merged = 0,
               p_keep = 0, p_new = 0;
  std::int64_t n_active = 0, n_disputed = 0, n_expired = 0, n_revoked = 0;

  OldStore() {
    for (char c : {'a', 'b', 'c', 'd', 'e'}) add_blob(m.db, sha(c), old_time);
    add_blob(m.db, sha('f'), kNow - 2 * kDay);
    add_blob(m.db, sha('9'), kNow - 3'600'000);

    p_active = new_profile(m.db, "P active", old_time);
    p_disputed = new_profile(m.db, "P disputed", old_time);
    p_expired = new_profile(m.db, "P expired", old_time);
    p_old = new_profile(m.db, "P old", old_time);
    p_old_merged = new_profile(m.db, "P old merged", old_time);
    REQUIRE(intel::merge_profiles(m.db, p_old_merged, p_old, kCoord, old_time).ok());
    REQUIRE(intel::add_profile_photo(m.db, p_old, sha('c'), kCoord, old_time).ok());
    p_keep = new_profile(m.db, "P keep", old_time);
    p_new = new_profile(m.db, "P new", recent);
    REQUIRE(intel::add_profile_photo(m.db, p_new, sha('e'), kCoord, recent).ok());

    auto old_free = make_form("old-free-0001", "chatham", old_time);
    old_free.still_sha256s = {sha('a')};
    file(m.db, old_free, kShopChatham, old_time);
    linked("old-active-01", p_active, old_time);
    linked("old-disputed1", p_disputed, old_time);
    file(m.db, make_form("old-cited-001", "chatham", old_time), kShopChatham, old_time);
    linked("old-expired-1", p_expired, old_time);
    linked("old-of-p-old1", p_old, old_time);
    auto recent_free = make_form("recent-free-1", "chatham", recent);
    recent_free.still_sha256s = {sha('b')};
    file(m.db, recent_free, kShopChatham, recent);
    linked("recent-of-p-keep", p_keep, recent);

    n_active = add_notice(m.db, p_active, "active");
    SQLite::Statement cite(m.db,
                           "INSERT INTO notice_incidents (notice_id, form_id) VALUES (?, ?)");
    cite.bind(1, n_active);
    cite.bind(2, "old-cited-001");
    cite.exec();
    n_disputed = add_notice(m.db, p_disputed, "disputed");
    n_expired = add_notice(m.db, p_expired, "expired", sha('d'));
    n_revoked = add_notice(m.db, p_new, "revoked", sha('e'));
  }

  void linked(const std::string& id, std::int64_t profile, std::int64_t at) {
    auto f = make_form(id, "chatham", at);
    f.profile_ids = {profile};
    file(m.db, f, kShopChatham, at);
  }

  // Every row of every table, to show that a dry run changed nothing.
  std::vector<std::int64_t> counts() {
    std::vector<std::int64_t> out;
    for (const char* table :
         {"incident_forms", "form_stills", "form_profiles", "profiles", "profile_aliases",
          "profile_photos", "notices", "notice_incidents", "blobs", "audit_log"}) {
      out.push_back(count(m.db, std::string("SELECT count(*) FROM ") + table));
    }
    out.push_back(count(m.db, "SELECT count(*) FROM notices WHERE photo_sha256 IS NOT NULL"));
    return out;
  }
};

const std::vector<std::string> kPurgedForms{"old-expired-1", "old-free-0001", "old-of-p-old1"};

}  // namespace

TEST_CASE("intel: a dry-run purge reports what would go and changes nothing") {
  OldStore s;
  const auto before = s.counts();
  auto dry = intel::purge(s.m.db, kNow, {}, true, kHub);
  REQUIRE(dry.ok());
  const auto& r = *dry.value;
  CHECK(r.dry_run);
  CHECK(r.forms == kPurgedForms);
  CHECK(r.profiles == std::vector<std::int64_t>{s.p_old, s.p_old_merged});
  REQUIRE(r.notice_photos.size() == 2);
  CHECK(r.notice_photos[0].notice_id == s.n_expired);
  CHECK(r.notice_photos[0].sha256 == sha('d'));
  CHECK(r.notice_photos[1].notice_id == s.n_revoked);
  CHECK(r.notice_photos[1].sha256 == sha('e'));
  CHECK(r.blobs == std::vector<std::string>{sha('a'), sha('c'), sha('d'), sha('f')});
  CHECK(s.counts() == before);
  // The scratch tables are gone too.
  CHECK(count(s.m.db, "SELECT count(*) FROM sqlite_temp_master") == 0);
}

TEST_CASE("intel: a purge removes what must go and keeps what must stay") {
  OldStore s;
  auto dry = intel::purge(s.m.db, kNow, {}, true, kCoord);
  REQUIRE(dry.ok());
  auto done = intel::purge(s.m.db, kNow, {}, false, kCoord);
  REQUIRE(done.ok());
  const auto& r = *done.value;
  CHECK_FALSE(r.dry_run);
  // The dry run said exactly what the real run did.
  CHECK(r.forms == dry.value->forms);
  CHECK(r.profiles == dry.value->profiles);
  CHECK(r.blobs == dry.value->blobs);
  CHECK(r.notice_photos.size() == dry.value->notice_photos.size());

  auto has_form = [&](const char* id) {
    return count(s.m.db, "SELECT count(*) FROM incident_forms WHERE form_id = ?", id) == 1;
  };
  for (const auto& gone : kPurgedForms) CHECK_FALSE(has_form(gone.c_str()));
  for (const char* kept : {"old-active-01", "old-disputed1", "old-cited-001", "recent-free-1",
                           "recent-of-p-keep"}) {
    CHECK_MESSAGE(has_form(kept), kept);
  }
  CHECK(count(s.m.db, "SELECT count(*) FROM form_stills WHERE sha256 = ?", sha('a')) == 0);
  CHECK(count(s.m.db, "SELECT count(*) FROM notice_incidents") == 1);

  auto has_profile = [&](std::int64_t id) {
    return count(s.m.db, "SELECT count(*) FROM profiles WHERE profile_id = ?",
                 std::to_string(id)) == 1;
  };
  CHECK_FALSE(has_profile(s.p_old));
  CHECK_FALSE(has_profile(s.p_old_merged));
  for (auto kept : {s.p_active, s.p_disputed, s.p_expired, s.p_keep, s.p_new}) {
    CHECK(has_profile(kept));
  }
  CHECK(count(s.m.db, "SELECT count(*) FROM notices") == 4);  // records stay
  CHECK(count(s.m.db, "SELECT count(*) FROM notices WHERE photo_sha256 IS NOT NULL") == 0);

  auto has_blob = [&](char c) {
    return count(s.m.db, "SELECT count(*) FROM blobs WHERE sha256 = ?", sha(c)) == 1;
  };
  for (char gone : {'f', 'a', 'c', 'd'}) CHECK_FALSE(has_blob(gone));
  for (char kept : {'9', 'b', 'e'}) CHECK(has_blob(kept));  // e is still P_new's photo

  // Audited, by the coordinator, and the chain holds.
  auto purged = [&](const std::string& type, const std::string& id) {
    auto rows = audit_rows(s.m.db, type, id);
    return std::any_of(rows.begin(), rows.end(), [](const auto& row) {
      return row.entry.action == "purge" && row.entry.actor_id == kCoord.id;
    });
  };
  for (const auto& gone : kPurgedForms) CHECK(purged("form", gone));
  CHECK(purged("profile", std::to_string(s.p_old)));
  CHECK(purged("profile", std::to_string(s.p_old_merged)));
  CHECK(purged("photo", sha('d')));
  CHECK(purged("photo", sha('e')));
  CHECK(purged("photo", sha('f')));
  CHECK(audit::verify(s.m.db).ok);

  // Nothing is left to purge.
  auto again = intel::purge(s.m.db, kNow, {}, false, kHub);
  REQUIRE(again.ok());
  CHECK(again.value->forms.empty());
  CHECK(again.value->profiles.empty());
  CHECK(again.value->notice_photos.empty());
  CHECK(again.value->blobs.empty());
}

TEST_CASE("intel: only the hub or a coordinator may purge") {
  OldStore s;
  for (const Identity* who : {&kShopChatham, &kPoliceAll, &kCctvAll}) {
    CHECK(intel::purge(s.m.db, kNow, {}, true, *who).status.code == Code::refused);
  }
}

// ---- subject access ---------------------------------------------------------------------------

TEST_CASE("intel: a subject access export holds the profile, incidents, photos and who viewed them") {
  MemoryDb m;
  add_blob(m.db, sha('1'), kNow);
  add_blob(m.db, sha('2'), kNow);
  add_blob(m.db, sha('3'), kNow);
  const auto subject = new_profile(m.db, "Ryan Hughes", kNow - 50 * kDay, false, false, {"RH"});
  const auto earlier = new_profile(m.db, "R. Hughes", kNow - 60 * kDay);
  const auto other = new_profile(m.db, "Someone Else", kNow - 60 * kDay);
  REQUIRE(intel::add_profile_photo(m.db, subject, sha('1'), kCoord, kNow - 50 * kDay).ok());

  auto f1 = make_form("chatham-boots-1", "chatham", kNow - 40 * kDay, Category::theft_from_shop);
  f1.still_sha256s = {sha('2')};
  f1.profile_ids = {earlier};
  file(m.db, f1, kShopChatham, kNow - 40 * kDay);
  auto f2 = make_form("strood-coop-001", "strood", kNow - 30 * kDay, Category::violence_or_threats);
  f2.profile_ids = {subject};
  file(m.db, f2, kShopStrood, kNow - 30 * kDay);
  auto unrelated = make_form("chatham-boots-9", "chatham", kNow - 30 * kDay);
  unrelated.profile_ids = {other};
  file(m.db, unrelated, kShopChatham, kNow - 30 * kDay);
  REQUIRE(intel::merge_profiles(m.db, earlier, subject, kCoord, kNow - 20 * kDay).ok());

  const auto notice = add_notice(m.db, subject, "active", sha('3'));
  SQLite::Statement event(m.db,
                          "INSERT INTO notice_events (notice_id, from_state, to_state, by_id, "
                          "at_ms, reason) VALUES (?, 'approved', 'active', 'coord-02', ?, "
                          "'served in person')");
  event.bind(1, notice);
  event.bind(2, kNow - 10 * kDay);
  event.exec();

  // Who looked: a police officer (summary), a coordinator (full), a CCTV operator (a form).
  REQUIRE(intel::get_profile(m.db, subject, kPoliceChatham, kNow - 5 * kDay).ok());
  REQUIRE(intel::get_profile(m.db, subject, kCoord2, kNow - 4 * kDay).ok());
  REQUIRE(intel::get_form(m.db, "chatham-boots-1", kCctvAll, kNow - 3 * kDay).ok());

  CHECK(intel::gather_sar(m.db, subject, kPoliceAll, kNow).status.code == Code::refused);
  CHECK(intel::gather_sar(m.db, subject, kShopChatham, kNow).status.code == Code::refused);
  CHECK(intel::gather_sar(m.db, 999, kCoord, kNow).status.code == Code::not_found);

  auto sar = intel::gather_sar(m.db, earlier, kCoord, kNow);  // a merged id finds the person
  REQUIRE(sar.ok());
  CHECK(sar.value->profile_id == subject);
  CHECK(sar.value->photo_sha256s == std::vector<std::string>{sha('1'), sha('2'), sha('3')});

  const auto doc = nlohmann::json::parse(sar.value->json);
  CHECK(doc["profile"]["profile_id"] == subject);
  CHECK(doc["profile"]["name"] == "Ryan Hughes");
  CHECK(doc["profile"]["aliases"] == nlohmann::json({"R. Hughes", "RH"}));
  REQUIRE(doc["merged_profiles"].size() == 1);
  CHECK(doc["merged_profiles"][0]["name"] == "R. Hughes");
  CHECK(doc["merged_profiles"][0]["merged_into"] == subject);

  REQUIRE(doc["incidents"].size() == 2);
  CHECK(doc["incidents"][0]["form_id"] == "chatham-boots-1");
  CHECK(doc["incidents"][0]["description"] == f1.description);
  CHECK(doc["incidents"][0]["reporter_id"] == kShopChatham.id);
  CHECK(doc["incidents"][0]["stills"] == nlohmann::json({sha('2')}));
  CHECK(doc["incidents"][1]["form_id"] == "strood-coop-001");
  CHECK(doc["incidents"][1]["category"] == "violence_or_threats");

  REQUIRE(doc["notices"].size() == 1);
  CHECK(doc["notices"][0]["state"] == "active");
  CHECK(doc["notices"][0]["photo_sha256"] == sha('3'));
  REQUIRE(doc["notices"][0]["events"].size() == 1);
  CHECK(doc["notices"][0]["events"][0]["reason"] == "served in person");
  REQUIRE(doc["photos"].size() == 3);

  const auto& log = doc["access_log"];
  auto logged = [&](const std::string& actor, const std::string& action,
                    const std::string& type, const std::string& id) {
    return std::any_of(log.begin(), log.end(), [&](const auto& row) {
      return row["actor_id"] == actor && row["action"] == action && row["object_type"] == type &&
             row["object_id"] == id;
    });
  };
  CHECK(logged(kPoliceChatham.id, "read", "profile", std::to_string(subject)));
  CHECK(logged(kCoord2.id, "read", "profile", std::to_string(subject)));
  CHECK(logged(kCctvAll.id, "read", "form", "chatham-boots-1"));
  CHECK(logged(kShopStrood.id, "create", "form", "strood-coop-001"));
  CHECK(logged(kCoord.id, "merge", "profile", std::to_string(earlier)));
  CHECK(logged(kCoord.id, "update", "profile", std::to_string(subject)));  // photo added
  // Nothing about the unrelated person.
  CHECK_FALSE(logged(kShopChatham.id, "create", "form", "chatham-boots-9"));
  CHECK(sar.value->json.find("Someone Else") == std::string::npos);
  CHECK(sar.value->json.find("chatham-boots-9") == std::string::npos);

  // The export itself is audited.
  auto rows = audit_rows(m.db, "profile", std::to_string(subject));
  REQUIRE_FALSE(rows.empty());
  CHECK(rows.back().entry.action == "export");
  CHECK(rows.back().entry.actor_id == kCoord.id);
  CHECK(audit::verify(m.db).ok);
}
