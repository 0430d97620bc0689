// Schema migrations: an ordered, forward-only list. The database's PRAGMA user_version is the
// number of migrations applied. Each migration runs in its own IMMEDIATE transaction together
// with the user_version bump, so a failed migration leaves the database at the previous version.
//
// Never edit or reorder a migration that has shipped: add a new one at the end.
#include <SQLiteCpp/Database.h>

#include <iterator>
#include <stdexcept>
#include <string>

#include "server/store.hpp"

namespace saferlink::server {
namespace {

// kMigrations[i] takes the schema from version i to version i + 1.
constexpr const char* kMigrations[] = {
    // 1: alerts and their events.
    R"sql(
CREATE TABLE alerts (
  alert_id        TEXT PRIMARY KEY,
  device_id       TEXT NOT NULL,
  device_seq      INTEGER NOT NULL,
  member          TEXT NOT NULL,
  town            TEXT NOT NULL,
  status          TEXT NOT NULL CHECK (status IN ('actual', 'exercise', 'test')),
  severity        TEXT NOT NULL,
  note            TEXT NOT NULL DEFAULT '',
  pressed_at_ms   INTEGER NOT NULL,
  expires_at_ms   INTEGER NOT NULL,
  accepted_at_ms  INTEGER NOT NULL,
  cancelled_at_ms INTEGER,
  cancel_reason   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alerts_accepted_at ON alerts (accepted_at_ms);

CREATE TABLE alert_events (
  id       INTEGER PRIMARY KEY,
  alert_id TEXT NOT NULL REFERENCES alerts (alert_id),
  kind     TEXT NOT NULL,
  by_id    TEXT NOT NULL,
  by_role  TEXT NOT NULL,
  by_town  TEXT NOT NULL,
  at_ms    INTEGER NOT NULL,
  round    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alert_events_alert_id ON alert_events (alert_id);
)sql",
};

constexpr int kLatest = static_cast<int>(std::size(kMigrations));

int user_version(SQLite::Database& db) {
  return db.execAndGet("PRAGMA user_version").getInt();
}

std::string describe(const SQLite::Database& db) {
  return "database " + db.getFilename();
}

}  // namespace

int Store::latest_schema_version() { return kLatest; }

void migrate(SQLite::Database& db) {
  int current = 0;
  try {
    current = user_version(db);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot read the schema version of " + describe(db) + ": " +
                             e.what());
  }
  if (current > kLatest) {
    throw std::runtime_error(describe(db) + " has schema version " + std::to_string(current) +
                             " but this saferlink-hub knows only up to " +
                             std::to_string(kLatest) + ": upgrade saferlink-hub");
  }
  if (current < 0) {
    throw std::runtime_error(describe(db) + " has schema version " + std::to_string(current) +
                             ", which no saferlink-hub writes: is it a SaferLink database?");
  }

  for (int version = current + 1; version <= kLatest; ++version) {
    try {
      db.exec("BEGIN IMMEDIATE");
      try {
        // Another process may have migrated between our read and this lock.
        const int now = user_version(db);
        if (now > kLatest) {
          throw std::runtime_error("schema version changed to " + std::to_string(now) +
                                   " during migration");
        }
        if (now < version) {
          db.exec(kMigrations[version - 1]);
          // PRAGMA takes no bound parameters; the number is ours, never input.
          db.exec("PRAGMA user_version = " + std::to_string(version));
        }
        db.exec("COMMIT");
      } catch (...) {
        try {
          db.exec("ROLLBACK");
        } catch (const std::exception&) {
          // The failure that brought us here is the one worth reporting.
        }
        throw;
      }
    } catch (const std::exception& e) {
      throw std::runtime_error("cannot migrate " + describe(db) + " to schema version " +
                               std::to_string(version) + ": " + e.what());
    }
  }
}

}  // namespace saferlink::server
