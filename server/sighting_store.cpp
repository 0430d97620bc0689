#include "server/sighting_store.hpp"

#include "server/savepoint.hpp"

#include "server/audit.hpp"
#include "server/notice_store.hpp"
#include "server/notices.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace saferlink::server::sightings {
namespace {


// A profile id followed through merges to the profile that holds its data now; nullopt when
// there is no such profile.
std::optional<std::int64_t> resolve_profile(SQLite::Database& db, std::int64_t profile_id) {
  SQLite::Statement select(db, "SELECT merged_into FROM profiles WHERE profile_id = ?");
  std::int64_t id = profile_id;
  for (int hops = 0; hops < 1000; ++hops) {
    select.reset();
    select.bind(1, id);
    if (!select.executeStep()) return std::nullopt;
    if (select.getColumn(0).isNull()) return id;
    id = select.getColumn(0).getInt64();
  }
  throw std::runtime_error("profile " + std::to_string(profile_id) + ": merge chain too long");
}

std::string profile_name(SQLite::Database& db, std::int64_t profile_id) {
  SQLite::Statement select(db, "SELECT name FROM profiles WHERE profile_id = ?");
  select.bind(1, profile_id);
  return select.executeStep() ? select.getColumn(0).getString() : std::string();
}

bool blob_held(SQLite::Database& db, const std::string& sha256) {
  SQLite::Statement select(db, "SELECT 1 FROM blobs WHERE sha256 = ?");
  select.bind(1, sha256);
  return select.executeStep();
}

std::optional<std::int64_t> optional_int(const SQLite::Column& column) {
  if (column.isNull()) return std::nullopt;
  return column.getInt64();
}

}  // namespace

Breach check_breach(SQLite::Database& db, std::int64_t profile_id, const std::string& town,
                    std::int64_t now_ms) {
  notice_store::Filter filter;
  filter.state = notices::State::active;
  filter.profile_id = profile_id;
  Breach breach;
  for (const auto& notice : notice_store::list(db, filter)) {
    const bool applies =
        std::any_of(notice.towns.begin(), notice.towns.end(), [&town](const std::string& t) {
          return t == town || t == kAllTowns;
        });
    if (!applies) continue;
    if (notice.expires_at_ms && *notice.expires_at_ms <= now_ms) continue;
    if (!breach.notice_id || notice.id < *breach.notice_id) breach.notice_id = notice.id;
    breach.possible = true;
  }
  return breach;
}

namespace {

constexpr const char* kSelectSightings =
    "SELECT s.sighting_id, s.device_id, s.device_seq, s.sender_role, s.sender_member, "
    "s.sender_town, s.town, s.text, s.location, s.heading, s.profile_id, "
    "coalesce(s.photo_sha256, ''), s.seen_at_ms, s.accepted_at_ms, s.possible_breach, "
    "s.notice_id, coalesce(p.name, '') "
    "FROM sightings s LEFT JOIN profiles p ON p.profile_id = s.profile_id ";

// Reads a row selected with kSelectSightings.
Record read_sighting(const SQLite::Statement& select) {
  Record r;
  r.sighting_id = select.getColumn(0).getString();
  r.device_id = select.getColumn(1).getString();
  r.device_seq = static_cast<std::uint64_t>(select.getColumn(2).getInt64());
  r.sender_role = select.getColumn(3).getString();
  r.sender_member = select.getColumn(4).getString();
  r.sender_town = select.getColumn(5).getString();
  r.town = select.getColumn(6).getString();
  r.text = select.getColumn(7).getString();
  r.location = select.getColumn(8).getString();
  r.heading = select.getColumn(9).getString();
  r.profile_id = optional_int(select.getColumn(10));
  r.photo_sha256 = select.getColumn(11).getString();
  r.seen_at_ms = select.getColumn(12).getInt64();
  r.accepted_at_ms = select.getColumn(13).getInt64();
  r.possible_breach = select.getColumn(14).getInt() != 0;
  r.notice_id = optional_int(select.getColumn(15));
  r.profile_name = select.getColumn(16).getString();
  return r;
}

}  // namespace

std::optional<Record> find(SQLite::Database& db, const std::string& sighting_id) {
  SQLite::Statement select(db, std::string(kSelectSightings) + "WHERE s.sighting_id = ?");
  select.bind(1, sighting_id);
  if (!select.executeStep()) return std::nullopt;
  return read_sighting(select);
}

