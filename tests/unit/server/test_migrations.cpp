// Migration fixtures: databases as earlier releases wrote them, built here from frozen SQL,
// opened by today's Store. Each must reach the current schema version with every old row
// intact and end with exactly the schema a new database gets; a database newer than this
// binary is refused untouched; a migration that fails leaves the database at the version
// before it.
//
// The SQL below is frozen: it is what shipped, copied byte for byte from server/migrations.cpp
// at the time. Never update it when the schema changes; when a migration N+1 is added, add a
// fixture for version N (the first test case fails until there is one).
#include "server/gallery_store.hpp"
#include "server/store.hpp"

#include "server/alert_store.hpp"
#include "server/audit.hpp"
#include "server/intel_store.hpp"
#include "server/notice_store.hpp"
#include "server/sighting_store.hpp"

#include <doctest/doctest.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using saferlink::Identity;
using saferlink::Role;
using saferlink::server::Store;
namespace alerts = saferlink::server::alerts;
namespace gallery = saferlink::server::gallery;
namespace audit = saferlink::server::audit;
namespace intel = saferlink::server::intel;
namespace notice_store = saferlink::server::notice_store;
namespace sightings = saferlink::server::sightings;
namespace fs = std::filesystem;

// ---- frozen schemas -----------------------------------------------------------------------

// Migration 1 exactly as shipped: the schema of a version-1 database.
constexpr const char* kMigration1 = R"sql(
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
)sql";

// Migration 2 exactly as shipped: with migration 1, the schema of a version-2 database.
constexpr const char* kMigration2 = R"sql(
CREATE TABLE blobs (
  sha256       TEXT PRIMARY KEY CHECK (length(sha256) = 64),
  mime         TEXT NOT NULL CHECK (mime IN ('image/jpeg', 'image/png', 'image/webp')),
  size         INTEGER NOT NULL CHECK (size > 0),
  stored_at_ms INTEGER NOT NULL
);

CREATE TABLE incident_forms (
  form_id           TEXT PRIMARY KEY,
  reporter_id       TEXT NOT NULL,
  reporter_role     TEXT NOT NULL,
  reporter_member   TEXT NOT NULL,
  town              TEXT NOT NULL,
  premises          TEXT NOT NULL,
  occurred_at_ms    INTEGER NOT NULL,
  category          TEXT NOT NULL CHECK (category IN ('theft_from_shop', 'violence_or_threats',
                      'anti_social_behaviour', 'criminal_damage', 'fraud_or_counterfeit', 'other')),
  description       TEXT NOT NULL,
  goods             TEXT NOT NULL DEFAULT '',
  value_pence       INTEGER NOT NULL DEFAULT 0 CHECK (value_pence >= 0),
  police_ref        TEXT NOT NULL DEFAULT '',
  unknown_offenders TEXT NOT NULL DEFAULT '[]',
  received_at_ms    INTEGER NOT NULL,
  reviewed_at_ms    INTEGER,
  reviewed_by       TEXT
);
CREATE INDEX incident_forms_town_time ON incident_forms (town, occurred_at_ms);
CREATE INDEX incident_forms_time ON incident_forms (occurred_at_ms);

CREATE TABLE form_stills (
  form_id  TEXT NOT NULL REFERENCES incident_forms (form_id) ON DELETE CASCADE,
  sha256   TEXT NOT NULL REFERENCES blobs (sha256),
  position INTEGER NOT NULL,
  PRIMARY KEY (form_id, sha256)
);
CREATE INDEX form_stills_sha256 ON form_stills (sha256);

CREATE TABLE profiles (
  profile_id    INTEGER PRIMARY KEY,
  name          TEXT NOT NULL,
  description   TEXT NOT NULL DEFAULT '',
  violent       INTEGER NOT NULL DEFAULT 0 CHECK (violent IN (0, 1)),
  weapons       INTEGER NOT NULL DEFAULT 0 CHECK (weapons IN (0, 1)),
  merged_into   INTEGER REFERENCES profiles (profile_id),
  created_at_ms INTEGER NOT NULL,
  created_by    TEXT NOT NULL,
  updated_at_ms INTEGER NOT NULL
);

CREATE TABLE profile_aliases (
  profile_id INTEGER NOT NULL REFERENCES profiles (profile_id) ON DELETE CASCADE,
  alias      TEXT NOT NULL,
  PRIMARY KEY (profile_id, alias)
);

CREATE TABLE profile_photos (
  profile_id  INTEGER NOT NULL REFERENCES profiles (profile_id) ON DELETE CASCADE,
  sha256      TEXT NOT NULL REFERENCES blobs (sha256),
  added_at_ms INTEGER NOT NULL,
  added_by    TEXT NOT NULL,
  PRIMARY KEY (profile_id, sha256)
);
CREATE INDEX profile_photos_sha256 ON profile_photos (sha256);

CREATE TABLE form_profiles (
  form_id      TEXT NOT NULL REFERENCES incident_forms (form_id) ON DELETE CASCADE,
  profile_id   INTEGER NOT NULL REFERENCES profiles (profile_id) ON DELETE CASCADE,
  linked_at_ms INTEGER NOT NULL,
  linked_by    TEXT NOT NULL,
  PRIMARY KEY (form_id, profile_id)
);
CREATE INDEX form_profiles_profile ON form_profiles (profile_id);

