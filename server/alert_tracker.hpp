// AlertTracker: the hub's memory of live panic alerts — who sent each, who received it, who
// has acknowledged it, and when it escalates. Pure state: no I/O, no clock of its own (every
// call is given `now`), so tests drive it with an injected clock. Owned by the hub strand;
// not thread-safe.
//
// Lifecycle of one alert (function behind each transition in brackets):
//
//   [add] --> OPEN --(responder acknowledges)[on_status]--> ACKNOWLEDGED
//               |  \--(escalation_interval passes)[due]--> OPEN, round+1, next due +interval
//               |
//               \--(sender cancels within cancel_window)[on_cancel]--> CANCELLED
//   ACKNOWLEDGED --(sender cancels within cancel_window)[on_cancel]--> CANCELLED
//   OPEN --(the alert's expires_at passed, seen by the hub)[expire]--> EXPIRED
//   any state --(older than retain)[prune]--> forgotten
//
// Escalation is due at accepted_at + interval, then every interval after, while OPEN.
// A cancel is allowed only from the original sender, within cancel_window of acceptance.
#pragma once

#include "core/identity.hpp"
#include "proto/saferlink.pb.h"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace saferlink::server {

class AlertTracker {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  struct Options {
    std::chrono::milliseconds escalation_interval{15'000};
    std::chrono::milliseconds cancel_window{30'000};
    std::chrono::milliseconds retain{std::chrono::hours(12)};
  };

  enum class State { open, acknowledged, cancelled, expired };

  struct Tracked {
    std::string alert_id;
    Identity sender;
    TimePoint accepted_at;
    State state = State::open;
    std::uint32_t escalation_round = 0;
    TimePoint next_escalation;
    std::set<std::string> recipients;  // device ids it was relayed to (any round)
    std::optional<std::string> acknowledged_by;
  };

  explicit AlertTracker(Options options);

  // Starts tracking an accepted alert. Returns false (and changes nothing) if already tracked.
  bool add(const std::string& alert_id, const Identity& sender, TimePoint accepted_at);

  const Tracked* find(const std::string& alert_id) const;

  // Records that the alert was relayed to these device ids.
  void note_recipients(const std::string& alert_id, const std::vector<std::string>& ids);

  enum class StatusResult {
    unknown_alert,   // not tracked
    not_a_recipient, // `by` would not receive this alert (wrong role or town)
    recorded,        // fine; nothing changes for escalation
    first_ack,       // the first responder acknowledgement: escalation stops
  };
  // A recipient reports a status. Authorisation of (role, status) is the caller's (may_report).
  StatusResult on_status(const std::string& alert_id, const Identity& by,
                         v1::RecipientStatusKind status, TimePoint now);

  enum class CancelResult { unknown_alert, not_sender, too_late, already_cancelled, cancelled };
  CancelResult on_cancel(const std::string& alert_id, const Identity& by, TimePoint now);

  struct Escalation {
    std::string alert_id;
    std::uint32_t round;  // 1 for the first escalation
  };
  // Every escalation due at `now` (several rounds of one alert collapse into one, the latest);
  // advances each alert's next deadline.
  std::vector<Escalation> due(TimePoint now);

  // The earliest pending escalation deadline, if any alert is open.
  std::optional<TimePoint> next_deadline() const;

  // Stops escalating an open alert whose own expiry has passed. Returns true if it was open.
  bool expire(const std::string& alert_id);

  // Forgets alerts accepted more than `retain` before now.
  void prune(TimePoint now);

  std::size_t size() const { return alerts_.size(); }

 private:
  Options options_;
  std::map<std::string, Tracked> alerts_;
};

}  // namespace saferlink::server
