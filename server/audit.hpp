// The audit log: every read of a profile, photo or form and every change to the intelligence
// store, as rows in `audit_log` that are hash-chained — each row stores the SHA-256 of the
// previous row's hash and its own fields — so altering, removing or reordering a row is
// detected by verify(). Plain functions of a database handle; they run on the store thread
// (inside the same Store job, and so the same transaction, as the access they record).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace SQLite {
class Database;
}

namespace saferlink::server::audit {

struct Entry {
  std::int64_t at_ms = 0;
  std::string actor_id;     // from the certificate, or "hub" for scheduled work
  std::string actor_role;   // shop | police | cctv | coordinator | hub
  std::string action;       // read | create | update | link | unlink | merge | transition |
                            // purge | export | upload
  std::string object_type;  // form | profile | photo | notice | audit
  std::string object_id;
  std::string detail;       // short free text, e.g. "approved: board decision 2026-11"
};

struct Row {
  std::int64_t seq = 0;
  Entry entry;
  std::string prev_hash;  // 64 hex digits; all zeros for the first row
  std::string hash;       // 64 hex digits
};

// Appends one row, chained to the last one. Returns its seq.
std::int64_t append(SQLite::Database& db, const Entry& entry);

struct Filter {
  std::optional<std::string> object_type;
  std::optional<std::string> object_id;
  std::optional<std::string> actor_id;
  std::int64_t after_seq = 0;  // rows with seq > after_seq
  std::size_t limit = 1000;
};
std::vector<Row> list(SQLite::Database& db, const Filter& filter);

struct Verification {
  bool ok = true;
  std::int64_t rows = 0;                  // rows checked
  std::optional<std::int64_t> first_bad;  // seq of the first row whose link is broken
  std::string reason;                     // e.g. "row 17: hash does not match its contents"
};
// Walks the whole chain in seq order: seq must be contiguous from 1, each prev_hash must equal
// the previous row's hash, and each hash must match the row's contents.
Verification verify(SQLite::Database& db);

// The hash of a row: hex SHA-256 over prev_hash and the row's fields, each length-prefixed so
// that no two different rows serialise alike. Exposed for tests.
std::string row_hash(std::int64_t seq, const Entry& entry, const std::string& prev_hash);

}  // namespace saferlink::server::audit
