#include "server/notice_store.hpp"

#include <doctest/doctest.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/identity.hpp"
#include "server/audit.hpp"
#include "server/notices.hpp"
#include "server/store.hpp"

namespace {

namespace n = saferlink::server::notices;
namespace store = saferlink::server::notice_store;
namespace audit = saferlink::server::audit;
using n::Action;
using n::Refusal;
using n::State;
using saferlink::Identity;
using saferlink::Role;

constexpr std::int64_t kDay = 24LL * 60 * 60 * 1000;
constexpr std::int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
const std::string kPhoto(64, 'a');

Identity coordinator(const std::string& id) {
  Identity who;
  who.id = id;
  who.role = Role::coordinator;
  who.town = "all";
  who.member = "Safer Medway";
  return who;
}

const Identity kA = coordinator("coord-a");
const Identity kB = coordinator("coord-b");

// An in-memory database as the store would have it, holding profile 7 (forms F-1..F-3 linked
// to it), profile 8 (merged into 7), profile 9 (no forms), an unlinked form F-4 and one photo.
struct Fixture {
  SQLite::Database db{":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE};
  Fixture() {
    db.exec("PRAGMA foreign_keys = ON");
    saferlink::server::migrate(db);
    db.exec(
        "INSERT INTO profiles (profile_id, name, created_at_ms, created_by, updated_at_ms) "
        "VALUES (7, 'Subject Seven', 0, 'coord-a', 0), (9, 'Subject Nine', 0, 'coord-a', 0);"
        "INSERT INTO profiles (profile_id, name, merged_into, created_at_ms, created_by, "
        "updated_at_ms) VALUES (8, 'Duplicate of Seven', 7, 0, 'coord-a', 0);"
        "INSERT INTO blobs (sha256, mime, size, stored_at_ms) VALUES ('" +
        kPhoto + "', 'image/jpeg', 1234, 0);");
    for (const char* form : {"F-1", "F-2", "F-3", "F-4"}) {
      SQLite::Statement insert(
          db,
          "INSERT INTO incident_forms (form_id, reporter_id, reporter_role, reporter_member, "
          "town, premises, occurred_at_ms, category, description, received_at_ms) VALUES "
          "(?, 'shop-1', 'shop', 'Boots', 'chatham', 'Pentagon Centre', 0, "
          "'theft_from_shop', 'took razors', 0)");
      insert.bind(1, form);
      insert.exec();
    }
    db.exec(
        "INSERT INTO form_profiles (form_id, profile_id, linked_at_ms, linked_by) VALUES "
        "('F-1', 7, 0, 'coord-a'), ('F-2', 7, 0, 'coord-a'), ('F-3', 7, 0, 'coord-a')");
  }

  std::int64_t count(const std::string& table) {
    return db.execAndGet("SELECT count(*) FROM " + table).getInt64();
  }

  // Proposes a notice on profile 7 citing F-1 and F-2 as coord-a at `at`; returns its id.
  std::int64_t propose(std::int64_t at = kT0) {
    const auto out = store::create(db, proposal(), kA, at, "prolific: 3 incidents");
    REQUIRE_MESSAGE(out.ok, out.refusal);
    return out.next.id;
  }

  // Proposes, approves and serves a notice at `served`; returns its id.
  std::int64_t active(std::int64_t served) {
    const std::int64_t id = propose(served - 2 * kDay);
    REQUIRE(store::apply(db, id, Action::approve, kB, served - kDay, "agreed").ok);
    REQUIRE(store::apply(db, id, Action::serve, kA, served, "served in person").ok);
    return id;
  }

  static n::Proposal proposal() {
    n::Proposal p;
    p.profile_id = 7;
    p.conditions = "Not to enter any member premises in Chatham.";
    p.towns = {"chatham"};
    p.photo_sha256 = kPhoto;
    p.cited_forms = {"F-1", "F-2"};
    return p;
  }
};

std::vector<audit::Row> notice_audit(SQLite::Database& db, std::int64_t id) {
  audit::Filter f;
  f.object_type = "notice";
  f.object_id = std::to_string(id);
  return audit::list(db, f);
}

}  // namespace

TEST_CASE("proposing stores the notice, its cited forms, its first event and an audit row") {
  Fixture f;
  const auto out = store::create(f.db, Fixture::proposal(), kA, kT0, "prolific: 3 incidents");
  REQUIRE(out.ok);
  CHECK(out.next.id > 0);
  CHECK(out.event.notice_id == out.next.id);

  const auto stored = store::load(f.db, out.next.id);
  REQUIRE(stored.has_value());
  CHECK(stored->id == out.next.id);
  CHECK(stored->profile_id == 7);
  CHECK(stored->state == State::proposed);
  CHECK(stored->conditions == "Not to enter any member premises in Chatham.");
  CHECK(stored->towns == std::vector<std::string>{"chatham"});
  CHECK(stored->photo_sha256 == kPhoto);
  CHECK(stored->proposed_by == "coord-a");
  CHECK(stored->proposed_at_ms == kT0);
  CHECK(stored->updated_at_ms == kT0);
  CHECK_FALSE(stored->approved_by.has_value());
  CHECK_FALSE(stored->expires_at_ms.has_value());
  CHECK(stored->cited_forms == std::vector<std::string>{"F-1", "F-2"});

  const auto history = store::events(f.db, out.next.id);
  REQUIRE(history.size() == 1);
  CHECK_FALSE(history[0].from.has_value());
  CHECK(history[0].to == State::proposed);
  CHECK(history[0].by_id == "coord-a");
  CHECK(history[0].at_ms == kT0);
  CHECK(history[0].reason == "prolific: 3 incidents");

  const auto rows = notice_audit(f.db, out.next.id);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].entry.action == "create");
  CHECK(rows[0].entry.actor_id == "coord-a");
  CHECK(rows[0].entry.actor_role == "coordinator");
  CHECK(rows[0].entry.at_ms == kT0);
  CHECK(rows[0].entry.detail ==
        "proposed for profile 7 citing 2 form(s): prolific: 3 incidents");
  CHECK(audit::verify(f.db).ok);
}