CREATE TABLE notices (
  notice_id             INTEGER PRIMARY KEY,
  profile_id            INTEGER NOT NULL REFERENCES profiles (profile_id) ON DELETE CASCADE,
  state                 TEXT NOT NULL CHECK (state IN ('proposed', 'approved', 'active',
                          'disputed', 'expired', 'revoked')),
  conditions            TEXT NOT NULL,
  towns                 TEXT NOT NULL,
  photo_sha256          TEXT REFERENCES blobs (sha256),
  proposed_by           TEXT NOT NULL,
  proposed_at_ms        INTEGER NOT NULL,
  approved_by           TEXT,
  approved_at_ms        INTEGER,
  served_at_ms          INTEGER,
  expires_at_ms         INTEGER,
  review_due_at_ms      INTEGER,
  review_reminded_at_ms INTEGER,
  ended_at_ms           INTEGER,
  updated_at_ms         INTEGER NOT NULL
);
CREATE INDEX notices_profile ON notices (profile_id);
CREATE INDEX notices_state ON notices (state);

CREATE TABLE notice_incidents (
  notice_id INTEGER NOT NULL REFERENCES notices (notice_id) ON DELETE CASCADE,
  form_id   TEXT NOT NULL REFERENCES incident_forms (form_id) ON DELETE CASCADE,
  PRIMARY KEY (notice_id, form_id)
);

CREATE TABLE notice_events (
  id         INTEGER PRIMARY KEY,
  notice_id  INTEGER NOT NULL REFERENCES notices (notice_id) ON DELETE CASCADE,
  from_state TEXT,
  to_state   TEXT NOT NULL,
  by_id      TEXT NOT NULL,
  at_ms      INTEGER NOT NULL,
  reason     TEXT NOT NULL
);
CREATE INDEX notice_events_notice ON notice_events (notice_id);

CREATE TABLE audit_log (
  seq         INTEGER PRIMARY KEY,
  at_ms       INTEGER NOT NULL,
  actor_id    TEXT NOT NULL,
  actor_role  TEXT NOT NULL,
  action      TEXT NOT NULL,
  object_type TEXT NOT NULL,
  object_id   TEXT NOT NULL,
  detail      TEXT NOT NULL DEFAULT '',
  prev_hash   TEXT NOT NULL CHECK (length(prev_hash) = 64),
  hash        TEXT NOT NULL CHECK (length(hash) = 64)
);
CREATE INDEX audit_log_object ON audit_log (object_type, object_id);
)sql";

// Migration 3 exactly as shipped: image uploads.
constexpr const char* kMigration3 = R"sql(
CREATE TABLE image_uploads (declared_sha256 TEXT PRIMARY KEY, stored_sha256 TEXT NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE, first_sender TEXT NOT NULL, at_ms INTEGER NOT NULL)
)sql";

// Migration 4 exactly as shipped: offender sightings.
constexpr const char* kMigration4 = R"sql(
CREATE TABLE sightings (
  sighting_id     TEXT PRIMARY KEY,
  device_id       TEXT NOT NULL,
  device_seq      INTEGER NOT NULL CHECK (device_seq > 0),
  sender_role     TEXT NOT NULL CHECK (sender_role IN ('shop', 'police', 'cctv')),
  sender_member   TEXT NOT NULL,
  sender_town     TEXT NOT NULL,
  town            TEXT NOT NULL,
  text            TEXT NOT NULL,
  location        TEXT NOT NULL DEFAULT '',
  heading         TEXT NOT NULL DEFAULT '',
  profile_id      INTEGER REFERENCES profiles (profile_id) ON DELETE SET NULL,
  photo_sha256    TEXT REFERENCES blobs (sha256) ON DELETE SET NULL,
  possible_breach INTEGER NOT NULL DEFAULT 0 CHECK (possible_breach IN (0, 1)),
  notice_id       INTEGER REFERENCES notices (notice_id) ON DELETE SET NULL,
  seen_at_ms      INTEGER NOT NULL,
  accepted_at_ms  INTEGER NOT NULL
);
CREATE INDEX sightings_accepted_at ON sightings (accepted_at_ms);
CREATE INDEX sightings_profile ON sightings (profile_id);
)sql";

// The newest schema version with a fixture here.
constexpr int kNewestFixture = 4;

// ---- frozen rows ----------------------------------------------------------------------------

// What a version-1 hub held: an open alert with responders' events, and a cancelled exercise.
constexpr const char* kRowsV1 = R"sql(
INSERT INTO alerts (alert_id, device_id, device_seq, member, town, status, severity, note,
                    pressed_at_ms, expires_at_ms, accepted_at_ms, cancelled_at_ms, cancel_reason)
VALUES ('shop-chatham-1:7', 'shop-chatham-1', 7, 'Boots Chatham', 'chatham', 'actual', 'severe',
        'two men, one with a bottle', 1700000000000, 1700000900000, 1700000000042, NULL, ''),
       ('shop-strood-1:2', 'shop-strood-1', 2, 'Co-op Strood', 'strood', 'exercise',
        'moderate', '', 1700000100000, 1700001000000, 1700000100030, 1700000101000,
        'false alarm');
