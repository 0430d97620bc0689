// The Exclusion Notice Scheme as pure decisions: given a notice, who asks, what they ask and
// when, say whether the transition is allowed and what the notice and its history row become.
// No I/O and no clock of its own (every call is given `now_ms`, milliseconds since the Unix
// epoch), so tests drive the whole lifecycle with an injected clock. server/notice_store runs
// these against the database. Plain functions of values; callable from any thread.
//
// Lifecycle of one notice (function and Action behind each transition in brackets; every
// transition needs a coordinator and a non-empty reason, except expire, which only the hub
// does and whose reason defaults to "expired"):
//
//              [propose: cites >= 1 incident form, conditions required]
//                    |
//                    v
//               PROPOSED --[apply approve: a coordinator other than proposed_by]--> APPROVED
//                                                                                     |
//     [apply serve: served_at = now, expires_at = now + validity,                    |
//      review_due_at = now + review_after]  <----------------------------------------+
//                    |
//                    v
//                 ACTIVE --[apply dispute: an appeal is lodged]--> DISPUTED
//                    ^                                                |
//                    +------[apply resolve_active: appeal dismissed,  |
//                    |       same expires_at and review_due_at] ------+
//                    |                                                |
//   [apply expire, by the hub, once now >= expires_at]               |
//                    |          (a DISPUTED notice expires the same way: an appeal does not
//                    v           extend the term, and its photo is already off the handsets)
//                 EXPIRED
//
//   PROPOSED, APPROVED, ACTIVE --[apply revoke]--> REVOKED
//   DISPUTED --[apply resolve_revoked: appeal upheld] or [apply revoke]--> REVOKED
//
// EXPIRED and REVOKED are final: nothing leaves them (a new notice must be proposed). An ACTIVE
// or DISPUTED notice already past its expires_at cannot be disputed or resolved back to active
// either; it can only expire (or be revoked). Each transition sets updated_at = now; approve
// sets approved_by/at; revoke and expire set ended_at = now.
//
// Timers, listed by due(): an ACTIVE or DISPUTED notice is due to expire once now >= expires_at;
// an ACTIVE notice is due a review reminder once now >= review_due_at, once only (the store sets
// review_reminded_at). A notice due to expire gets no review reminder.
//
// The gallery carries ACTIVE notices only (in_gallery); a DISPUTED notice's photo leaves the
// handsets until it is resolved; an EXPIRED or REVOKED notice's photo is purged from the hub and
// every handset (photo_must_be_purged).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/identity.hpp"

