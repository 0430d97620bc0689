#include "server/alert_store.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <utility>

namespace saferlink::server::alerts {
namespace {

constexpr const char* kAlertColumns =
    "alert_id, device_id, device_seq, member, town, status, severity, note, pressed_at_ms, "
    "expires_at_ms, accepted_at_ms, cancelled_at_ms, cancel_reason";

// Reads a row selected with kAlertColumns, in that order.
AlertRecord read_alert(const SQLite::Statement& row) {
  AlertRecord r;
  r.alert_id = row.getColumn(0).getString();
  r.device_id = row.getColumn(1).getString();
  // Stored as SQLite's signed 64-bit integer; the conversion round-trips every value.
  r.device_seq = static_cast<std::uint64_t>(row.getColumn(2).getInt64());
  r.member = row.getColumn(3).getString();
  r.town = row.getColumn(4).getString();
  r.status = row.getColumn(5).getString();
  r.severity = row.getColumn(6).getString();
  r.note = row.getColumn(7).getString();
  r.pressed_at_ms = row.getColumn(8).getInt64();
  r.expires_at_ms = row.getColumn(9).getInt64();
  r.accepted_at_ms = row.getColumn(10).getInt64();
  if (!row.getColumn(11).isNull()) r.cancelled_at_ms = row.getColumn(11).getInt64();
  r.cancel_reason = row.getColumn(12).getString();
  return r;
}

}  // namespace

InsertOutcome insert(SQLite::Database& db, const AlertRecord& record, AlertRecord* existing) {
  SQLite::Statement insert_row(
      db,
      "INSERT INTO alerts (alert_id, device_id, device_seq, member, town, status, severity, "
      "note, pressed_at_ms, expires_at_ms, accepted_at_ms, cancelled_at_ms, cancel_reason) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
      "ON CONFLICT (alert_id) DO NOTHING");
  insert_row.bind(1, record.alert_id);
  insert_row.bind(2, record.device_id);
  insert_row.bind(3, static_cast<std::int64_t>(record.device_seq));
  insert_row.bind(4, record.member);
  insert_row.bind(5, record.town);
  insert_row.bind(6, record.status);
  insert_row.bind(7, record.severity);
  insert_row.bind(8, record.note);
  insert_row.bind(9, record.pressed_at_ms);
  insert_row.bind(10, record.expires_at_ms);
  insert_row.bind(11, record.accepted_at_ms);
  if (record.cancelled_at_ms) {
    insert_row.bind(12, *record.cancelled_at_ms);
  } else {
    insert_row.bind(12);  // NULL
  }
  insert_row.bind(13, record.cancel_reason);
  if (insert_row.exec() == 1) return InsertOutcome::inserted;

  if (existing != nullptr) {
    auto stored = find(db, record.alert_id);
    if (stored) *existing = std::move(*stored);
  }
  return InsertOutcome::duplicate;
}

std::optional<AlertRecord> find(SQLite::Database& db, const std::string& alert_id) {
  SQLite::Statement select(
      db, std::string("SELECT ") + kAlertColumns + " FROM alerts WHERE alert_id = ?");
  select.bind(1, alert_id);
  if (!select.executeStep()) return std::nullopt;
  return read_alert(select);
}

bool mark_cancelled(SQLite::Database& db, const std::string& alert_id, std::int64_t at_ms,
                    const std::string& reason) {
  SQLite::Statement update(db,
                           "UPDATE alerts SET cancelled_at_ms = ?, cancel_reason = ? "
                           "WHERE alert_id = ? AND cancelled_at_ms IS NULL");
  update.bind(1, at_ms);
  update.bind(2, reason);
  update.bind(3, alert_id);
  return update.exec() == 1;
}

void record_event(SQLite::Database& db, const EventRecord& event) {
  SQLite::Statement insert_row(
      db,
      "INSERT INTO alert_events (alert_id, kind, by_id, by_role, by_town, at_ms, round) "
      "VALUES (?, ?, ?, ?, ?, ?, ?)");
  insert_row.bind(1, event.alert_id);
  insert_row.bind(2, event.kind);
  insert_row.bind(3, event.by_id);
  insert_row.bind(4, event.by_role);
  insert_row.bind(5, event.by_town);
  insert_row.bind(6, event.at_ms);
  insert_row.bind(7, event.round);
  insert_row.exec();
}

std::vector<EventRecord> events(SQLite::Database& db, const std::string& alert_id) {
  SQLite::Statement select(db,
                           "SELECT alert_id, kind, by_id, by_role, by_town, at_ms, round "
                           "FROM alert_events WHERE alert_id = ? ORDER BY id");
  select.bind(1, alert_id);
  std::vector<EventRecord> out;
  while (select.executeStep()) {
    EventRecord e;
    e.alert_id = select.getColumn(0).getString();
    e.kind = select.getColumn(1).getString();
    e.by_id = select.getColumn(2).getString();
    e.by_role = select.getColumn(3).getString();
    e.by_town = select.getColumn(4).getString();
    e.at_ms = select.getColumn(5).getInt64();
    e.round = select.getColumn(6).getUInt();
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<AlertRecord> open_since(SQLite::Database& db, std::int64_t since_ms) {
  SQLite::Statement select(db, std::string("SELECT ") + kAlertColumns +
                                   " FROM alerts WHERE accepted_at_ms >= ? AND "
                                   "cancelled_at_ms IS NULL ORDER BY accepted_at_ms, alert_id");
  select.bind(1, since_ms);
  std::vector<AlertRecord> out;
  while (select.executeStep()) out.push_back(read_alert(select));
  return out;
}

std::vector<AlertRecord> recent(SQLite::Database& db, std::int64_t since_ms,
                                const std::string& town, int limit) {
  const bool every_town = town.empty() || town == "all";
  SQLite::Statement select(
      db, std::string("SELECT ") + kAlertColumns +
              " FROM alerts a WHERE accepted_at_ms >= ?1 AND (?2 OR town = ?3 OR EXISTS ("
              "SELECT 1 FROM alert_events e WHERE e.alert_id = a.alert_id AND "
              "e.kind = 'escalated')) ORDER BY accepted_at_ms DESC, a.rowid DESC LIMIT ?4");
  select.bind(1, since_ms);
  select.bind(2, every_town ? 1 : 0);
  select.bind(3, town);
  select.bind(4, limit);
  std::vector<AlertRecord> out;
  while (select.executeStep()) out.push_back(read_alert(select));
  return out;
}

}  // namespace saferlink::server::alerts