INSERT INTO alert_events (alert_id, kind, by_id, by_role, by_town, at_ms, round)
VALUES ('shop-chatham-1:7', 'delivered', 'shop-chatham-2', 'shop', 'chatham', 1700000000100, 0),
       ('shop-chatham-1:7', 'acknowledged', 'police-chatham', 'police', 'chatham',
        1700000004000, 0),
       ('shop-chatham-1:7', 'escalated', 'hub', 'hub', 'chatham', 1700000015000, 1),
       ('shop-strood-1:2', 'cancelled', 'shop-strood-1', 'shop', 'strood', 1700000101000, 0);
)sql";

// What a version-2 hub held besides: two forms (one with a still), a profile with an alias and
// a photo linked to both, an active notice citing them with its history, and the audit chain
// of all that. The audit hashes were computed once, independently of server/audit.cpp, with the
// documented row hash (SHA-256 over length-prefixed "saferlink-audit-v1", prev_hash, seq,
// at_ms, actor_id, actor_role, action, object_type, object_id, detail): a change to the hash
// that would break every existing log fails here.
constexpr const char* kSha = "3f2c6a0e9b1d4c7a8e5f0b2d6c9a1e4f7b0d3c6a9e2f5b8d1c4a7e0f3b6d9c2a";
constexpr const char* kRowsV2 = R"sql(
INSERT INTO blobs (sha256, mime, size, stored_at_ms)
VALUES ('3f2c6a0e9b1d4c7a8e5f0b2d6c9a1e4f7b0d3c6a9e2f5b8d1c4a7e0f3b6d9c2a', 'image/jpeg', 2048,
        1699999990000);
INSERT INTO incident_forms (form_id, reporter_id, reporter_role, reporter_member, town, premises,
                            occurred_at_ms, category, description, goods, value_pence,
                            police_ref, unknown_offenders, received_at_ms, reviewed_at_ms,
                            reviewed_by)
VALUES ('form-v2-0001', 'shop-chatham-1', 'shop', 'Boots Chatham', 'chatham', 'Pentagon Centre',
        1699996400000, 'theft_from_shop', 'Took razor blades, left by the north exit',
        'razor blades', 4599, 'KP/2023/1101', '["male, 30s, grey hoodie"]', 1700000000000, NULL,
        NULL),
       ('form-v2-0002', 'shop-chatham-2', 'shop', 'WHSmith Chatham', 'chatham', 'High Street',
        1699990000000, 'violence_or_threats', 'Threatened staff when challenged', '', 0, '',
        '[]', 1699990500000, 1700000500000, 'coord-1');
INSERT INTO form_stills (form_id, sha256, position)
VALUES ('form-v2-0001', '3f2c6a0e9b1d4c7a8e5f0b2d6c9a1e4f7b0d3c6a9e2f5b8d1c4a7e0f3b6d9c2a', 0);
INSERT INTO profiles (profile_id, name, description, violent, weapons, merged_into,
                      created_at_ms, created_by, updated_at_ms)
VALUES (1, 'Razor Ray', 'tall, scar on left hand', 1, 0, NULL, 1700000001000, 'coord-1',
        1700000001000);
INSERT INTO profile_aliases (profile_id, alias) VALUES (1, 'Ray R');
INSERT INTO profile_photos (profile_id, sha256, added_at_ms, added_by)
VALUES (1, '3f2c6a0e9b1d4c7a8e5f0b2d6c9a1e4f7b0d3c6a9e2f5b8d1c4a7e0f3b6d9c2a', 1700000001100,
        'coord-1');
INSERT INTO form_profiles (form_id, profile_id, linked_at_ms, linked_by)
VALUES ('form-v2-0001', 1, 1700000001000, 'coord-1'),
       ('form-v2-0002', 1, 1700000001200, 'coord-1');
INSERT INTO notices (notice_id, profile_id, state, conditions, towns, photo_sha256, proposed_by,
                     proposed_at_ms, approved_by, approved_at_ms, served_at_ms, expires_at_ms,
                     review_due_at_ms, review_reminded_at_ms, ended_at_ms, updated_at_ms)
VALUES (1, 1, 'active', 'Not to enter any member premises in Chatham', 'chatham',
        '3f2c6a0e9b1d4c7a8e5f0b2d6c9a1e4f7b0d3c6a9e2f5b8d1c4a7e0f3b6d9c2a', 'coord-1',
        1700000002000, 'coord-2', 1700000003000, 1700000004000, 1731536004000, 1715768004000,
        NULL, NULL, 1700000004000);
INSERT INTO notice_incidents (notice_id, form_id)
VALUES (1, 'form-v2-0001'), (1, 'form-v2-0002');
INSERT INTO notice_events (id, notice_id, from_state, to_state, by_id, at_ms, reason)
VALUES (1, 1, NULL, 'proposed', 'coord-1', 1700000002000, 'two incidents in a month'),
       (2, 1, 'proposed', 'approved', 'coord-2', 1700000003000, 'board agreed'),
       (3, 1, 'approved', 'active', 'coord-1', 1700000004000, 'served in person');
