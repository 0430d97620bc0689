#include "server/gallery_store.hpp"

#include "server/notices.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <algorithm>
#include <map>

namespace saferlink::server::gallery {

namespace {

constexpr const char* kEntryColumns =
    "n.notice_id, n.profile_id, p.name, n.conditions, n.towns, n.expires_at_ms, "
    "n.photo_sha256, b.size, b.mime, n.state";
constexpr const char* kEntryFrom =
    " FROM notices n JOIN profiles p ON p.profile_id = n.profile_id "
    "LEFT JOIN blobs b ON b.sha256 = n.photo_sha256 ";

Entry entry_of(SQLite::Statement& row) {
  Entry e;
  e.notice_id = row.getColumn(0).getInt64();
  e.profile_id = row.getColumn(1).getInt64();
  e.name = row.getColumn(2).getString();
  e.conditions = row.getColumn(3).getString();
  e.towns = notices::split_towns(row.getColumn(4).getString());
  e.expires_at_ms = row.getColumn(5).isNull() ? 0 : row.getColumn(5).getInt64();
  if (!row.getColumn(6).isNull() && !row.getColumn(7).isNull()) {
    e.photo_sha256 = row.getColumn(6).getString();
    e.photo_size = static_cast<std::uint64_t>(row.getColumn(7).getInt64());
    e.photo_mime = row.getColumn(8).getString();
  }
  return e;
}

std::string reason_of_state(const std::string& state) {
  if (state == "expired" || state == "revoked" || state == "disputed") return state;
  return "withdrawn";
}

}  // namespace

bool covers(const std::vector<std::string>& towns, const Identity& who) {
  if (who.all_towns()) return true;
  return std::find(towns.begin(), towns.end(), kAllTowns) != towns.end() ||
         std::find(towns.begin(), towns.end(), who.town) != towns.end();
}

std::uint64_t current_version(SQLite::Database& db) {
  // AUTOINCREMENT's high-water mark: the log keeps only each notice's latest row, so MAX() of
  // what is left could go down; the sequence never does.
  SQLite::Statement select(db, "SELECT seq FROM sqlite_sequence WHERE name = 'gallery_log'");
  return select.executeStep() ? static_cast<std::uint64_t>(select.getColumn(0).getInt64()) : 0;
}

std::vector<Change> changes_since(SQLite::Database& db, std::uint64_t from) {
  SQLite::Statement changed(
      db, "SELECT version, notice_id FROM gallery_log WHERE version > ? ORDER BY version");
  changed.bind(1, static_cast<std::int64_t>(from));
  SQLite::Statement notice(db, std::string("SELECT ") + kEntryColumns + kEntryFrom +
                                   "WHERE n.notice_id = ?");
  std::vector<Change> out;
  while (changed.executeStep()) {
    Change c;
    c.version = static_cast<std::uint64_t>(changed.getColumn(0).getInt64());
    c.notice_id = changed.getColumn(1).getInt64();
    notice.bind(1, c.notice_id);
    if (notice.executeStep()) {
      const std::string state = notice.getColumn(9).getString();
      if (state == "active") {
        c.entry = entry_of(notice);
      } else {
        c.reason = reason_of_state(state);
      }
    } else {
      c.reason = "withdrawn";  // the record itself is gone (purged)
    }
    notice.reset();
    out.push_back(std::move(c));
  }
  return out;
}

Sync sync_for(SQLite::Database& db, const Identity& who, std::uint64_t from) {
  Sync sync;
  sync.from_version = from;
  sync.to_version = current_version(db);
  if (from == 0 || from > sync.to_version) {
    sync.reset = true;
    SQLite::Statement all(db, std::string("SELECT ") + kEntryColumns + kEntryFrom +
                                  "WHERE n.state = 'active' ORDER BY n.notice_id");
    while (all.executeStep()) {
      Entry e = entry_of(all);
      if (covers(e.towns, who)) sync.entries.push_back(std::move(e));
    }
    return sync;
  }
  for (auto& change : changes_since(db, from)) {
    if (change.entry && covers(change.entry->towns, who)) {
      sync.entries.push_back(std::move(*change.entry));
    } else {
      sync.removals.push_back({change.notice_id, change.entry ? "withdrawn" : change.reason});
    }
  }
  return sync;
}

void record_sent(SQLite::Database& db, const std::string& device_id,
                 const std::vector<std::int64_t>& notice_ids, std::int64_t now_ms) {
  SQLite::Statement upsert(
      db,
      "INSERT INTO gallery_holders (notice_id, device_id, sent_at_ms, removed_at_ms) "
      "SELECT ?1, ?2, ?3, NULL WHERE EXISTS (SELECT 1 FROM notices WHERE notice_id = ?1) "
      "ON CONFLICT (notice_id, device_id) DO UPDATE SET sent_at_ms = excluded.sent_at_ms, "
      "removed_at_ms = NULL");
  for (const auto id : notice_ids) {
    upsert.bind(1, id);
    upsert.bind(2, device_id);
    upsert.bind(3, now_ms);
    upsert.exec();
    upsert.reset();
  }
}

bool confirm_removed(SQLite::Database& db, const std::string& device_id, std::int64_t notice_id,
                     std::int64_t now_ms) {
  SQLite::Statement exists(db, "SELECT 1 FROM notices WHERE notice_id = ?");
  exists.bind(1, notice_id);
  if (!exists.executeStep()) return false;
  SQLite::Statement upsert(
      db,
      "INSERT INTO gallery_holders (notice_id, device_id, sent_at_ms, removed_at_ms) "
      "VALUES (?1, ?2, ?3, ?3) ON CONFLICT (notice_id, device_id) DO UPDATE SET "
      "removed_at_ms = excluded.removed_at_ms");
  upsert.bind(1, notice_id);
  upsert.bind(2, device_id);
  upsert.bind(3, now_ms);
  upsert.exec();
  return true;
}

std::vector<std::int64_t> holders_of_device(SQLite::Database& db, const std::string& device_id) {
  SQLite::Statement select(db,
                           "SELECT notice_id FROM gallery_holders WHERE device_id = ? AND "
                           "removed_at_ms IS NULL");
  select.bind(1, device_id);
  std::vector<std::int64_t> out;
  while (select.executeStep()) out.push_back(select.getColumn(0).getInt64());
  return out;
}

std::vector<Holder> holders(SQLite::Database& db, std::int64_t notice_id) {
  SQLite::Statement select(db,
                           "SELECT device_id, sent_at_ms, removed_at_ms FROM gallery_holders "
                           "WHERE notice_id = ? ORDER BY device_id");
  select.bind(1, notice_id);
  std::vector<Holder> out;
  while (select.executeStep()) {
    Holder h;
    h.device_id = select.getColumn(0).getString();
    h.sent_at_ms = select.getColumn(1).getInt64();
    if (!select.getColumn(2).isNull()) h.removed_at_ms = select.getColumn(2).getInt64();
    out.push_back(std::move(h));
  }
  return out;
}

std::optional<PhotoGrant> photo_grant(SQLite::Database& db, const Identity& who,
                                      const std::string& sha256, std::int64_t now_ms,
                                      std::int64_t sighting_ttl_ms, PhotoRefusal* refusal) {
  *refusal = PhotoRefusal::none;
  SQLite::Statement held(db, "SELECT mime, size FROM blobs WHERE sha256 = ?");
  held.bind(1, sha256);
  if (!held.executeStep()) {
    *refusal = PhotoRefusal::unknown;
    return std::nullopt;
  }
  PhotoGrant grant{held.getColumn(0).getString(),
                   static_cast<std::uint64_t>(held.getColumn(1).getInt64())};
  if (who.role == Role::coordinator) return grant;

  SQLite::Statement gallery(
      db, "SELECT towns FROM notices WHERE photo_sha256 = ? AND state = 'active'");
  gallery.bind(1, sha256);
  while (gallery.executeStep()) {
    if (covers(notices::split_towns(gallery.getColumn(0).getString()), who)) return grant;
  }
  SQLite::Statement sighting(
      db, "SELECT town FROM sightings WHERE photo_sha256 = ? AND accepted_at_ms > ?");
  sighting.bind(1, sha256);
  sighting.bind(2, now_ms - sighting_ttl_ms);
  while (sighting.executeStep()) {
    if (who.all_towns() || sighting.getColumn(0).getString() == who.town) return grant;
  }
  if (who.role == Role::police || who.role == Role::cctv) {
    SQLite::Statement profile(db, "SELECT 1 FROM profile_photos WHERE sha256 = ? LIMIT 1");
    profile.bind(1, sha256);
    if (profile.executeStep()) return grant;
  }
  *refusal = PhotoRefusal::not_allowed;
  return std::nullopt;
}

}  // namespace saferlink::server::gallery