namespace saferlink::server::notices {

enum class State { proposed, approved, active, disputed, expired, revoked };

// "proposed", "approved", ... — the spelling stored in the database and shown to people.
std::string_view to_string(State state);
std::optional<State> parse_state(std::string_view text);

// The transitions of an existing notice (a new one is made by propose()).
enum class Action {
  approve,          // proposed -> approved
  serve,            // approved -> active
  dispute,          // active -> disputed
  resolve_active,   // disputed -> active: the appeal is dismissed, the notice stands
  resolve_revoked,  // disputed -> revoked: the appeal is upheld
  revoke,           // proposed | approved | active | disputed -> revoked
  expire,           // active | disputed -> expired, by the hub at expires_at
};

// "approve", "serve", "dispute", "resolve-active", "resolve-revoked", "revoke", "expire".
std::string_view to_string(Action action);
std::optional<Action> parse_action(std::string_view text);

// Limits on text from people (bytes).
inline constexpr std::size_t kMaxReasonBytes = 1000;
inline constexpr std::size_t kMaxConditionsBytes = 4000;
inline constexpr std::size_t kMaxCitedForms = 1000;

struct Options {
  std::chrono::milliseconds validity{std::chrono::days(365)};     // served_at -> expires_at
  std::chrono::milliseconds review_after{std::chrono::days(182)}; // served_at -> review_due_at
  std::vector<std::string> towns;  // the partnership's towns; empty: default_towns()
};

// One notice, mirroring a row of `notices` plus its cited forms (`notice_incidents`).
struct Notice {
  std::int64_t id = 0;  // 0 until stored
  std::int64_t profile_id = 0;
  State state = State::proposed;
  std::string conditions;             // what the offender is told, shown in the gallery
  std::vector<std::string> towns;     // town ids where it applies, or {"all"}
  std::optional<std::string> photo_sha256;  // the gallery photo (a blob), if any
  std::string proposed_by;
  std::int64_t proposed_at_ms = 0;
  std::optional<std::string> approved_by;
  std::optional<std::int64_t> approved_at_ms;
  std::optional<std::int64_t> served_at_ms;
  std::optional<std::int64_t> expires_at_ms;
  std::optional<std::int64_t> review_due_at_ms;
  std::optional<std::int64_t> review_reminded_at_ms;
  std::optional<std::int64_t> ended_at_ms;  // when it was revoked or expired
  std::int64_t updated_at_ms = 0;
  std::vector<std::string> cited_forms;     // incident form ids, as cited (no duplicates)
};

// One row of a notice's history (`notice_events`): who moved it from which state to which,
// when and why. `from` is empty for the proposal.
struct Event {
  std::int64_t notice_id = 0;  // 0 until stored, for a proposal
  std::optional<State> from;
  State to = State::proposed;
  std::string by_id;
  std::int64_t at_ms = 0;
  std::string reason;
};

// Why a request was refused, for the caller's error code.
enum class Refusal {
  none,
  not_allowed,  // the role may not do this, or the two-person rule forbids it
  invalid,      // a field is missing or wrong (reason, conditions, cited forms, towns)
  illegal,      // the notice's state (or its expiry) does not allow this transition
  not_found,    // (store only) no such notice, profile, incident form or photo
};

struct Outcome {
  bool ok = false;
  Refusal refused = Refusal::none;
  std::string refusal;  // one line for a person, when !ok
  Notice next;          // when ok: the notice after the transition
  Event event;          // when ok: the history row to record
};

// What a coordinator asks for when proposing a notice.
struct Proposal {
  std::int64_t profile_id = 0;
  std::string conditions;
  std::vector<std::string> towns;  // known town ids, or {"all"}
  std::optional<std::string> photo_sha256;
  std::vector<std::string> cited_forms;  // >= 1; duplicates are cited once
};

// A new notice in state proposed (id 0), proposed_by = by.id. Refuses a non-coordinator, an
// empty reason or conditions, no cited form, unknown or repeated towns, over-long text. Does
// not know whether the profile, forms or photo exist: the store checks those.
Outcome propose(const Proposal& proposal, const Identity& by, std::int64_t now_ms,
                std::string_view reason, const Options& options = {});

// Applies `action` to `current` on behalf of `by` at `now_ms`. `reason` must not be blank
// (expire: "expired" when blank). Refusals say what the notice is and what would be needed,
// e.g. "notice 12 is proposed; only an approved notice can be served".
Outcome apply(const Notice& current, Action action, const Identity& by, std::int64_t now_ms,
              std::string_view reason, const Options& options = {});

struct Due {
  std::vector<std::int64_t> expire;  // ids of active/disputed notices with expires_at <= now
  std::vector<std::int64_t> review;  // ids of active notices with review_due_at <= now, not yet
                                     // reminded, and not due to expire
};
// What the hub must do at `now_ms`, in the order the notices are given.
Due due(const std::vector<Notice>& notices, std::int64_t now_ms);

// The notice after its review reminder was raised at `now_ms`.
Notice reminded(Notice notice, std::int64_t now_ms);

// True for the state whose notices the handsets' gallery carries: active only.
bool in_gallery(State state);
// True once the notice's photo must be deleted from the hub and every handset.
bool photo_must_be_purged(State state);
// True for the states nothing leaves: expired, revoked.
bool is_final(State state);

// towns as stored in `notices.towns`: comma-separated ("chatham,strood") or "all".
std::string join_towns(const std::vector<std::string>& towns);
std::vector<std::string> split_towns(std::string_view stored);

// "2026-03-01T10:00:00Z" (UTC, to the second), as refusals write times.
std::string format_time(std::int64_t ms);

}  // namespace saferlink::server::notices
