// Offender sightings in SQLite (`sightings`, schema version 4): plain functions of a database
// handle. They run on the store thread, inside a Store job (and so the job's transaction), or
// directly on a test's database. insert() writes the sighting and, when it names a profile, an
// audit row, inside its own SAVEPOINT: both or neither. Every statement is prepared.
//
// The breach rule (shared/SPEC.md section 2): a sighting naming a profile is a possible breach
// when that profile (or, for a merged profile, the one it was merged into) has an exclusion
// notice in state `active` whose towns include the sighting's town or are "all", and whose term
// has not ended (one past expires_at that the scheduled expiry has not reached yet does not
// count). Proposed, approved, disputed, expired and revoked notices never flag a sighting.
//
// Refusals (unknown profile, photo not held) are returned in the result; exceptions mean the
// database failed.
#pragma once

#include "core/identity.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace SQLite {
class Database;
}

namespace saferlink::server::sightings {

struct Record {
  std::string sighting_id;  // "<device id>:<device_seq>"
  std::string device_id;
  std::uint64_t device_seq = 0;
  std::string sender_role;
  std::string sender_member;
  std::string sender_town;  // from the certificate (may be "all")
  std::string town;         // where it happened: a specific town
  std::string text;
  std::string location;
  std::string heading;
  std::optional<std::int64_t> profile_id;  // as stored: a named profile followed through merges
  std::string photo_sha256;                // empty: none
  std::int64_t seen_at_ms = 0;
  std::int64_t accepted_at_ms = 0;
  // Decided by insert():
  bool possible_breach = false;
  std::optional<std::int64_t> notice_id;  // the active notice, when possible_breach
  std::string profile_name;               // of the named profile (not stored: read back)
};

struct Breach {
  bool possible = false;
  std::optional<std::int64_t> notice_id;  // the lowest-numbered active notice that applies
};
// Whether a sighting of `profile_id` in `town` at `now_ms` may breach an active exclusion notice
// on that very profile (insert() also looks at the profile a merged one was merged into).
Breach check_breach(SQLite::Database& db, std::int64_t profile_id, const std::string& town,
                    std::int64_t now_ms);

enum class Outcome { inserted, duplicate, refused };

struct InsertResult {
  Outcome outcome = Outcome::refused;
  Record stored;       // inserted: the record as written; duplicate: the one stored earlier
  std::string error;   // refused: "field: what is wrong", e.g. "profile_id: no profile 12"
};

// Stores a sighting that passed the session's field checks. A named profile must exist (a
// merged one is followed to the profile it was merged into, which is what is stored); a photo
// must be held (`blobs`). Decides possible_breach and notice_id, stores them, and appends an
// audit row ("update", "profile", id, "sighting <sighting id>") when a profile is named: the
// sighting is intelligence held about that person. A sighting id stored before is a retry:
// `duplicate` with the stored record, nothing written.
InsertResult insert(SQLite::Database& db, Record record, std::int64_t now_ms);

// The stored sighting, or nullopt.
std::optional<Record> find(SQLite::Database& db, const std::string& sighting_id);

// Sightings accepted at or after `since_ms`, newest first, at most `limit`: in `town`, or in
// every town when `town` is empty or "all". For the console's board.
std::vector<Record> recent(SQLite::Database& db, std::int64_t since_ms, const std::string& town,
                           int limit);

}  // namespace saferlink::server::sightings
