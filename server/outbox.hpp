// Store-and-forward in SQLite (schema version 5): the devices the hub has seen, each relayed
// message once (`relay_log`), and per device the sequence number it was given (`outbox`).
// Plain functions of a database handle, run on the store thread inside a Store job.
//
// Sequence numbers are per device and only grow. They are handed out in memory on the hub
// strand (server/hub.cpp) and written here after the live send, so a number may reach a device
// before its row commits; after a restart the hub starts every device from a new epoch
// (epoch << 32), above anything an earlier run handed out, so no number is ever reused.
#pragma once

#include "core/identity.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace SQLite {
class Database;
}

namespace saferlink::server::outbox {

struct KnownDevice {
  Identity identity;  // as its certificate said when it last connected
  std::int64_t last_seen_ms = 0;
};

// Every device that has said hello to this hub.
std::vector<KnownDevice> load_devices(SQLite::Database& db);
// Records a device's hello (identity as in its certificate now).
void upsert_device(SQLite::Database& db, const Identity& identity, std::int64_t now_ms);

// Bumps and returns the sequence epoch: call once per hub start.
std::uint64_t next_epoch(SQLite::Database& db);

enum class Kind { panic, cancel, sighting };
const char* to_string(Kind kind);

// Alerts overtake sightings on the way to a device, so sequence order holds per lane, and a
// device's cursor is per lane: alert (panics and cancels) and other (sightings).
enum class Lane { alert, other };
Lane lane_of(Kind kind);

struct Cursor {
  std::uint64_t alert = 0;  // highest seq of the alert lane processed
  std::uint64_t other = 0;  // highest seq of the other lane processed
};

struct Relay {
  Kind kind = Kind::panic;
  std::string ref;    // alert id or sighting id
  std::string body;   // the serialized Envelope, without seq
  std::int64_t created_at_ms = 0;
  std::int64_t expires_at_ms = 0;  // replayed only before this
};

// Writes one relayed message and the sequence number each target device got for it.
void record(SQLite::Database& db, const Relay& relay,
            const std::vector<std::pair<std::string, std::uint64_t>>& targets);

struct Pending {
  std::uint64_t seq = 0;
  Kind kind = Kind::panic;
  std::string ref;
  std::string body;
};

// What `device_id` has not processed: in each lane, sequence above that lane's cursor, not
// expired at `now_ms`; in sequence order. Rows at or below the cursors (processed) are deleted
// on the way.
std::vector<Pending> pending(SQLite::Database& db, const std::string& device_id,
                             const Cursor& processed, std::int64_t now_ms);

// The highest sequence recorded for each device (for Welcome.resume_cursor after a restart).
std::vector<std::pair<std::string, std::uint64_t>> last_seqs(SQLite::Database& db);

// Deletes relayed messages past their time to live (and their outbox rows). Returns how many.
std::size_t prune(SQLite::Database& db, std::int64_t now_ms);

}  // namespace saferlink::server::outbox
