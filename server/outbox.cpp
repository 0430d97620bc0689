#include "server/outbox.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <stdexcept>

namespace saferlink::server::outbox {

namespace {

Kind kind_of(const std::string& text) {
  if (text == "panic") return Kind::panic;
  if (text == "cancel") return Kind::cancel;
  if (text == "sighting") return Kind::sighting;
  throw std::runtime_error("relay_log: unknown kind '" + text + "'");
}

}  // namespace

const char* to_string(Kind kind) {
  switch (kind) {
    case Kind::panic: return "panic";
    case Kind::cancel: return "cancel";
    case Kind::sighting: return "sighting";
  }
  return "?";
}

Lane lane_of(Kind kind) { return kind == Kind::sighting ? Lane::other : Lane::alert; }

std::vector<KnownDevice> load_devices(SQLite::Database& db) {
  SQLite::Statement select(
      db, "SELECT device_id, role, town, member, serial_hex, last_seen_ms FROM devices");
  std::vector<KnownDevice> out;
  while (select.executeStep()) {
    const auto role = parse_role(select.getColumn(1).getString());
    if (!role) continue;  // a role this binary does not know: such a device cannot connect
    KnownDevice d;
    d.identity.id = select.getColumn(0).getString();
    d.identity.role = *role;
    d.identity.town = select.getColumn(2).getString();
    d.identity.member = select.getColumn(3).getString();
    d.identity.serial_hex = select.getColumn(4).getString();
    d.last_seen_ms = select.getColumn(5).getInt64();
    out.push_back(std::move(d));
  }
  return out;
}

void upsert_device(SQLite::Database& db, const Identity& identity, std::int64_t now_ms) {
  SQLite::Statement upsert(
      db,
      "INSERT INTO devices (device_id, role, town, member, serial_hex, first_seen_ms, "
      "last_seen_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET "
      "role = excluded.role, town = excluded.town, member = excluded.member, "
      "serial_hex = excluded.serial_hex, last_seen_ms = excluded.last_seen_ms");
  upsert.bind(1, identity.id);
  upsert.bind(2, std::string(saferlink::to_string(identity.role)));
  upsert.bind(3, identity.town);
  upsert.bind(4, identity.member);
  upsert.bind(5, identity.serial_hex);
  upsert.bind(6, now_ms);
  upsert.bind(7, now_ms);
  upsert.exec();
}

std::uint64_t next_epoch(SQLite::Database& db) {
  db.exec(
      "INSERT INTO hub_state (key, value) VALUES ('seq_epoch', 1) ON CONFLICT (key) DO UPDATE "
      "SET value = value + 1");
  return static_cast<std::uint64_t>(
      db.execAndGet("SELECT value FROM hub_state WHERE key = 'seq_epoch'").getInt64());
}

void record(SQLite::Database& db, const Relay& relay,
            const std::vector<std::pair<std::string, std::uint64_t>>& targets) {
  if (targets.empty()) return;
  SQLite::Statement insert(db,
                           "INSERT INTO relay_log (kind, ref, body, created_at_ms, "
                           "expires_at_ms) VALUES (?, ?, ?, ?, ?)");
  insert.bind(1, to_string(relay.kind));
  insert.bind(2, relay.ref);
  insert.bind(3, relay.body.data(), static_cast<int>(relay.body.size()));
  insert.bind(4, relay.created_at_ms);
  insert.bind(5, relay.expires_at_ms);
  insert.exec();
  const std::int64_t relay_id = db.getLastInsertRowid();
  SQLite::Statement row(db, "INSERT OR REPLACE INTO outbox (device_id, seq, lane, relay_id) "
                            "VALUES (?, ?, ?, ?)");
  const char* lane = lane_of(relay.kind) == Lane::alert ? "alert" : "other";
  for (const auto& [device, seq] : targets) {
    row.bind(1, device);
    row.bind(2, static_cast<std::int64_t>(seq));
    row.bind(3, lane);
    row.bind(4, relay_id);
    row.exec();
    row.reset();
  }
}

std::vector<Pending> pending(SQLite::Database& db, const std::string& device_id,
                             const Cursor& processed, std::int64_t now_ms) {
  SQLite::Statement done(db,
                         "DELETE FROM outbox WHERE device_id = ?1 AND ((lane = 'alert' AND seq "
                         "<= ?2) OR (lane = 'other' AND seq <= ?3))");
  done.bind(1, device_id);
  done.bind(2, static_cast<std::int64_t>(processed.alert));
  done.bind(3, static_cast<std::int64_t>(processed.other));
  done.exec();
  SQLite::Statement select(
      db,
      "SELECT o.seq, r.kind, r.ref, r.body FROM outbox o JOIN relay_log r USING (relay_id) "
      "WHERE o.device_id = ? AND r.expires_at_ms > ? ORDER BY o.seq");
  select.bind(1, device_id);
  select.bind(2, now_ms);
  std::vector<Pending> out;
  while (select.executeStep()) {
    Pending p;
    p.seq = static_cast<std::uint64_t>(select.getColumn(0).getInt64());
    p.kind = kind_of(select.getColumn(1).getString());
    p.ref = select.getColumn(2).getString();
    const auto body = select.getColumn(3);
    p.body.assign(static_cast<const char*>(body.getBlob()),
                  static_cast<std::size_t>(body.getBytes()));
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<std::pair<std::string, std::uint64_t>> last_seqs(SQLite::Database& db) {
  SQLite::Statement select(db, "SELECT device_id, MAX(seq) FROM outbox GROUP BY device_id");
  std::vector<std::pair<std::string, std::uint64_t>> out;
  while (select.executeStep()) {
    out.emplace_back(select.getColumn(0).getString(),
                     static_cast<std::uint64_t>(select.getColumn(1).getInt64()));
  }
  return out;
}

std::size_t prune(SQLite::Database& db, std::int64_t now_ms) {
  SQLite::Statement del(db, "DELETE FROM relay_log WHERE expires_at_ms <= ?");
  del.bind(1, now_ms);
  return static_cast<std::size_t>(del.exec());
}

}  // namespace saferlink::server::outbox