TEST_CASE("a proposal naming rows that do not fit is refused with a reason and stores nothing") {
  struct Case {
    const char* what;
    void (*change)(n::Proposal&);
    Refusal refused;
    std::string refusal;
  };
  const std::vector<Case> cases = {
      {"unknown profile", [](n::Proposal& p) { p.profile_id = 99; }, Refusal::not_found,
       "there is no profile 99"},
      {"merged profile", [](n::Proposal& p) { p.profile_id = 8; }, Refusal::invalid,
       "profile 8 was merged into profile 7; propose the notice against that one"},
      {"unknown form", [](n::Proposal& p) { p.cited_forms = {"F-1", "F-404"}; },
       Refusal::not_found, "there is no incident form \"F-404\""},
      {"form of someone else", [](n::Proposal& p) { p.cited_forms = {"F-4"}; }, Refusal::invalid,
       "incident form \"F-4\" is not linked to profile 7; link it first"},
      {"profile without those forms", [](n::Proposal& p) { p.profile_id = 9; }, Refusal::invalid,
       "incident form \"F-1\" is not linked to profile 9; link it first"},
      {"unknown photo", [](n::Proposal& p) { p.photo_sha256 = std::string(64, 'b'); },
       Refusal::not_found, "the hub holds no photo " + std::string(64, 'b')},
      {"no forms at all", [](n::Proposal& p) { p.cited_forms.clear(); }, Refusal::invalid,
       "a proposal must cite at least one incident form"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    Fixture f;
    n::Proposal p = Fixture::proposal();
    c.change(p);
    const auto out = store::create(f.db, p, kA, kT0, "prolific");
    CHECK_FALSE(out.ok);
    CHECK(out.refused == c.refused);
    CHECK(out.refusal == c.refusal);
    CHECK(f.count("notices") == 0);
    CHECK(f.count("notice_incidents") == 0);
    CHECK(f.count("notice_events") == 0);
    CHECK(f.count("audit_log") == 0);
  }
}

TEST_CASE("a proposal from a non-coordinator is refused and stores nothing") {
  Fixture f;
  Identity shop = kA;
  shop.id = "shop-1";
  shop.role = Role::shop;
  const auto out = store::create(f.db, Fixture::proposal(), shop, kT0, "ban him");
  CHECK_FALSE(out.ok);
  CHECK(out.refused == Refusal::not_allowed);
  CHECK(f.count("notices") == 0);
  CHECK(f.count("audit_log") == 0);
}

TEST_CASE("a profile with a live notice gets no second one until the first has ended") {
  Fixture f;
  const std::int64_t first = f.propose();
  const auto second = store::create(f.db, Fixture::proposal(), kB, kT0 + 1, "again");
  CHECK_FALSE(second.ok);
  CHECK(second.refused == Refusal::illegal);
  CHECK(second.refusal == "profile 7 already has notice " + std::to_string(first) +
                              " (proposed); revoke it or let it end first");
  CHECK(f.count("notices") == 1);

  REQUIRE(store::apply(f.db, first, Action::revoke, kB, kT0 + 2, "withdrawn").ok);
  const auto third = store::create(f.db, Fixture::proposal(), kB, kT0 + 3, "again");
  REQUIRE(third.ok);
  CHECK(third.next.id != first);
}

TEST_CASE("each transition applied persists the state, an event and an audit row") {
  Fixture f;
  const std::int64_t id = f.propose();
  struct Step {
    Action action;
    Identity by;
    std::int64_t at;
    const char* reason;
    State from;
    State to;
    const char* detail;
  };
  const std::vector<Step> steps = {
      {Action::approve, kB, kT0 + kDay, "agreed at panel", State::proposed, State::approved,
       "proposed\u2192approved: agreed at panel"},
      {Action::serve, kA, kT0 + 2 * kDay, "served in person", State::approved, State::active,
       "approved\u2192active: served in person"},
      {Action::dispute, kB, kT0 + 30 * kDay, "appeal lodged", State::active, State::disputed,
       "active\u2192disputed: appeal lodged"},
      {Action::resolve_active, kA, kT0 + 40 * kDay, "appeal dismissed", State::disputed,
       State::active, "disputed\u2192active: appeal dismissed"},
      {Action::revoke, kB, kT0 + 50 * kDay, "board decision 2026-02", State::active,
       State::revoked, "active\u2192revoked: board decision 2026-02"},
  };
  std::size_t done = 1;  // the proposal
  for (const Step& step : steps) {
    INFO(n::to_string(step.action));
    const auto out = store::apply(f.db, id, step.action, step.by, step.at, step.reason);
    REQUIRE_MESSAGE(out.ok, out.refusal);
    ++done;

    const auto stored = store::load(f.db, id);
    REQUIRE(stored.has_value());
    CHECK(stored->state == step.to);
    CHECK(stored->updated_at_ms == step.at);

    const auto history = store::events(f.db, id);
    REQUIRE(history.size() == done);
    CHECK(history.back().from == step.from);
    CHECK(history.back().to == step.to);
    CHECK(history.back().by_id == step.by.id);
    CHECK(history.back().at_ms == step.at);
    CHECK(history.back().reason == step.reason);

    const auto rows = notice_audit(f.db, id);
    REQUIRE(rows.size() == done);
    CHECK(rows.back().entry.action == "transition");
    CHECK(rows.back().entry.actor_id == step.by.id);
    CHECK(rows.back().entry.actor_role == "coordinator");
    CHECK(rows.back().entry.at_ms == step.at);
    CHECK(rows.back().entry.detail == step.detail);
  }

  const auto final_state = store::load(f.db, id);
  REQUIRE(final_state.has_value());
  CHECK(final_state->approved_by == "coord-b");
  CHECK(final_state->approved_at_ms == kT0 + kDay);
  CHECK(final_state->served_at_ms == kT0 + 2 * kDay);
  CHECK(final_state->expires_at_ms == kT0 + 2 * kDay + 365 * kDay);
  CHECK(final_state->review_due_at_ms == kT0 + 2 * kDay + 182 * kDay);
  CHECK(final_state->ended_at_ms == kT0 + 50 * kDay);
  CHECK(audit::verify(f.db).ok);
  CHECK(audit::verify(f.db).rows == 6);
}

TEST_CASE("a refused transition writes nothing") {
  Fixture f;
  const std::int64_t id = f.propose();
  const auto own = store::apply(f.db, id, Action::approve, kA, kT0 + kDay, "mine");
  CHECK_FALSE(own.ok);
  CHECK(own.refused == Refusal::not_allowed);
  CHECK(own.refusal.rfind("the proposer cannot approve their own notice", 0) == 0);

  const auto early = store::apply(f.db, id, Action::serve, kB, kT0 + kDay, "serve now");
  CHECK_FALSE(early.ok);
  CHECK(early.refusal ==
        "notice " + std::to_string(id) + " is proposed; only an approved notice can be served");

  CHECK(store::load(f.db, id)->state == State::proposed);
  CHECK(store::events(f.db, id).size() == 1);
  CHECK(f.count("audit_log") == 1);
}

TEST_CASE("a transition of an unknown notice is refused") {
  Fixture f;
  const auto out = store::apply(f.db, 999, Action::approve, kB, kT0, "agreed");
  CHECK_FALSE(out.ok);
  CHECK(out.refused == Refusal::not_found);
  CHECK(out.refusal == "there is no notice 999");
  CHECK_FALSE(store::load(f.db, 999).has_value());
  CHECK(store::events(f.db, 999).empty());
  CHECK(f.count("audit_log") == 0);
}

TEST_CASE("an expired notice in the database cannot be revived") {
  Fixture f;
  const std::int64_t id = f.active(kT0);
  REQUIRE(store::run_due(f.db, kT0 + 365 * kDay).expired.size() == 1);
  for (Action action : {Action::serve, Action::resolve_active, Action::approve}) {
    INFO(n::to_string(action));
    const auto out = store::apply(f.db, id, action, kB, kT0 + 400 * kDay, "revive");
    CHECK_FALSE(out.ok);
    CHECK(out.refused == Refusal::illegal);
    CHECK(out.refusal.find("an expired notice cannot be revived") != std::string::npos);
  }
  CHECK(store::load(f.db, id)->state == State::expired);
}

TEST_CASE("run_due reminds once at 182 days and expires at 365 days, audited as the hub") {
  Fixture f;
  const std::int64_t served = kT0 + 2 * kDay;
  const std::int64_t id = f.active(served);
  const auto audit_rows_before = f.count("audit_log");

  auto none = store::run_due(f.db, served + 182 * kDay - 1);
  CHECK(none.expired.empty());
  CHECK(none.reminded.empty());

  const auto review = store::run_due(f.db, served + 182 * kDay);
  REQUIRE(review.reminded.size() == 1);
  CHECK(review.reminded[0].id == id);
  CHECK(review.reminded[0].review_reminded_at_ms == served + 182 * kDay);
  CHECK(review.expired.empty());
  CHECK(store::load(f.db, id)->review_reminded_at_ms == served + 182 * kDay);
  CHECK(store::load(f.db, id)->state == State::active);
  CHECK(f.count("audit_log") == audit_rows_before + 1);
  const auto reminder_row = notice_audit(f.db, id).back();
  CHECK(reminder_row.entry.actor_id == "hub");
  CHECK(reminder_row.entry.actor_role == "hub");
  CHECK(reminder_row.entry.action == "update");
  CHECK(reminder_row.entry.detail == "review reminder: review was due at 2026-07-04T00:00:00Z");

  CHECK(store::run_due(f.db, served + 183 * kDay).reminded.empty());
  CHECK(store::run_due(f.db, served + 365 * kDay - 1).expired.empty());
  CHECK(f.count("audit_log") == audit_rows_before + 1);
  CHECK(store::events(f.db, id).size() == 3);  // a reminder is not a transition

  const auto end = store::run_due(f.db, served + 365 * kDay);
  REQUIRE(end.expired.size() == 1);
  CHECK(end.expired[0].id == id);
  CHECK(end.expired[0].state == State::expired);
  CHECK(end.expired[0].photo_sha256 == kPhoto);  // for the caller to purge
  CHECK(end.reminded.empty());

  const auto stored = store::load(f.db, id);
  CHECK(stored->state == State::expired);
  CHECK(stored->ended_at_ms == served + 365 * kDay);
  const auto last_event = store::events(f.db, id).back();
  CHECK(last_event.from == State::active);
  CHECK(last_event.to == State::expired);
  CHECK(last_event.by_id == "hub");
  CHECK(last_event.reason == "expired");
  const auto expiry_row = notice_audit(f.db, id).back();
  CHECK(expiry_row.entry.actor_id == "hub");
  CHECK(expiry_row.entry.actor_role == "hub");
  CHECK(expiry_row.entry.action == "transition");
  CHECK(expiry_row.entry.detail == "active\u2192expired: expired");

  const auto after = store::run_due(f.db, served + 400 * kDay);
  CHECK(after.expired.empty());
  CHECK(after.reminded.empty());
  CHECK(audit::verify(f.db).ok);
}

TEST_CASE("run_due expires disputed notices too, and leaves the others alone") {
  Fixture f;
  const std::int64_t disputed = f.active(kT0);
  REQUIRE(store::apply(f.db, disputed, Action::dispute, kB, kT0 + kDay, "appeal").ok);
  // Profile 9 gets a later notice, served 100 days on, linked to a form of its own.
  f.db.exec(
      "INSERT INTO form_profiles (form_id, profile_id, linked_at_ms, linked_by) VALUES "
      "('F-4', 9, 0, 'coord-a')");
  n::Proposal p = Fixture::proposal();
  p.profile_id = 9;
  p.cited_forms = {"F-4"};
  const auto later = store::create(f.db, p, kA, kT0, "prolific");
  REQUIRE(later.ok);
  REQUIRE(store::apply(f.db, later.next.id, Action::approve, kB, kT0, "agreed").ok);
  REQUIRE(store::apply(f.db, later.next.id, Action::serve, kA, kT0 + 100 * kDay, "served").ok);

  const auto run = store::run_due(f.db, kT0 + 365 * kDay);
  REQUIRE(run.expired.size() == 1);
  CHECK(run.expired[0].id == disputed);
  CHECK(store::events(f.db, disputed).back().from == State::disputed);
  REQUIRE(run.reminded.size() == 1);  // the later one's review fell due at day 282
  CHECK(run.reminded[0].id == later.next.id);
  CHECK(store::load(f.db, later.next.id)->state == State::active);
}

TEST_CASE("list filters notices by state and by profile") {
  Fixture f;
  const std::int64_t revoked = f.propose();
  REQUIRE(store::apply(f.db, revoked, Action::revoke, kB, kT0 + 1, "withdrawn").ok);
  const std::int64_t live = f.active(kT0 + 10 * kDay);

  auto ids = [](const std::vector<n::Notice>& notices) {
    std::vector<std::int64_t> out;
    for (const auto& x : notices) out.push_back(x.id);
    return out;
  };
  CHECK(ids(store::list(f.db, {})) == std::vector<std::int64_t>{revoked, live});
  CHECK(ids(store::list(f.db, {State::active, std::nullopt, 1000})) ==
        std::vector<std::int64_t>{live});
  CHECK(ids(store::list(f.db, {State::revoked, 7, 1000})) == std::vector<std::int64_t>{revoked});
  CHECK(store::list(f.db, {std::nullopt, 9, 1000}).empty());
  CHECK(store::list(f.db, {State::disputed, std::nullopt, 1000}).empty());
  CHECK(ids(store::list(f.db, {std::nullopt, 7, 1})) == std::vector<std::int64_t>{revoked});
  CHECK(store::list(f.db, {})[1].cited_forms == std::vector<std::string>{"F-1", "F-2"});
}

TEST_CASE("save_transition refuses a row that has left the state the event starts from") {
  Fixture f;
  const std::int64_t id = f.propose();
  const auto decided = n::apply(*store::load(f.db, id), Action::approve, kB, kT0 + 1, "agreed");
  REQUIRE(decided.ok);
  f.db.exec("UPDATE notices SET state = 'revoked'");  // changed behind the store's back
  CHECK_THROWS_AS(store::save_transition(f.db, decided.next, decided.event), std::runtime_error);
  CHECK(store::load(f.db, id)->state == State::revoked);
  CHECK(store::events(f.db, id).size() == 1);
}

TEST_CASE("a transition whose audit row cannot be written is rolled back entirely") {
  Fixture f;
  const std::int64_t id = f.propose();
  f.db.exec(
      "CREATE TRIGGER audit_fails BEFORE INSERT ON audit_log "
      "BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END");
  CHECK_THROWS_AS(store::apply(f.db, id, Action::approve, kB, kT0 + 1, "agreed"),
                  SQLite::Exception);
  CHECK(store::load(f.db, id)->state == State::proposed);
  CHECK_FALSE(store::load(f.db, id)->approved_by.has_value());
  CHECK(store::events(f.db, id).size() == 1);

  f.db.exec(
      "INSERT INTO form_profiles (form_id, profile_id, linked_at_ms, linked_by) VALUES "
      "('F-4', 9, 0, 'coord-a')");
  n::Proposal other = Fixture::proposal();
  other.profile_id = 9;
  other.cited_forms = {"F-4"};
  CHECK_THROWS_AS(store::create(f.db, other, kB, kT0, "x"), SQLite::Exception);
  CHECK(f.count("notices") == 1);
  CHECK(f.count("notice_incidents") == 2);
  CHECK(f.count("notice_events") == 1);
}

TEST_CASE("reasons and conditions are stored verbatim, quotes and all") {
  Fixture f;
  n::Proposal p = Fixture::proposal();
  p.conditions = "Not to enter 'any' store; \"none\"); DROP TABLE notices; --";
  const auto out = store::create(f.db, p, kA, kT0, "it's O'Brien");
  REQUIRE(out.ok);
  CHECK(store::load(f.db, out.next.id)->conditions == p.conditions);
  CHECK(store::events(f.db, out.next.id)[0].reason == "it's O'Brien");
}
