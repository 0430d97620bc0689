// Exclusion notices in SQLite (`notices`, `notice_incidents`, `notice_events`): plain functions
// of a database handle that run the pure decisions of server/notices and record the result,
// its history row and an audit row (server/audit) together. They run on the store thread,
// inside a Store job (and so the job's transaction), or directly on a test's database. Each
// function that writes more than one row does so inside its own SAVEPOINT, so a failure leaves
// nothing half-written. Every statement is prepared; no SQL is assembled from input.
//
// Refusals (unknown notice, wrong role, illegal transition, ...) are returned in the Outcome;
// exceptions mean the database failed or holds something this code never writes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/identity.hpp"
#include "server/notices.hpp"

namespace SQLite {
class Database;
}

namespace saferlink::server::notice_store {

// Proposes a notice: checks the proposal (notices::propose), that the profile exists and was
// not merged into another, that it has no other live notice (proposed, approved, active or
// disputed), that every cited form exists and is linked to the profile, and that the photo (if
// any) is held; then inserts the notice, its cited forms, its first event and an audit row
// ("create", "notice"). On success `next.id` and `event.notice_id` carry the new id.
notices::Outcome create(SQLite::Database& db, const notices::Proposal& proposal,
                        const Identity& by, std::int64_t now_ms, std::string_view reason,
                        const notices::Options& options = {});

std::optional<notices::Notice> load(SQLite::Database& db, std::int64_t notice_id);

struct Filter {
  std::optional<notices::State> state;
  std::optional<std::int64_t> profile_id;
  std::size_t limit = 1000;
};
// Notices matching the filter, by id.
std::vector<notices::Notice> list(SQLite::Database& db, const Filter& filter);

// Writes a transition decided by notices::apply: updates the row to `next` and inserts `event`.
// The update is conditional on the row still being in `event.from`; throws std::runtime_error
// if it is not (someone changed it outside the store thread). No audit row: apply() adds it.
void save_transition(SQLite::Database& db, const notices::Notice& next,
                     const notices::Event& event);

// The notice's history, oldest first.
std::vector<notices::Event> events(SQLite::Database& db, std::int64_t notice_id);

// Loads the notice, decides (notices::apply) and, when allowed, saves the transition and
// appends an audit row: action "transition", object "notice"/id, detail "from→to: reason".
// An unknown id is refused (Refusal::not_found). Nothing is written on a refusal.
notices::Outcome apply(SQLite::Database& db, std::int64_t notice_id, notices::Action action,
                       const Identity& by, std::int64_t now_ms, std::string_view reason,
                       const notices::Options& options = {});

struct DueRun {
  std::vector<notices::Notice> expired;   // now expired: purge their photos, tell the handsets
  std::vector<notices::Notice> reminded;  // review reminders raised now (review_reminded_at set)
};
// The hub's scheduled work at `now_ms` (notices::due): expires every active or disputed notice
// past its term and raises each review reminder that is due, once; each is audited with actor
// "hub" (a "transition" row for an expiry, an "update" row for a reminder).
DueRun run_due(SQLite::Database& db, std::int64_t now_ms, const notices::Options& options = {});

// The identity the hub acts under for scheduled work.
Identity hub_identity();

}  // namespace saferlink::server::notice_store