INSERT INTO audit_log (seq, at_ms, actor_id, actor_role, action, object_type, object_id, detail,
                       prev_hash, hash)
VALUES
  (1, 1700000000000, 'shop-chatham-1', 'shop', 'create', 'form', 'form-v2-0001', 'filed',
   '0000000000000000000000000000000000000000000000000000000000000000',
   'b46614fc7a72f7be0b0a5d245e3f88c0aa2be0942beeb2f2ab6699063e3477fd'),
  (2, 1700000001000, 'coord-1', 'coordinator', 'create', 'profile', '1',
   'from form form-v2-0001',
   'b46614fc7a72f7be0b0a5d245e3f88c0aa2be0942beeb2f2ab6699063e3477fd',
   'c9cde87b94cadbcb36d364682be2b24b237d33543cefbed23122edcfb2eba72f'),
  (3, 1700000002000, 'coord-1', 'coordinator', 'create', 'notice', '1', 'proposed',
   'c9cde87b94cadbcb36d364682be2b24b237d33543cefbed23122edcfb2eba72f',
   '339f01c1dfc6d3f3f185cfc7e6ff588274b1a1f303f463baa37494ee8c6553f8'),
  (4, 1700000003000, 'coord-2', 'coordinator', 'transition', 'notice', '1',
   'proposed->approved: board agreed',
   '339f01c1dfc6d3f3f185cfc7e6ff588274b1a1f303f463baa37494ee8c6553f8',
   'e3367a4841e86cb9a12a7c8986f0151570a30e99be743b81c543ad30229133a8'),
  (5, 1700000004000, 'coord-1', 'coordinator', 'read', 'profile', '1', 'full',
   'e3367a4841e86cb9a12a7c8986f0151570a30e99be743b81c543ad30229133a8',
   '24ab393741747d833c2478e8b1bdffa6e5699009671c227fcc81b32afc6b8b59');
)sql";

// What a version-3 hub held besides: the upload of the v2 still, declared under the SHA-256 of
// the bytes the device sent (before the hub stripped its metadata).
constexpr const char* kRowsV3 = R"sql(
INSERT INTO image_uploads (declared_sha256, stored_sha256, first_sender, at_ms)
VALUES ('9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9',
        '3f2c6a0e9b1d4c7a8e5f0b2d6c9a1e4f7b0d3c6a9e2f5b8d1c4a7e0f3b6d9c2a', 'shop-chatham-1',
        1699999990000);
)sql";

// What a version-4 hub held besides: a sighting of the v2 profile, a possible breach of its
// active notice, with the still as its photo.
constexpr const char* kRowsV4 = R"sql(
INSERT INTO sightings (sighting_id, device_id, device_seq, sender_role, sender_member,
                       sender_town, town, text, location, heading, profile_id, photo_sha256,
                       possible_breach, notice_id, seen_at_ms, accepted_at_ms)
VALUES ('cctv-01:3', 'cctv-01', 3, 'cctv', 'Medway CCTV', 'all', 'chatham',
        'Razor Ray outside Boots', 'Pentagon Centre', 'towards the bus station', 1,
        '3f2c6a0e9b1d4c7a8e5f0b2d6c9a1e4f7b0d3c6a9e2f5b8d1c4a7e0f3b6d9c2a', 1, 1,
        1700000400000, 1700000400050);
)sql";

constexpr std::int64_t kNow = 1700000600000;  // shortly after the fixtures' last row

// ---- helpers ------------------------------------------------------------------------------

// A directory of its own per test, removed with everything in it (db, -wal, -shm).
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "saferlink-migrations-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Writes a database as the release at `version` (1 to 4) left it, then closes it.
void make_fixture(const std::string& path, int version,
                  const std::function<void(SQLite::Database&)>& extra = {}) {
  SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  db.exec("BEGIN");
  db.exec(kMigration1);
  db.exec(kRowsV1);
  if (version >= 2) {
    db.exec(kMigration2);
    db.exec(kRowsV2);
  }
  if (version >= 3) {
    db.exec(kMigration3);
    db.exec(kRowsV3);
  }
  if (version >= 4) {
    db.exec(kMigration4);
    db.exec(kRowsV4);
  }
  db.exec("PRAGMA user_version = " + std::to_string(version));
  if (extra) extra(db);
  db.exec("COMMIT");
}

int user_version(SQLite::Database& db) { return db.execAndGet("PRAGMA user_version").getInt(); }

std::string quoted(const std::string& identifier) { return "\"" + identifier + "\""; }

// Tables in creation order.
std::vector<std::string> tables(SQLite::Database& db) {
  std::vector<std::string> out;
  SQLite::Statement select(db,
                           "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
                           "LIKE 'sqlite_%' ORDER BY rowid");
  while (select.executeStep()) out.push_back(select.getColumn(0).getString());
  return out;
}

std::vector<std::string> columns(SQLite::Database& db, const std::string& table) {
  std::vector<std::string> out;
  SQLite::Statement info(db, "SELECT name FROM pragma_table_info(?) ORDER BY cid");
  info.bind(1, table);
  while (info.executeStep()) out.push_back(info.getColumn(0).getString());
  return out;
}

