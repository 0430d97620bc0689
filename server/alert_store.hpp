// Alert records in SQLite: plain functions of a database handle. They run on the store thread
// (inside a Store job) or directly on a test's database. Every statement is prepared; no SQL is
// assembled from input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace SQLite {
class Database;
}

namespace saferlink::server::alerts {

struct AlertRecord {
  std::string alert_id;      // "<device id>:<seq>"
  std::string device_id;
  std::uint64_t device_seq = 0;
  std::string member;
  std::string town;
  std::string status;        // "actual" | "exercise" | "test"
  std::string severity;      // "extreme" | "severe" | "moderate" | "minor"
  std::string note;
  std::int64_t pressed_at_ms = 0;
  std::int64_t expires_at_ms = 0;
  std::int64_t accepted_at_ms = 0;
  std::optional<std::int64_t> cancelled_at_ms;
  std::string cancel_reason;
};

enum class InsertOutcome { inserted, duplicate };

// Inserts the alert unless its alert_id is already stored (then returns duplicate and leaves
// the stored row untouched; `existing` receives the stored row when non-null).
InsertOutcome insert(SQLite::Database& db, const AlertRecord& record,
                     AlertRecord* existing = nullptr);

std::optional<AlertRecord> find(SQLite::Database& db, const std::string& alert_id);

// Marks the alert cancelled (first cancel wins; later ones return false).
bool mark_cancelled(SQLite::Database& db, const std::string& alert_id, std::int64_t at_ms,
                    const std::string& reason);

struct EventRecord {
  std::string alert_id;
  std::string kind;          // "delivered" | "acknowledged" | "en_route" | "on_scene" |
                             // "resolved" | "escalated" | "cancelled"
  std::string by_id;
  std::string by_role;
  std::string by_town;
  std::int64_t at_ms = 0;
  std::uint32_t round = 0;   // escalation round for "escalated"
};

void record_event(SQLite::Database& db, const EventRecord& event);
std::vector<EventRecord> events(SQLite::Database& db, const std::string& alert_id);

// Alerts accepted at or after `since_ms` that are not cancelled, oldest first (used at start-up
// to resume escalation of alerts nobody acknowledged before a restart).
std::vector<AlertRecord> open_since(SQLite::Database& db, std::int64_t since_ms);

// Alerts accepted at or after `since_ms`, newest first, at most `limit`: every town's when
// `town` is empty or "all", else those of `town` and those escalated (an escalation reaches
// every town). For the console's alert board.
std::vector<AlertRecord> recent(SQLite::Database& db, std::int64_t since_ms,
                                const std::string& town, int limit);

}  // namespace saferlink::server::alerts
