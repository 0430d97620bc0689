#include "server/alert_tracker.hpp"

#include "server/routing.hpp"

#include <stdexcept>
#include <utility>

namespace saferlink::server {
namespace {

bool is_acknowledgement(v1::RecipientStatusKind status) {
  switch (status) {
    case v1::ACKNOWLEDGED:
    case v1::EN_ROUTE:
    case v1::ON_SCENE:
    case v1::RESOLVED:
      return true;
    default:
      return false;  // delivered (a device, not a person), unspecified, unknown numbers
  }
}

// Whether `by` has been sent the alert in its current state: the normal recipients always,
// and after the first escalation also everyone escalation reaches. (A neighbouring shop that
// got the original alert stays a recipient after escalation, even though the escalated
// re-send is not addressed to shops.)
bool is_recipient(const AlertTracker::Tracked& alert, const Identity& by) {
  return receives_panic(alert.sender, by, false) ||
         (alert.escalation_round > 0 && receives_panic(alert.sender, by, true));
}

}  // namespace

AlertTracker::AlertTracker(Options options) : options_(options) {
  if (options_.escalation_interval <= std::chrono::milliseconds::zero()) {
    throw std::invalid_argument("AlertTracker: escalation_interval must be positive");
  }
}

bool AlertTracker::add(const std::string& alert_id, const Identity& sender,
                       TimePoint accepted_at) {
  if (alerts_.contains(alert_id)) return false;
  Tracked tracked;
  tracked.alert_id = alert_id;
  tracked.sender = sender;
  tracked.accepted_at = accepted_at;
  tracked.next_escalation = accepted_at + options_.escalation_interval;
  alerts_.emplace(alert_id, std::move(tracked));
  return true;
}

const AlertTracker::Tracked* AlertTracker::find(const std::string& alert_id) const {
  auto it = alerts_.find(alert_id);
  return it == alerts_.end() ? nullptr : &it->second;
}

void AlertTracker::note_recipients(const std::string& alert_id,
                                   const std::vector<std::string>& ids) {
  auto it = alerts_.find(alert_id);
  if (it == alerts_.end()) return;
  it->second.recipients.insert(ids.begin(), ids.end());
}

AlertTracker::StatusResult AlertTracker::on_status(const std::string& alert_id,
                                                   const Identity& by,
                                                   v1::RecipientStatusKind status,
                                                   TimePoint /*now*/) {
  auto it = alerts_.find(alert_id);
  if (it == alerts_.end()) return StatusResult::unknown_alert;
  Tracked& alert = it->second;
  if (!is_recipient(alert, by)) return StatusResult::not_a_recipient;

  // Only a responder's first acknowledgement of a still-open alert changes anything.
  if (alert.state == State::open && is_acknowledgement(status) && is_responder(by.role)) {
    alert.state = State::acknowledged;
    alert.acknowledged_by = by.id;
    return StatusResult::first_ack;
  }
  return StatusResult::recorded;
}

AlertTracker::CancelResult AlertTracker::on_cancel(const std::string& alert_id,
                                                   const Identity& by, TimePoint now) {
  auto it = alerts_.find(alert_id);
  if (it == alerts_.end()) return CancelResult::unknown_alert;
  Tracked& alert = it->second;
  if (by.id != alert.sender.id) return CancelResult::not_sender;
  if (alert.state == State::cancelled) return CancelResult::already_cancelled;
  if (now > alert.accepted_at + options_.cancel_window) return CancelResult::too_late;
  alert.state = State::cancelled;
  return CancelResult::cancelled;
}

bool AlertTracker::expire(const std::string& alert_id) {
  auto it = alerts_.find(alert_id);
  if (it == alerts_.end() || it->second.state != State::open) return false;
  it->second.state = State::expired;
  return true;
}

std::vector<AlertTracker::Escalation> AlertTracker::due(TimePoint now) {
  std::vector<Escalation> escalations;
  const auto interval = std::chrono::duration_cast<Clock::duration>(options_.escalation_interval);
  for (auto& [id, alert] : alerts_) {
    if (alert.state != State::open || alert.next_escalation > now) continue;
    // The one that is due now, plus every further whole interval that has also passed.
    const auto missed = (now - alert.next_escalation) / interval;
    const auto rounds = missed + 1;
    alert.escalation_round += static_cast<std::uint32_t>(rounds);
    alert.next_escalation += interval * rounds;
    escalations.push_back(Escalation{id, alert.escalation_round});
  }
  return escalations;
}

std::optional<AlertTracker::TimePoint> AlertTracker::next_deadline() const {
  std::optional<TimePoint> earliest;
  for (const auto& [id, alert] : alerts_) {
    if (alert.state != State::open) continue;
    if (!earliest || alert.next_escalation < *earliest) earliest = alert.next_escalation;
  }
  return earliest;
}

void AlertTracker::prune(TimePoint now) {
  std::erase_if(alerts_, [&](const auto& entry) {
    return entry.second.accepted_at + options_.retain < now;
  });
}

}  // namespace saferlink::server