std::vector<Record> recent(SQLite::Database& db, std::int64_t since_ms, const std::string& town,
                           int limit) {
  const bool every_town = town.empty() || town == "all";
  SQLite::Statement select(db, std::string(kSelectSightings) +
                                   "WHERE s.accepted_at_ms >= ?1 AND (?2 OR s.town = ?3) "
                                   "ORDER BY s.accepted_at_ms DESC, s.rowid DESC LIMIT ?4");
  select.bind(1, since_ms);
  select.bind(2, every_town ? 1 : 0);
  select.bind(3, town);
  select.bind(4, limit);
  std::vector<Record> out;
  while (select.executeStep()) out.push_back(read_sighting(select));
  return out;
}

InsertResult insert(SQLite::Database& db, Record record, std::int64_t now_ms) {
  InsertResult result;
  Savepoint savepoint(db);
  if (auto earlier = find(db, record.sighting_id)) {
    if (earlier->device_id != record.device_id) {
      result.error = "sighting_id: already used by another device";
      return result;
    }
    result.outcome = Outcome::duplicate;
    result.stored = std::move(*earlier);
    savepoint.commit();
    return result;
  }
  if (record.profile_id) {
    const auto resolved = resolve_profile(db, *record.profile_id);
    if (!resolved) {
      result.error = "profile_id: no profile " + std::to_string(*record.profile_id);
      return result;
    }
    // A notice served before a merge stays on the profile it named: look at both.
    Breach breach = check_breach(db, *resolved, record.town, now_ms);
    if (!breach.possible && *resolved != *record.profile_id) {
      breach = check_breach(db, *record.profile_id, record.town, now_ms);
    }
    record.profile_id = resolved;
    record.profile_name = profile_name(db, *resolved);
    record.possible_breach = breach.possible;
    record.notice_id = breach.notice_id;
  } else {
    record.possible_breach = false;
    record.notice_id.reset();
    record.profile_name.clear();
  }
  if (!record.photo_sha256.empty() && !blob_held(db, record.photo_sha256)) {
    result.error = "photo_sha256: no such image (upload it first)";
    return result;
  }

  SQLite::Statement insert_row(
      db,
      "INSERT INTO sightings (sighting_id, device_id, device_seq, sender_role, sender_member, "
      "sender_town, town, text, location, heading, profile_id, photo_sha256, possible_breach, "
      "notice_id, seen_at_ms, accepted_at_ms) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)");
  insert_row.bind(1, record.sighting_id);
  insert_row.bind(2, record.device_id);
  insert_row.bind(3, static_cast<std::int64_t>(record.device_seq));
  insert_row.bind(4, record.sender_role);
  insert_row.bind(5, record.sender_member);
  insert_row.bind(6, record.sender_town);
  insert_row.bind(7, record.town);
  insert_row.bind(8, record.text);
  insert_row.bind(9, record.location);
  insert_row.bind(10, record.heading);
  if (record.profile_id) {
    insert_row.bind(11, *record.profile_id);
  } else {
    insert_row.bind(11);
  }
  if (!record.photo_sha256.empty()) {
    insert_row.bind(12, record.photo_sha256);
  } else {
    insert_row.bind(12);
  }
  insert_row.bind(13, record.possible_breach ? 1 : 0);
  if (record.notice_id) {
    insert_row.bind(14, *record.notice_id);
  } else {
    insert_row.bind(14);
  }
  insert_row.bind(15, record.seen_at_ms);
  insert_row.bind(16, record.accepted_at_ms);
  insert_row.exec();

  if (record.profile_id) {
    // Ids only: the audit log outlives every retention period.
    audit::Entry entry;
    entry.at_ms = now_ms;
    entry.actor_id = record.device_id;
    entry.actor_role = record.sender_role;
    entry.action = "update";
    entry.object_type = "profile";
    entry.object_id = std::to_string(*record.profile_id);
    entry.detail = "sighting " + record.sighting_id +
                   (record.possible_breach
                        ? " (possible breach of notice " + std::to_string(*record.notice_id) + ")"
                        : "");
    audit::append(db, entry);
  }
  savepoint.commit();
  result.outcome = Outcome::inserted;
  result.stored = std::move(record);
  return result;
}

}  // namespace saferlink::server::sightings
