// The exclusion gallery on handsets, in SQLite (schema version 5): what a handset of a given
// town holds, the changes since a version, which handsets were sent which entry and confirmed
// its deletion, and which photos a device may download. Plain functions of a database handle,
// run on the store thread inside a Store job.
//
// Versions: `gallery_log` keeps, per notice, only its latest change (triggers on `notices`
// and `profiles` write it, so every path that changes a notice is covered: coordinators'
// transitions, the scheduled expiry, a purge). A device at version v needs exactly the notices
// whose latest change is above v: for each, its current state (in the gallery of the device's
// town: an entry; otherwise: a removal). Superseded changes collapse into one.
#pragma once

#include "core/identity.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace SQLite {
class Database;
}

namespace saferlink::server::gallery {

struct Entry {
  std::int64_t notice_id = 0;
  std::int64_t profile_id = 0;
  std::string name;
  std::string conditions;
  std::vector<std::string> towns;
  std::int64_t expires_at_ms = 0;
  std::string photo_sha256;  // empty: none
  std::uint64_t photo_size = 0;
  std::string photo_mime;
};

// True when a notice of `towns` belongs in the gallery of `who` (its town, or "all" either
// side).
bool covers(const std::vector<std::string>& towns, const Identity& who);

struct Change {
  std::uint64_t version = 0;
  std::int64_t notice_id = 0;
  std::optional<Entry> entry;  // set while the notice is active
  std::string reason;          // otherwise: expired | revoked | disputed | withdrawn
};

// The newest version (0: the gallery never changed).
std::uint64_t current_version(SQLite::Database& db);

// Every notice whose latest change is above `from`, in version order.
std::vector<Change> changes_since(SQLite::Database& db, std::uint64_t from);

struct Removal {
  std::int64_t notice_id = 0;
  std::string reason;
};

struct Sync {
  std::uint64_t from_version = 0;
  std::uint64_t to_version = 0;
  bool reset = false;  // `from` was 0 or unknown here: entries is the whole gallery
  std::vector<Entry> entries;
  std::vector<Removal> removals;
};

// What a device of `who` at `from` needs to reach the current version.
Sync sync_for(SQLite::Database& db, const Identity& who, std::uint64_t from);

// Records that `device_id` was sent these entries (it may hold them from now on).
void record_sent(SQLite::Database& db, const std::string& device_id,
                 const std::vector<std::int64_t>& notice_ids, std::int64_t now_ms);

// Records that `device_id` deleted the entry of `notice_id`. False when no such notice exists
// (purged since, or never): nothing recorded.
bool confirm_removed(SQLite::Database& db, const std::string& device_id, std::int64_t notice_id,
                     std::int64_t now_ms);

struct Holder {
  std::string device_id;
  std::int64_t sent_at_ms = 0;
  std::optional<std::int64_t> removed_at_ms;  // its confirmation of the deletion
};
// The notices whose entries `device_id` was sent and has not confirmed deleting.
std::vector<std::int64_t> holders_of_device(SQLite::Database& db, const std::string& device_id);

// The handsets that were sent `notice_id`'s entry, by device id.
std::vector<Holder> holders(SQLite::Database& db, std::int64_t notice_id);

struct PhotoGrant {
  std::string mime;
  std::uint64_t size = 0;
};
enum class PhotoRefusal { none, unknown, not_allowed };
// Whether `who` may download image `sha256`: coordinators any image; everyone the photo of an
// active notice in their gallery; shops, police and CCTV also the photo of a sighting relayed
// to them within `sighting_ttl_ms`; police and CCTV the photos of offender profiles (as the
// photos.get query allows). `refusal` says why not when nullopt is returned.
std::optional<PhotoGrant> photo_grant(SQLite::Database& db, const Identity& who,
                                      const std::string& sha256, std::int64_t now_ms,
                                      std::int64_t sighting_ttl_ms, PhotoRefusal* refusal);

}  // namespace saferlink::server::gallery