// Every row of every table as it is now, restricted to the columns the table has now, each
// value tagged with its storage class. Compared after a migration (over the same columns) it
// shows any row or value lost, added or changed, including a change of type.
struct Snapshot {
  std::map<std::string, std::vector<std::string>> columns;  // by table
  std::map<std::string, std::vector<std::string>> rows;     // by table, sorted
};

std::vector<std::string> rows_of(SQLite::Database& db, const std::string& table,
                                 const std::vector<std::string>& cols) {
  // Identifiers come from the fixture's own schema, never from input.
  std::string list;
  for (const auto& c : cols) list += (list.empty() ? "" : ", ") + quoted(c);
  SQLite::Statement select(db, "SELECT " + list + " FROM " + quoted(table));
  std::vector<std::string> out;
  while (select.executeStep()) {
    std::string row;
    for (int i = 0; i < select.getColumnCount(); ++i) {
      const auto value = select.getColumn(i);
      if (value.isNull()) {
        row += "null";
      } else if (value.isInteger()) {
        row += "int:" + std::to_string(value.getInt64());
      } else if (value.isFloat()) {
        row += "real:" + std::to_string(value.getDouble());
      } else if (value.isBlob()) {
        row += "blob:" + value.getString();
      } else {
        row += "text:" + value.getString();
      }
      row += " | ";
    }
    out.push_back(std::move(row));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Snapshot snapshot(SQLite::Database& db) {
  Snapshot s;
  for (const auto& table : tables(db)) {
    s.columns[table] = columns(db, table);
    s.rows[table] = rows_of(db, table, s.columns[table]);
  }
  return s;
}

// Checks that every table of `before` is still there with every row it had, over its old
// columns (a later migration may add columns; it must not lose or change data).
void check_rows_intact(SQLite::Database& db, const Snapshot& before) {
  const auto now = tables(db);
  for (const auto& [table, cols] : before.columns) {
    CAPTURE(table);
    REQUIRE(std::find(now.begin(), now.end(), table) != now.end());
    const auto after = rows_of(db, table, cols);
    CHECK(after.size() == before.rows.at(table).size());
    CHECK(after == before.rows.at(table));
  }
}

// The schema as SQLite records it: every table, index, view and trigger with its SQL.
std::vector<std::string> schema(SQLite::Database& db) {
  std::vector<std::string> out;
  SQLite::Statement select(db,
                           "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master "
                           "ORDER BY type, name");
  while (select.executeStep()) {
    out.push_back(select.getColumn(0).getString() + " " + select.getColumn(1).getString() +
                  " on " + select.getColumn(2).getString() + ": " +
                  select.getColumn(3).getString());
  }
  return out;
}

// What a new database gets today.
std::vector<std::string> fresh_schema() {
  SQLite::Database db(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  saferlink::server::migrate(db);
  return schema(db);
}

std::vector<std::string> fresh_tables() {
  SQLite::Database db(":memory:", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
  saferlink::server::migrate(db);
  return tables(db);
}

// Rows that break a foreign key (the Store turns them on; a migration must not break one).
int foreign_key_violations(SQLite::Database& db) {
  SQLite::Statement check(db, "PRAGMA foreign_key_check");
  int n = 0;
  while (check.executeStep()) ++n;
  return n;
}

template <typename F>
std::string construction_error(F&& make) {
  try {
    make();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

Identity person(Role role, const std::string& town, const std::string& id,
                const std::string& member) {
  Identity who;
  who.id = id;
  who.role = role;
  who.town = town;
  who.member = member;
  return who;
}

const Identity kShop = person(Role::shop, "chatham", "shop-chatham-1", "Boots Chatham");
const Identity kCoord = person(Role::coordinator, "all", "coord-1", "Safer Medway");

// Today's alert functions read the version-1 rows back as they were written.
void check_v1_rows_readable(SQLite::Database& db) {
  const auto alert = alerts::find(db, "shop-chatham-1:7");
  REQUIRE(alert.has_value());
  CHECK(alert->member == "Boots Chatham");
  CHECK(alert->note == "two men, one with a bottle");
  CHECK(alert->accepted_at_ms == 1700000000042);
  CHECK_FALSE(alert->cancelled_at_ms.has_value());
  const auto events = alerts::events(db, "shop-chatham-1:7");
  REQUIRE(events.size() == 3);
  CHECK(events[1].kind == "acknowledged");
  CHECK(events[2].round == 1);
  const auto cancelled = alerts::find(db, "shop-strood-1:2");
  REQUIRE(cancelled.has_value());
  CHECK(cancelled->cancelled_at_ms == 1700000101000);
  CHECK(cancelled->cancel_reason == "false alarm");
}

}  // namespace

TEST_SUITE("migrations") {

TEST_CASE("every schema version before the current one has a fixture here") {
  INFO("the newest migration is ", Store::latest_schema_version(),
       ": add a frozen fixture for version ", Store::latest_schema_version() - 1,
       " to this file");
  CHECK(Store::latest_schema_version() - 1 <= kNewestFixture);
  CHECK(Store::latest_schema_version() >= kNewestFixture);
}

TEST_CASE("a version-1 database migrates to the current version with its alerts intact, and "
          "the intelligence tables take rows") {
  TempDir dir;
  const std::string path = dir.file("v1.db");
  make_fixture(path, 1);
  Snapshot before;
  {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    REQUIRE(user_version(db) == 1);
    before = snapshot(db);
    REQUIRE(before.rows.at("alerts").size() == 2);
    REQUIRE(before.rows.at("alert_events").size() == 4);
  }

  Store store({path});
  store.run_sync([&](SQLite::Database& db) {
    CHECK(user_version(db) == Store::latest_schema_version());
    check_rows_intact(db, before);
    CHECK(schema(db) == fresh_schema());
    CHECK(foreign_key_violations(db) == 0);
    check_v1_rows_readable(db);
  });

  // The new tables take rows through today's store functions.
  const std::string form_id = "form-after-v1";
  store.run_sync([&](SQLite::Database& db) {
    saferlink::forms::IncidentForm form;
    form.form_id = form_id;
    form.occurred_at_ms = kNow - 3'600'000;
    form.town = "chatham";
    form.premises = "Pentagon Centre";
    form.category = saferlink::forms::Category::theft_from_shop;
    form.description = "Took razor blades";
    form.value_pence = 4599;
    const auto filed = intel::insert_form(db, form, kShop, kNow);
    INFO(filed.error);
    REQUIRE(filed.outcome == intel::InsertOutcome::inserted);

    intel::ProfileInput input;
    input.name = "Razor Ray";
    input.aliases = {"Ray R"};
    const auto profile = intel::create_profile_from_form(db, form_id, input, kCoord, kNow + 1);
    INFO(profile.status.error);
    REQUIRE(profile.ok());

    saferlink::server::notices::Proposal proposal;
    proposal.profile_id = *profile.value;
    proposal.conditions = "Not to enter any member premises in Chatham";
    proposal.towns = {"chatham"};
    proposal.cited_forms = {form_id};
    const auto notice = notice_store::create(db, proposal, kCoord, kNow + 2, "first incident");
    INFO(notice.refusal);
    REQUIRE(notice.ok);

    const auto verified = audit::verify(db);
    INFO(verified.reason);
    CHECK(verified.ok);
    CHECK(verified.rows >= 3);
  });
  store.run_sync([&](SQLite::Database& db) {
    CHECK(db.execAndGet("SELECT count(*) FROM incident_forms").getInt() == 1);
    CHECK(db.execAndGet("SELECT count(*) FROM profiles").getInt() == 1);
    CHECK(db.execAndGet("SELECT count(*) FROM notices").getInt() == 1);
    check_rows_intact(db, before);
  });
}

TEST_CASE("a version-2 database migrates to the current version with its forms, profile, "
          "notice and audit chain intact") {
  TempDir dir;
  const std::string path = dir.file("v2.db");
  make_fixture(path, 2);
  Snapshot before;
  {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    REQUIRE(user_version(db) == 2);
    before = snapshot(db);
    REQUIRE(before.rows.at("incident_forms").size() == 2);
    REQUIRE(before.rows.at("audit_log").size() == 5);
    // The frozen chain is valid as written, before any migration touches it.
    const auto frozen = audit::verify(db);
    INFO(frozen.reason);
    REQUIRE(frozen.ok);
  }

  Store store({path});
  store.run_sync([&](SQLite::Database& db) {
    CHECK(user_version(db) == Store::latest_schema_version());
    check_rows_intact(db, before);
    CHECK(schema(db) == fresh_schema());
    CHECK(foreign_key_violations(db) == 0);
    check_v1_rows_readable(db);

    // Tables that migrations after 2 created are there, empty, ready for rows.
    for (const auto& table : tables(db)) {
      if (before.columns.count(table) != 0) continue;
      // Migration 5 logs the notices already active as the gallery's first versions.
      if (table == "gallery_log") {
        CHECK(db.execAndGet("SELECT group_concat(notice_id) FROM gallery_log").getString() ==
              "1");
        continue;
      }
      CAPTURE(table);
      CHECK(rows_of(db, table, columns(db, table)).empty());
    }

    const auto verified = audit::verify(db);
    INFO(verified.reason);
    CHECK(verified.ok);
    CHECK(verified.rows == 5);
  });

  // Today's code reads the old rows, and the audit chain carries on from the old one.
  store.run_sync([&](SQLite::Database& db) {
    const auto form = intel::get_form(db, "form-v2-0001", kCoord, kNow);
    INFO(form.status.error);
    REQUIRE(form.ok());
    CHECK(form.value->form.description == "Took razor blades, left by the north exit");
    CHECK(form.value->form.value_pence == 4599);
    CHECK(form.value->form.police_ref == "KP/2023/1101");
    CHECK(form.value->form.unknown_offenders == std::vector<std::string>{"male, 30s, grey hoodie"});
    CHECK(form.value->form.still_sha256s == std::vector<std::string>{kSha});
    CHECK(form.value->reporter_member == "Boots Chatham");
    CHECK(form.value->received_at_ms == 1700000000000);

    const auto profile = intel::get_profile(db, 1, kCoord, kNow);
    INFO(profile.status.error);
    REQUIRE(profile.ok());
    CHECK(profile.value->name == "Razor Ray");
    CHECK(profile.value->aliases == std::vector<std::string>{"Ray R"});
    CHECK(profile.value->violent);
    CHECK(profile.value->photo_sha256s == std::vector<std::string>{kSha});
    CHECK(profile.value->incidents.size() == 2);

    const auto notice = notice_store::load(db, 1);
    REQUIRE(notice.has_value());
    CHECK(notice->state == saferlink::server::notices::State::active);
    CHECK(notice->towns == std::vector<std::string>{"chatham"});
    CHECK(notice->approved_by == "coord-2");
    CHECK(notice->expires_at_ms == 1731536004000);
    CHECK(notice->cited_forms.size() == 2);
    CHECK(notice_store::events(db, 1).size() == 3);

    const auto verified = audit::verify(db);
    INFO(verified.reason);
    CHECK(verified.ok);
    CHECK(verified.rows >= 7);  // the five old rows and the two reads above
  });
}

TEST_CASE("a version-3 database migrates to the current version with its uploads, notice and "
          "audit chain intact, and takes a sighting flagged against the old notice") {
  TempDir dir;
  const std::string path = dir.file("v3.db");
  make_fixture(path, 3);
  Snapshot before;
  {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    REQUIRE(user_version(db) == 3);
    before = snapshot(db);
    REQUIRE(before.rows.at("image_uploads").size() == 1);
    REQUIRE(before.rows.at("audit_log").size() == 5);
  }

  Store store({path});
  store.run_sync([&](SQLite::Database& db) {
    CHECK(user_version(db) == Store::latest_schema_version());
    check_rows_intact(db, before);
    CHECK(schema(db) == fresh_schema());
    CHECK(foreign_key_violations(db) == 0);
    check_v1_rows_readable(db);
    for (const auto& table : tables(db)) {
      if (before.columns.count(table) != 0) continue;
      // Migration 5 logs the notices already active as the gallery's first versions.
      if (table == "gallery_log") {
        CHECK(db.execAndGet("SELECT group_concat(notice_id) FROM gallery_log").getString() ==
              "1");
        continue;
      }
      CAPTURE(table);
      CHECK(rows_of(db, table, columns(db, table)).empty());
    }
    const auto verified = audit::verify(db);
    INFO(verified.reason);
    CHECK(verified.ok);
    CHECK(verified.rows == 5);
  });

  // A sighting of the v2 profile in Chatham is flagged against its active notice, and its
  // audit row carries the old chain on.
  store.run_sync([&](SQLite::Database& db) {
    sightings::Record r;
    r.device_id = "shop-chatham-2";
    r.device_seq = 1;
    r.sighting_id = "shop-chatham-2:1";
    r.sender_role = "shop";
    r.sender_member = "WHSmith Chatham";
    r.sender_town = "chatham";
    r.town = "chatham";
    r.text = "at the tills again";
    r.profile_id = 1;
    r.photo_sha256 = kSha;
    r.seen_at_ms = kNow;
    r.accepted_at_ms = kNow;
    const auto result = sightings::insert(db, r, kNow);
    INFO(result.error);
    REQUIRE(result.outcome == sightings::Outcome::inserted);
    CHECK(result.stored.possible_breach);
    CHECK(result.stored.notice_id == 1);
    CHECK(result.stored.profile_name == "Razor Ray");
    const auto verified = audit::verify(db);
    INFO(verified.reason);
    CHECK(verified.ok);
    CHECK(verified.rows == 6);
    CHECK(db.execAndGet("SELECT count(*) FROM image_uploads").getInt() == 1);
  });
}

TEST_CASE("a version-4 database migrates to the current version with its sighting intact, and "
          "its active notice is in the gallery once it next changes") {
  TempDir dir;
  const std::string path = dir.file("v4.db");
  make_fixture(path, 4);
  Snapshot before;
  {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    REQUIRE(user_version(db) == 4);
    before = snapshot(db);
    REQUIRE(before.rows.at("sightings").size() == 1);
  }
  Store store({path});
  store.run_sync([&](SQLite::Database& db) {
    CHECK(user_version(db) == Store::latest_schema_version());
    check_rows_intact(db, before);
    CHECK(schema(db) == fresh_schema());
    CHECK(foreign_key_violations(db) == 0);
    // A handset that has never synced gets the old active notice in a full sync.
    const Identity shop{"shop-chatham-1", Role::shop, "chatham", "Boots Chatham", "01"};
    auto sync = gallery::sync_for(db, shop, 0);
    CHECK(sync.reset);
    REQUIRE(sync.entries.size() == 1);
    CHECK(sync.entries[0].name == "Razor Ray");
    CHECK(sync.entries[0].photo_size == 2048);
    // Revoking it (any path that writes the notice) logs a change; a handset at the version
    // before is told to remove it.
    const auto v0 = gallery::current_version(db);
    CHECK(v0 == 1);  // the migration logged the notice already active
    db.exec("UPDATE notices SET state = 'revoked', ended_at_ms = 1700000700000 WHERE "
            "notice_id = 1");
    CHECK(gallery::current_version(db) == v0 + 1);
    sync = gallery::sync_for(db, shop, v0);
    CHECK_FALSE(sync.reset);
    CHECK(sync.entries.empty());
    REQUIRE(sync.removals.size() == 1);
    CHECK(sync.removals[0].notice_id == 1);
    CHECK(sync.removals[0].reason == "revoked");
  });
}

TEST_CASE("a database one version newer than this binary is refused naming both versions, and "
          "left untouched") {
  TempDir dir;
  const std::string path = dir.file("newer.db");
  const int newer = Store::latest_schema_version() + 1;
  make_fixture(path, kNewestFixture, [newer](SQLite::Database& db) {
    db.exec("PRAGMA user_version = " + std::to_string(newer));
  });
  Snapshot before;
  std::vector<std::string> schema_before;
  {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    before = snapshot(db);
    schema_before = schema(db);
  }

  const std::string error = construction_error([&] { Store store({path}); });
  INFO("error: ", error);
  CHECK(error.find(path) != std::string::npos);
  CHECK(error.find("schema version " + std::to_string(newer)) != std::string::npos);
  CHECK(error.find("only up to " + std::to_string(Store::latest_schema_version())) !=
        std::string::npos);

  SQLite::Database db(path, SQLite::OPEN_READONLY);
  CHECK(user_version(db) == newer);
  CHECK(schema(db) == schema_before);
  check_rows_intact(db, before);
}

TEST_CASE("a migration that fails half-way leaves nothing of itself: the database stays at "
          "version 1 with its data") {
  TempDir dir;
  const std::string path = dir.file("clash.db");
  // Migration 2 creates blobs, incident_forms, ... and last audit_log, which is already here
  // with another shape: it fails after creating every other table.
  make_fixture(path, 1, [](SQLite::Database& db) {
    db.exec("CREATE TABLE audit_log (note TEXT NOT NULL)");
    db.exec("INSERT INTO audit_log (note) VALUES ('kept by hand')");
  });
  Snapshot before;
  std::vector<std::string> schema_before;
  {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    before = snapshot(db);
    schema_before = schema(db);
  }

  const std::string error = construction_error([&] { Store store({path}); });
  INFO("error: ", error);
  CHECK(error.find("schema version 2") != std::string::npos);
  CHECK(error.find("audit_log") != std::string::npos);
  {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    CHECK(user_version(db) == 1);
    CHECK(schema(db) == schema_before);  // not one table or index of migration 2
    CHECK_FALSE(db.tableExists("blobs"));
    CHECK_FALSE(db.tableExists("incident_forms"));
    CHECK_FALSE(db.tableExists("notice_events"));
    check_rows_intact(db, before);
  }

  // With the clash removed, the same database migrates all the way.
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    db.exec("DROP TABLE audit_log");
  }
  Store store({path});
  store.run_sync([&](SQLite::Database& db) {
    CHECK(user_version(db) == Store::latest_schema_version());
    CHECK(schema(db) == fresh_schema());
    check_v1_rows_readable(db);
  });
}

TEST_CASE("when the newest migration fails, the ones before it stay applied and the database "
          "stays at the version before it") {
  const int latest = Store::latest_schema_version();
  REQUIRE(latest - 1 <= kNewestFixture);  // see the first test case
  // Tables the newest migration creates: today's tables less those of the fixture before it.
  std::vector<std::string> previous;
  {
    TempDir dir;
    const std::string path = dir.file("previous.db");
    make_fixture(path, latest - 1);
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    previous = tables(db);
  }
  std::vector<std::string> created;
  for (const auto& table : fresh_tables()) {
    if (std::find(previous.begin(), previous.end(), table) == previous.end()) {
      created.push_back(table);
    }
  }
  if (created.empty()) {
    MESSAGE("migration ", latest, " creates no table: nothing to clash with");
    return;
  }

  // A version-1 database holding a table of that name with another shape: every migration up
  // to the newest applies, then the newest fails.
  TempDir dir;
  const std::string path = dir.file("clash-newest.db");
  const std::string clash = created.back();  // created last: the rest of the migration ran
  make_fixture(path, 1, [&clash](SQLite::Database& db) {
    db.exec("CREATE TABLE " + quoted(clash) + " (note TEXT NOT NULL)");
  });
  Snapshot before;
  {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    before = snapshot(db);
  }
  const std::string error = construction_error([&] { Store store({path}); });
  INFO("error: ", error, "; clashing table: ", clash);
  CHECK(error.find("schema version " + std::to_string(latest)) != std::string::npos);

  SQLite::Database db(path, SQLite::OPEN_READONLY);
  CHECK(user_version(db) == latest - 1);
  for (const auto& table : created) {
    if (table != clash) CHECK_FALSE(db.tableExists(table));
  }
  CHECK(columns(db, clash) == std::vector<std::string>{"note"});
  for (const auto& table : previous) CHECK(db.tableExists(table));
  check_rows_intact(db, before);
}

}  // TEST_SUITE
