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
    // 2: the intelligence store: incident forms, images, offender profiles, exclusion notices
    // and the hash-chained audit log (docs/data-model.md). Images live in files named by their
    // SHA-256 (server/blob_store); `blobs` records what is held.
    R"sql(
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
)sql",
    // 3: image uploads (server/uploads). Maps the SHA-256 a device declared for an image (of
    // the bytes it sent) to the image as stored (metadata removed), so that the same image sent
    // again is recognised at UploadBegin and never transferred or stored twice.
    R"sql(
CREATE TABLE image_uploads (declared_sha256 TEXT PRIMARY KEY, stored_sha256 TEXT NOT NULL REFERENCES blobs (sha256) ON DELETE CASCADE, first_sender TEXT NOT NULL, at_ms INTEGER NOT NULL)
)sql",
    // 4: offender sightings (server/sighting_store), kept for the record and for replay to
    // handsets that were off air. The references never block a retention purge: a purged
    // profile, notice or image leaves the sighting without it.
    R"sql(
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
)sql",
    // 5: live distribution (server/outbox, server/gallery_store). Devices the hub has seen, the
    // store-and-forward log (each relayed message once, and per device the sequence number it
    // was given), the gallery's change log (one row per notice: its latest change; triggers
    // keep it, so that every path that changes a notice is covered) and which handsets were
    // sent which gallery entry and confirmed its deletion.
    R"sql(
CREATE TABLE hub_state (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);

CREATE TABLE devices (
  device_id     TEXT PRIMARY KEY,
  role          TEXT NOT NULL,
  town          TEXT NOT NULL,
  member        TEXT NOT NULL,
  serial_hex    TEXT NOT NULL,
  first_seen_ms INTEGER NOT NULL,
  last_seen_ms  INTEGER NOT NULL
);

CREATE TABLE relay_log (
  relay_id      INTEGER PRIMARY KEY,
  kind          TEXT NOT NULL CHECK (kind IN ('panic', 'cancel', 'sighting')),
  ref           TEXT NOT NULL,
  body          BLOB NOT NULL,
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL
);
CREATE INDEX relay_log_expires ON relay_log (expires_at_ms);

CREATE TABLE outbox (
  device_id TEXT NOT NULL,
  seq       INTEGER NOT NULL,
  lane      TEXT NOT NULL CHECK (lane IN ('alert', 'other')),
  relay_id  INTEGER NOT NULL REFERENCES relay_log (relay_id) ON DELETE CASCADE,
  PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
CREATE INDEX outbox_relay ON outbox (relay_id);

CREATE TABLE gallery_log (
  version   INTEGER PRIMARY KEY AUTOINCREMENT,
  notice_id INTEGER NOT NULL,
  at_ms     INTEGER NOT NULL
);
CREATE INDEX gallery_log_notice ON gallery_log (notice_id);
-- Notices already in the gallery are its first versions.
INSERT INTO gallery_log (notice_id, at_ms)
  SELECT notice_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
  FROM notices WHERE state = 'active' ORDER BY notice_id;

CREATE TRIGGER gallery_notice_insert AFTER INSERT ON notices WHEN NEW.state = 'active'
BEGIN
  DELETE FROM gallery_log WHERE notice_id = NEW.notice_id;
  INSERT INTO gallery_log (notice_id, at_ms)
    VALUES (NEW.notice_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER gallery_notice_update AFTER UPDATE ON notices
WHEN (OLD.state = 'active' OR NEW.state = 'active')
 AND (OLD.state IS NOT NEW.state OR OLD.conditions IS NOT NEW.conditions
      OR OLD.towns IS NOT NEW.towns OR OLD.photo_sha256 IS NOT NEW.photo_sha256
      OR OLD.expires_at_ms IS NOT NEW.expires_at_ms OR OLD.profile_id IS NOT NEW.profile_id)
BEGIN
  DELETE FROM gallery_log WHERE notice_id = NEW.notice_id;
  INSERT INTO gallery_log (notice_id, at_ms)
    VALUES (NEW.notice_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER gallery_notice_delete AFTER DELETE ON notices WHEN OLD.state = 'active'
BEGIN
  DELETE FROM gallery_log WHERE notice_id = OLD.notice_id;
  INSERT INTO gallery_log (notice_id, at_ms)
    VALUES (OLD.notice_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER gallery_profile_name AFTER UPDATE OF name ON profiles
WHEN OLD.name IS NOT NEW.name
BEGIN
  DELETE FROM gallery_log WHERE notice_id IN
    (SELECT notice_id FROM notices WHERE profile_id = NEW.profile_id AND state = 'active');
  INSERT INTO gallery_log (notice_id, at_ms)
    SELECT notice_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM notices WHERE profile_id = NEW.profile_id AND state = 'active';
END;

CREATE TABLE gallery_holders (
  notice_id     INTEGER NOT NULL REFERENCES notices (notice_id) ON DELETE CASCADE,
  device_id     TEXT NOT NULL,
  sent_at_ms    INTEGER NOT NULL,
  removed_at_ms INTEGER,
  PRIMARY KEY (notice_id, device_id)
) WITHOUT ROWID;
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
