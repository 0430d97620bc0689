#include "server/notice_store.hpp"

#include "server/savepoint.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <iterator>
#include <limits>
#include <stdexcept>
#include <utility>

#include "server/audit.hpp"

namespace saferlink::server::notice_store {
namespace {

using notices::Event;
using notices::Notice;
using notices::Outcome;
using notices::Refusal;
using notices::State;


constexpr const char* kNoticeColumns =
    "notice_id, profile_id, state, conditions, towns, photo_sha256, proposed_by, "
    "proposed_at_ms, approved_by, approved_at_ms, served_at_ms, expires_at_ms, "
    "review_due_at_ms, review_reminded_at_ms, ended_at_ms, updated_at_ms";

std::optional<std::int64_t> optional_int(const SQLite::Column& c) {
  if (c.isNull()) return std::nullopt;
  return c.getInt64();
}

std::optional<std::string> optional_text(const SQLite::Column& c) {
  if (c.isNull()) return std::nullopt;
  return c.getString();
}

State read_state(const SQLite::Column& c, std::int64_t notice_id) {
  const std::string text = c.getString();
  auto state = notices::parse_state(text);
  if (!state) {
    throw std::runtime_error("notice " + std::to_string(notice_id) + " has unknown state \"" +
                             text + "\"");
  }
  return *state;
}

std::vector<std::string> cited_forms(SQLite::Database& db, std::int64_t notice_id) {
  SQLite::Statement select(
      db, "SELECT form_id FROM notice_incidents WHERE notice_id = ? ORDER BY rowid");
  select.bind(1, notice_id);
  std::vector<std::string> out;
  while (select.executeStep()) out.push_back(select.getColumn(0).getString());
  return out;
}

// Reads a row selected with kNoticeColumns, in that order, and its cited forms.
Notice read_notice(SQLite::Database& db, const SQLite::Statement& row) {
  Notice n;
  n.id = row.getColumn(0).getInt64();
  n.profile_id = row.getColumn(1).getInt64();
  n.state = read_state(row.getColumn(2), n.id);
  n.conditions = row.getColumn(3).getString();
  n.towns = notices::split_towns(row.getColumn(4).getString());
  n.photo_sha256 = optional_text(row.getColumn(5));
  n.proposed_by = row.getColumn(6).getString();
  n.proposed_at_ms = row.getColumn(7).getInt64();
  n.approved_by = optional_text(row.getColumn(8));
  n.approved_at_ms = optional_int(row.getColumn(9));
  n.served_at_ms = optional_int(row.getColumn(10));
  n.expires_at_ms = optional_int(row.getColumn(11));
  n.review_due_at_ms = optional_int(row.getColumn(12));
  n.review_reminded_at_ms = optional_int(row.getColumn(13));
  n.ended_at_ms = optional_int(row.getColumn(14));
  n.updated_at_ms = row.getColumn(15).getInt64();
  n.cited_forms = cited_forms(db, n.id);
  return n;
}

void bind_optional(SQLite::Statement& s, int index, const std::optional<std::int64_t>& value) {
  if (value) {
    s.bind(index, *value);
  } else {
    s.bind(index);  // NULL
  }
}

void bind_optional(SQLite::Statement& s, int index, const std::optional<std::string>& value) {
  if (value) {
    s.bind(index, *value);
  } else {
    s.bind(index);  // NULL
  }
}

Outcome refuse(Refusal why, std::string text) {
  Outcome out;
  out.ok = false;
  out.refused = why;
  out.refusal = std::move(text);
  return out;
}

std::string role_name(const Identity& who) { return std::string(to_string(who.role)); }

void insert_event(SQLite::Database& db, const Event& event) {
  SQLite::Statement insert(db,
                           "INSERT INTO notice_events (notice_id, from_state, to_state, by_id, "
                           "at_ms, reason) VALUES (?, ?, ?, ?, ?, ?)");
  insert.bind(1, event.notice_id);
  if (event.from) {
    insert.bind(2, std::string(notices::to_string(*event.from)));
  } else {
    insert.bind(2);  // NULL: the proposal
  }
  insert.bind(3, std::string(notices::to_string(event.to)));
  insert.bind(4, event.by_id);
  insert.bind(5, event.at_ms);
  insert.bind(6, event.reason);
  insert.exec();
}

// "active→disputed: appeal lodged 2026-05-02"
std::string transition_detail(const Event& event) {
  std::string detail;
  if (event.from) detail += notices::to_string(*event.from);
  detail += "\u2192";
  detail += notices::to_string(event.to);
  detail += ": ";
  detail += event.reason;
  return detail;
}

// Checks what propose() cannot: that the rows the proposal names exist and fit together.
// Returns a refusal, or nullopt when the proposal may be stored.
std::optional<Outcome> check_references(SQLite::Database& db, const notices::Proposal& p) {
  {
    SQLite::Statement profile(db, "SELECT merged_into FROM profiles WHERE profile_id = ?");
    profile.bind(1, p.profile_id);
    if (!profile.executeStep()) {
      return refuse(Refusal::not_found, "there is no profile " + std::to_string(p.profile_id));
    }
    if (!profile.getColumn(0).isNull()) {
      return refuse(Refusal::invalid, "profile " + std::to_string(p.profile_id) +
                                          " was merged into profile " +
                                          std::to_string(profile.getColumn(0).getInt64()) +
                                          "; propose the notice against that one");
    }
  }
  {
    SQLite::Statement live(db,
                           "SELECT notice_id, state FROM notices WHERE profile_id = ? AND state "
                           "IN ('proposed', 'approved', 'active', 'disputed') ORDER BY notice_id "
                           "LIMIT 1");
    live.bind(1, p.profile_id);
    if (live.executeStep()) {
      return refuse(Refusal::illegal,
                    "profile " + std::to_string(p.profile_id) + " already has notice " +
                        std::to_string(live.getColumn(0).getInt64()) + " (" +
                        live.getColumn(1).getString() + "); revoke it or let it end first");
    }
  }
  SQLite::Statement form(db,
                         "SELECT f.form_id, l.profile_id FROM incident_forms f LEFT JOIN "
                         "form_profiles l ON l.form_id = f.form_id AND l.profile_id = ? "
                         "WHERE f.form_id = ?");
  for (const std::string& form_id : p.cited_forms) {
    form.reset();
    form.bind(1, p.profile_id);
    form.bind(2, form_id);
    if (!form.executeStep()) {
      return refuse(Refusal::not_found, "there is no incident form \"" + form_id + "\"");
    }
    if (form.getColumn(1).isNull()) {
      return refuse(Refusal::invalid, "incident form \"" + form_id +
                                          "\" is not linked to profile " +
                                          std::to_string(p.profile_id) + "; link it first");
    }
  }
  if (p.photo_sha256) {
    SQLite::Statement blob(db, "SELECT 1 FROM blobs WHERE sha256 = ?");
    blob.bind(1, *p.photo_sha256);
    if (!blob.executeStep()) {
      return refuse(Refusal::not_found, "the hub holds no photo " + *p.photo_sha256);
    }
  }
  return std::nullopt;
}

}  // namespace

Identity hub_identity() {
  Identity hub;
  hub.id = "hub";
  hub.role = Role::hub;
  hub.town = std::string(kAllTowns);
  return hub;
}

Outcome create(SQLite::Database& db, const notices::Proposal& proposal, const Identity& by,
               std::int64_t now_ms, std::string_view reason, const notices::Options& options) {
  Outcome out = notices::propose(proposal, by, now_ms, reason, options);
  if (!out.ok) return out;
  if (auto refusal = check_references(db, proposal)) return std::move(*refusal);

  Savepoint savepoint(db);
  const Notice& n = out.next;
  SQLite::Statement insert(
      db,
      "INSERT INTO notices (profile_id, state, conditions, towns, photo_sha256, proposed_by, "
      "proposed_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  insert.bind(1, n.profile_id);
  insert.bind(2, std::string(notices::to_string(n.state)));
  insert.bind(3, n.conditions);
  insert.bind(4, notices::join_towns(n.towns));
  bind_optional(insert, 5, n.photo_sha256);
  insert.bind(6, n.proposed_by);
  insert.bind(7, n.proposed_at_ms);
  insert.bind(8, n.updated_at_ms);
  insert.exec();
  const std::int64_t id = db.getLastInsertRowid();
  out.next.id = id;
  out.event.notice_id = id;

  SQLite::Statement cite(db, "INSERT INTO notice_incidents (notice_id, form_id) VALUES (?, ?)");
  for (const std::string& form_id : n.cited_forms) {
    cite.reset();
    cite.bind(1, id);
    cite.bind(2, form_id);
    cite.exec();
  }
  insert_event(db, out.event);
  audit::append(db, audit::Entry{now_ms, by.id, role_name(by), "create", "notice",
                                 std::to_string(id),
                                 "proposed for profile " + std::to_string(n.profile_id) +
                                     " citing " + std::to_string(n.cited_forms.size()) +
                                     " form(s): " + out.event.reason});
  savepoint.commit();
  return out;
}

std::optional<Notice> load(SQLite::Database& db, std::int64_t notice_id) {
  SQLite::Statement select(
      db, std::string("SELECT ") + kNoticeColumns + " FROM notices WHERE notice_id = ?");
  select.bind(1, notice_id);
  if (!select.executeStep()) return std::nullopt;
  return read_notice(db, select);
}

std::vector<Notice> list(SQLite::Database& db, const Filter& filter) {
  SQLite::Statement select(db, std::string("SELECT ") + kNoticeColumns +
                                   " FROM notices WHERE (?1 IS NULL OR state = ?1) AND "
                                   "(?2 IS NULL OR profile_id = ?2) ORDER BY notice_id LIMIT ?3");
  if (filter.state) {
    select.bind(1, std::string(notices::to_string(*filter.state)));
  } else {
    select.bind(1);
  }
  bind_optional(select, 2, filter.profile_id);
  constexpr auto kMax = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
  select.bind(3, static_cast<std::int64_t>(filter.limit > kMax ? kMax : filter.limit));
  std::vector<Notice> out;
  while (select.executeStep()) out.push_back(read_notice(db, select));
  return out;
}

void save_transition(SQLite::Database& db, const Notice& next, const Event& event) {
  if (!event.from || event.notice_id != next.id || event.to != next.state) {
    throw std::logic_error("save_transition: the event does not describe notice " +
                           std::to_string(next.id) + "'s transition");
  }
  Savepoint savepoint(db);
  SQLite::Statement update(
      db,
      "UPDATE notices SET state = ?, approved_by = ?, approved_at_ms = ?, served_at_ms = ?, "
      "expires_at_ms = ?, review_due_at_ms = ?, review_reminded_at_ms = ?, ended_at_ms = ?, "
      "updated_at_ms = ? WHERE notice_id = ? AND state = ?");
  update.bind(1, std::string(notices::to_string(next.state)));
  bind_optional(update, 2, next.approved_by);
  bind_optional(update, 3, next.approved_at_ms);
  bind_optional(update, 4, next.served_at_ms);
  bind_optional(update, 5, next.expires_at_ms);
  bind_optional(update, 6, next.review_due_at_ms);
  bind_optional(update, 7, next.review_reminded_at_ms);
  bind_optional(update, 8, next.ended_at_ms);
  update.bind(9, next.updated_at_ms);
  update.bind(10, next.id);
  update.bind(11, std::string(notices::to_string(*event.from)));
  if (update.exec() != 1) {
    throw std::runtime_error("notice " + std::to_string(next.id) + " is no longer " +
                             std::string(notices::to_string(*event.from)) +
                             "; it was changed outside the store");
  }
  insert_event(db, event);
  savepoint.commit();
}

std::vector<Event> events(SQLite::Database& db, std::int64_t notice_id) {
  SQLite::Statement select(db,
                           "SELECT notice_id, from_state, to_state, by_id, at_ms, reason "
                           "FROM notice_events WHERE notice_id = ? ORDER BY id");
  select.bind(1, notice_id);
  std::vector<Event> out;
  while (select.executeStep()) {
    Event e;
    e.notice_id = select.getColumn(0).getInt64();
    if (!select.getColumn(1).isNull()) e.from = read_state(select.getColumn(1), notice_id);
    e.to = read_state(select.getColumn(2), notice_id);
    e.by_id = select.getColumn(3).getString();
    e.at_ms = select.getColumn(4).getInt64();
    e.reason = select.getColumn(5).getString();
    out.push_back(std::move(e));
  }
  return out;
}

Outcome apply(SQLite::Database& db, std::int64_t notice_id, notices::Action action,
              const Identity& by, std::int64_t now_ms, std::string_view reason,
              const notices::Options& options) {
  auto current = load(db, notice_id);
  if (!current) {
    return refuse(Refusal::not_found, "there is no notice " + std::to_string(notice_id));
  }
  Outcome out = notices::apply(*current, action, by, now_ms, reason, options);
  if (!out.ok) return out;

  Savepoint savepoint(db);
  save_transition(db, out.next, out.event);
  audit::append(db, audit::Entry{now_ms, by.id, role_name(by), "transition", "notice",
                                 std::to_string(notice_id), transition_detail(out.event)});
  savepoint.commit();
  return out;
}

DueRun run_due(SQLite::Database& db, std::int64_t now_ms, const notices::Options& options) {
  std::vector<Notice> live = list(db, Filter{State::active, std::nullopt,
                                             std::numeric_limits<std::size_t>::max()});
  std::vector<Notice> disputed = list(db, Filter{State::disputed, std::nullopt,
                                                 std::numeric_limits<std::size_t>::max()});
  live.insert(live.end(), std::make_move_iterator(disputed.begin()),
              std::make_move_iterator(disputed.end()));

  const notices::Due due = notices::due(live, now_ms);
  const Identity hub = hub_identity();
  auto find = [&live](std::int64_t id) -> const Notice& {
    for (const Notice& n : live) {
      if (n.id == id) return n;
    }
    throw std::logic_error("due() named notice " + std::to_string(id) + ", which it was not given");
  };

  DueRun out;
  Savepoint savepoint(db);
  for (std::int64_t id : due.expire) {
    Outcome expired = notices::apply(find(id), notices::Action::expire, hub, now_ms, "", options);
    if (!expired.ok) {
      throw std::logic_error("due() listed notice " + std::to_string(id) +
                             " to expire but expire refused: " + expired.refusal);
    }
    save_transition(db, expired.next, expired.event);
    audit::append(db, audit::Entry{now_ms, hub.id, role_name(hub), "transition", "notice",
                                   std::to_string(id), transition_detail(expired.event)});
    out.expired.push_back(std::move(expired.next));
  }

  SQLite::Statement remind(db,
                           "UPDATE notices SET review_reminded_at_ms = ?, updated_at_ms = ? "
                           "WHERE notice_id = ? AND state = 'active' AND "
                           "review_reminded_at_ms IS NULL");
  for (std::int64_t id : due.review) {
    Notice next = notices::reminded(find(id), now_ms);
    remind.reset();
    remind.bind(1, *next.review_reminded_at_ms);
    remind.bind(2, next.updated_at_ms);
    remind.bind(3, id);
    if (remind.exec() != 1) continue;  // reminded meanwhile: nothing to raise
    audit::append(db, audit::Entry{now_ms, hub.id, role_name(hub), "update", "notice",
                                   std::to_string(id),
                                   "review reminder: review was due at " +
                                       notices::format_time(*next.review_due_at_ms)});
    out.reminded.push_back(std::move(next));
  }
  savepoint.commit();
  return out;
}

}  // namespace saferlink::server::notice_store
