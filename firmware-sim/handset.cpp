#include "firmware-sim/handset.hpp"

#include "core/envelope.hpp"

#include <algorithm>
#include <limits>

namespace saferlink::sim {

namespace {

constexpr std::size_t kSeenLimit = 512;       // unsequenced relays remembered for dedupe
constexpr std::int64_t kBatteryTickMs = 60'000;
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

bool is_responder(Role role) { return role == Role::cctv || role == Role::police; }

}  // namespace

std::string_view to_string(Indication indication) {
  switch (indication) {
    case Indication::idle: return "idle";
    case Indication::armed: return "armed";
    case Indication::sending: return "sending";
    case Indication::accepted: return "accepted";
    case Indication::delivered: return "delivered";
    case Indication::acknowledged: return "acknowledged";
    case Indication::escalated: return "escalated";
    case Indication::cancelled: return "cancelled";
    case Indication::failed: return "failed";
  }
  return "idle";
}

std::string_view led_of(Indication indication) {
  switch (indication) {
    case Indication::idle: return "off";
    case Indication::armed: return "amber blink";
    case Indication::sending: return "amber";
    case Indication::accepted: return "green";
    case Indication::delivered: return "green blink";
    case Indication::acknowledged: return "blue";
    case Indication::escalated: return "red blink";
    case Indication::cancelled: return "white";
    case Indication::failed: return "red";
  }
  return "off";
}

std::string_view buzzer_of(Indication indication) {
  switch (indication) {
    case Indication::idle:
    case Indication::armed:
    case Indication::accepted:
    case Indication::delivered:
    case Indication::cancelled: return "silent";
    case Indication::sending: return "one beep";
    case Indication::acknowledged: return "two beeps";
    case Indication::escalated: return "beeping";
    case Indication::failed: return "long tone";
  }
  return "silent";
}

std::string_view to_string(LinkState state) {
  switch (state) {
    case LinkState::off: return "off";
    case LinkState::waiting: return "waiting";
    case LinkState::dialling: return "dialling";
    case LinkState::greeting: return "greeting";
    case LinkState::online: return "online";
  }
  return "off";
}

Handset::Handset(HandsetConfig config, Flash flash)
    : config_(std::move(config)),
      flash_(std::move(flash)),
      backoff_(config_.backoff, config_.seed),
      heartbeat_ms_(config_.heartbeat_ms),
      battery_(std::clamp(config_.battery_percent, 0.0, 100.0)) {
  // Panics still in flash from before a power cycle are shown and tracked again.
  for (const PendingItem& item : flash_.pending) {
    if (item.kind != PendingItem::Kind::panic) continue;
    OwnAlert alert;
    alert.pressed_at = item.created_at_ms;
    alert.sent_once = true;  // it may have reached the hub before the power went
    own_[item.id] = alert;
    last_panic_ = item.id;
    indication_ = Indication::sending;
  }
}

// ---- helpers ---------------------------------------------------------------------------------

void Handset::event(Actions& out, Action::Event kind, std::string id, std::int64_t at,
                    std::uint32_t count, bool flag) {
  Action a;
  a.kind = Action::Kind::event;
  a.event = kind;
  a.id = std::move(id);
  a.at = at;
  a.count = count;
  a.flag = flag;
  a.indication = indication_;
  out.push_back(std::move(a));
}

void Handset::set_indication(Indication indication, Actions& out) {
  if (indication_ == indication) return;
  indication_ = indication;
  event(out, Action::Event::indication, last_panic_);
}

void Handset::save(Actions& out) {
  // One save per input is enough: the glue writes the flash as it is after the input.
  for (const Action& a : out) {
    if (a.kind == Action::Kind::save_flash) return;
  }
  Action a;
  a.kind = Action::Kind::save_flash;
  out.push_back(std::move(a));
}

void Handset::send(v1::Envelope envelope, Actions& out) {
  if (envelope.msg_id() == 0) envelope.set_msg_id(next_msg_id());
  Action a;
  a.kind = Action::Kind::send;
  a.message = std::move(envelope);
  out.push_back(std::move(a));
  battery_ -= config_.drain_per_frame;
}

void Handset::drop(std::int64_t now, const std::string& why, bool hang_up, Actions& out) {
  if (hang_up) {
    Action a;
    a.kind = Action::Kind::hang_up;
    a.text = why;
    out.push_back(std::move(a));
  }
  in_flight_.clear();
  retry_at_ = 0;
  link_ = LinkState::waiting;
  state_since_ = now;
  schedule_reconnect(now);
  Action lost;
  lost.kind = Action::Kind::event;
  lost.event = Action::Event::link_lost;
  lost.text = why;
  lost.indication = indication_;
  out.push_back(std::move(lost));
}

void Handset::schedule_reconnect(std::int64_t now) { reconnect_at_ = now + backoff_.next_delay(); }

void Handset::remove_pending(PendingItem::Kind kind, const std::string& id) {
  auto& pending = flash_.pending;
  pending.erase(std::remove_if(pending.begin(), pending.end(),
                               [&](const PendingItem& p) { return p.kind == kind && p.id == id; }),
                pending.end());
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    if (it->second.first == kind && it->second.second == id) {
      it = in_flight_.erase(it);
    } else {
      ++it;
    }
  }
}

bool Handset::seen_unsequenced(const std::string& key) {
  if (seen_.contains(key)) return true;
  seen_.insert(key);
  seen_order_.push_back(key);
  if (seen_order_.size() > kSeenLimit) {
    seen_.erase(seen_order_.front());
    seen_order_.pop_front();
  }
  return false;
}

bool Handset::seen_sequenced(std::uint64_t seq, bool alert_lane) {
  // A replay carries the number it had the first time. The hub keeps sequence order within
  // each lane (alerts overtake sightings), so a number at or below its lane's cursor is a
  // duplicate.
  return seq <= (alert_lane ? flash_.resume_cursor : flash_.resume_cursor_other);
}

void Handset::drain_battery(std::int64_t now, Actions& out) {
  if (battery_at_ == 0 || now < battery_at_) {
    battery_at_ = now;
    check_battery(now, out);
    return;
  }
  const double hours = static_cast<double>(now - battery_at_) / 3'600'000.0;
  double rate = config_.drain_per_hour;
  if (signal_ == 1) rate += config_.weak_signal_drain_per_hour;
  if (link_ != LinkState::off) battery_ -= hours * rate;
  battery_at_ = now;
  check_battery(now, out);
}

void Handset::check_battery(std::int64_t now, Actions& out) {
  if (battery_ <= config_.low_battery_percent && !low_reported_) {
    low_reported_ = true;
    event(out, Action::Event::low_battery, {}, now);
  }
  if (battery_ <= 0.0) {
    battery_ = 0.0;
    if (link_ == LinkState::dialling || link_ == LinkState::greeting ||
        link_ == LinkState::online) {
      event(out, Action::Event::battery_empty, {}, now);
      drop(now, "battery empty", true, out);
    }
  }
}

// ---- power -----------------------------------------------------------------------------------

Actions Handset::power_on(std::int64_t now) {
  Actions out;
  if (link_ != LinkState::off) return out;
  link_ = LinkState::waiting;
  state_since_ = now;
  reconnect_at_ = now;
  battery_at_ = now;
  auto more = tick(now);
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

Actions Handset::power_off(std::int64_t now) {
  Actions out;
  if (link_ == LinkState::dialling || link_ == LinkState::greeting ||
      link_ == LinkState::online) {
    Action a;
    a.kind = Action::Kind::hang_up;
    a.text = "power off";
    out.push_back(std::move(a));
  }
  link_ = LinkState::off;
  state_since_ = now;
  in_flight_.clear();
  held_since_.reset();
  return out;
}

// ---- button, sightings -----------------------------------------------------------------------

Actions Handset::button(std::int64_t now, bool down) {
  Actions out;
  drain_battery(now, out);
  if (link_ == LinkState::off || battery_ <= 0.0) return out;  // a dead handset does nothing
  if (down) {
    if (held_since_) return out;
    held_since_ = now;
    press_fired_ = false;
    set_indication(Indication::armed, out);
    return out;
  }
  if (!held_since_) return out;
  const bool long_enough = now - *held_since_ >= config_.hold_ms;
  held_since_.reset();
  if (!press_fired_ && long_enough) {
    press_fired_ = true;
    long_press(now, out);
  } else if (!press_fired_ && indication_ == Indication::armed) {
    // A knock: show again what was shown before the press.
    Indication before = Indication::idle;
    if (auto it = own_.find(last_panic_); it != own_.end()) {
      const OwnAlert& a = it->second;
      before = a.cancelled      ? Indication::cancelled
               : a.acknowledged ? Indication::acknowledged
               : !a.delivered_by.empty() ? Indication::delivered
               : a.accepted     ? Indication::accepted
                                : Indication::sending;
    }
    set_indication(before, out);
  }
  return out;
}

void Handset::long_press(std::int64_t now, Actions& out) {
  auto it = own_.find(last_panic_);
  if (it != own_.end() && !it->second.cancelled &&
      now - it->second.pressed_at < config_.cancel_window_ms) {
    // The second long press within the cancel window: false alarm.
    OwnAlert& alert = it->second;
    const std::string id = it->first;
    const bool queued = std::any_of(flash_.pending.begin(), flash_.pending.end(),
                                    [&](const PendingItem& p) {
                                      return p.kind == PendingItem::Kind::panic && p.id == id;
                                    });
    if (queued && !alert.sent_once) {
      // Never left the handset: cancel it here.
      remove_pending(PendingItem::Kind::panic, id);
      alert.cancelled = true;
      save(out);
      set_indication(Indication::cancelled, out);
      event(out, Action::Event::panic_cancelled, id, now);
      return;
    }
    if (alert.cancel_requested) return;
    alert.cancel_requested = true;
    PendingItem cancel;
    cancel.kind = PendingItem::Kind::cancel;
    cancel.id = id;
    cancel.created_at_ms = now;
    cancel.text = "false alarm (cancelled on the handset)";
    flash_.pending.push_back(cancel);
    save(out);
    if (link_ == LinkState::online) flush_queue(out);
    return;
  }
  raise_panic(now, out);
}

void Handset::raise_panic(std::int64_t now, Actions& out) {
  PendingItem item;
  item.kind = PendingItem::Kind::panic;
  item.device_seq = flash_.next_device_seq++;
  item.id = config_.id + ":" + std::to_string(item.device_seq);
  item.created_at_ms = now;
  item.status = config_.panic_status;
  flash_.pending.push_back(item);
  OwnAlert alert;
  alert.pressed_at = now;
  own_[item.id] = alert;
  last_panic_ = item.id;
  save(out);
  event(out, Action::Event::panic_raised, item.id, now);
  set_indication(Indication::sending, out);
  if (link_ == LinkState::online) send_item(item, out);
}

Actions Handset::sighting(std::int64_t now, const std::string& text) {
  Actions out;
  drain_battery(now, out);
  if (link_ == LinkState::off || battery_ <= 0.0) return out;
  PendingItem item;
  item.kind = PendingItem::Kind::sighting;
  item.device_seq = flash_.next_device_seq++;
  item.id = config_.id + ":" + std::to_string(item.device_seq);
  item.created_at_ms = now;
  item.text = text;
  flash_.pending.push_back(item);
  save(out);
  event(out, Action::Event::sighting_raised, item.id, now);
  if (link_ == LinkState::online) send_item(item, out);
  return out;
}

Actions Handset::respond(std::int64_t now, const std::string& alert_id,
                         v1::RecipientStatusKind status) {
  Actions out;
  drain_battery(now, out);
  if (link_ != LinkState::online) return out;  // statuses are live answers, not queued
  v1::Envelope envelope;
  envelope.mutable_status()->set_alert_id(alert_id);
  envelope.mutable_status()->set_status(status);
  send(std::move(envelope), out);
  last_tx_ = now;
  event(out, Action::Event::acknowledged_sent, alert_id, now);
  return out;
}

// ---- the offline queue -----------------------------------------------------------------------

void Handset::send_item(const PendingItem& item, Actions& out) {
  v1::Envelope envelope;
  switch (item.kind) {
    case PendingItem::Kind::panic: {
      auto* panic = envelope.mutable_panic();
      panic->set_alert_id(item.id);
      panic->set_device_seq(item.device_seq);
      panic->set_pressed_at_ms(item.created_at_ms);
      panic->set_note(item.text);
      panic->set_status(static_cast<v1::AlertStatusKind>(item.status));
      if (auto it = own_.find(item.id); it != own_.end()) it->second.sent_once = true;
      break;
    }
    case PendingItem::Kind::cancel:
      envelope.mutable_cancel()->set_alert_id(item.id);
      envelope.mutable_cancel()->set_reason(item.text);
      break;
    case PendingItem::Kind::sighting: {
      auto* sighting = envelope.mutable_sighting();
      sighting->set_sighting_id(item.id);
      sighting->set_device_seq(item.device_seq);
      sighting->set_text(item.text);
      sighting->set_seen_at_ms(item.created_at_ms);
      break;
    }
  }
  envelope.set_msg_id(next_msg_id());
  in_flight_[envelope.msg_id()] = {item.kind, item.id};
  send(std::move(envelope), out);
}

void Handset::flush_queue(Actions& out) {
  for (const PendingItem& item : flash_.pending) {
    const bool in_flight = std::any_of(in_flight_.begin(), in_flight_.end(), [&](const auto& f) {
      return f.second.first == item.kind && f.second.second == item.id;
    });
    if (in_flight) continue;
    if (item.kind == PendingItem::Kind::cancel) {
      // A cancel goes only after the hub has accepted the panic it cancels.
      const bool panic_pending = std::any_of(
          flash_.pending.begin(), flash_.pending.end(), [&](const PendingItem& p) {
            return p.kind == PendingItem::Kind::panic && p.id == item.id;
          });
      if (panic_pending) continue;
    }
    send_item(item, out);
  }
}

// ---- link ------------------------------------------------------------------------------------

Actions Handset::on_link_up(std::int64_t now) {
  Actions out;
  if (link_ != LinkState::dialling) {
    // Not asked for (powered off or gave up meanwhile): close it.
    Action a;
    a.kind = Action::Kind::hang_up;
    a.text = "link not wanted";
    out.push_back(std::move(a));
    return out;
  }
  link_ = LinkState::greeting;
  state_since_ = now;
  last_rx_ = now;
  v1::Envelope hello;
  auto* h = hello.mutable_hello();
  h->set_protocol_version(kProtocolVersion);
  h->add_capabilities("alerts");
  h->add_capabilities("sightings");
  h->add_capabilities("resume");
  h->set_resume_cursor(flash_.resume_cursor);
  h->set_resume_cursor_other(flash_.resume_cursor_other);
  h->set_software(config_.software);
  send(std::move(hello), out);
  last_tx_ = now;
  return out;
}

Actions Handset::on_link_down(std::int64_t now, const std::string& why) {
  Actions out;
  if (link_ == LinkState::dialling || link_ == LinkState::greeting ||
      link_ == LinkState::online) {
    drop(now, why, false, out);
  }
  return out;
}

// ---- time ------------------------------------------------------------------------------------

Actions Handset::tick(std::int64_t now) {
  Actions out;
  drain_battery(now, out);
  if (link_ == LinkState::off) return out;

  if (held_since_ && !press_fired_ && now - *held_since_ >= config_.hold_ms) {
    press_fired_ = true;
    long_press(now, out);
  }

  switch (link_) {
    case LinkState::off:
      break;
    case LinkState::waiting:
      if (may_dial() && now >= reconnect_at_) {
        link_ = LinkState::dialling;
        state_since_ = now;
        Action a;
        a.kind = Action::Kind::dial;
        out.push_back(std::move(a));
      }
      break;
    case LinkState::dialling:
      if (now - state_since_ >= config_.dial_timeout_ms) {
        drop(now, "dial timed out", true, out);
      }
      break;
    case LinkState::greeting:
      if (now - state_since_ >= config_.hello_timeout_ms) {
        drop(now, "no welcome from the hub in time", true, out);
      }
      break;
    case LinkState::online:
      if (now - last_rx_ > config_.idle_timeout_ms) {
        drop(now, "idle: nothing from the hub within the idle deadline", true, out);
        break;
      }
      if (retry_at_ != 0 && now >= retry_at_) {
        retry_at_ = 0;
        flush_queue(out);
      }
      while (!acks_.empty() && acks_.front().due <= now) {
        v1::Envelope status;
        status.mutable_status()->set_alert_id(acks_.front().alert_id);
        status.mutable_status()->set_status(v1::ACKNOWLEDGED);
        send(std::move(status), out);
        event(out, Action::Event::acknowledged_sent, acks_.front().alert_id, now);
        acks_.pop_front();
      }
      if (now - last_tx_ >= heartbeat_ms_) {
        v1::Envelope heartbeat;
        heartbeat.mutable_heartbeat()->set_battery_percent(
            static_cast<std::uint32_t>(std::clamp(battery_, 1.0, 100.0)));
        send(std::move(heartbeat), out);
      }
      break;
  }
  // Anything sent counts as traffic for the heartbeat.
  for (const Action& a : out) {
    if (a.kind == Action::Kind::send) last_tx_ = now;
  }
  return out;
}

std::int64_t Handset::next_wakeup() const {
  if (link_ == LinkState::off) return kNever;
  std::int64_t next = battery_at_ + kBatteryTickMs;
  if (held_since_ && !press_fired_) next = std::min(next, *held_since_ + config_.hold_ms);
  switch (link_) {
    case LinkState::off:
      break;
    case LinkState::waiting:
      if (may_dial()) next = std::min(next, reconnect_at_);
      break;
    case LinkState::dialling:
      next = std::min(next, state_since_ + config_.dial_timeout_ms);
      break;
    case LinkState::greeting:
      next = std::min(next, state_since_ + config_.hello_timeout_ms);
      break;
    case LinkState::online:
      next = std::min({next, last_rx_ + config_.idle_timeout_ms + 1, last_tx_ + heartbeat_ms_});
      if (retry_at_ != 0) next = std::min(next, retry_at_);
      if (!acks_.empty()) next = std::min(next, acks_.front().due);
      break;
  }
  return next;
}

Actions Handset::charge(std::int64_t now, double percent) {
  Actions out;
  drain_battery(now, out);
  battery_ = std::clamp(battery_ + percent, 0.0, 100.0);
  if (battery_ > config_.low_battery_percent) low_reported_ = false;
  auto more = tick(now);
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

Actions Handset::set_signal(std::int64_t now, int bars) {
  Actions out;
  drain_battery(now, out);
  signal_ = std::clamp(bars, 0, 5);
  if (signal_ == 0 && (link_ == LinkState::dialling || link_ == LinkState::greeting ||
                       link_ == LinkState::online)) {
    drop(now, "no signal", true, out);
  }
  auto more = tick(now);
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

// ---- messages --------------------------------------------------------------------------------

Actions Handset::on_message(std::int64_t now, const v1::Envelope& envelope) {
  Actions out;
  if (link_ != LinkState::greeting && link_ != LinkState::online) return out;
  last_rx_ = now;
  battery_ -= config_.drain_per_frame;
  drain_battery(now, out);
  if (link_ != LinkState::greeting && link_ != LinkState::online) return out;  // battery died

  switch (envelope.body_case()) {
    case v1::Envelope::kWelcome: {
      if (link_ != LinkState::greeting) break;
      link_ = LinkState::online;
      state_since_ = now;
      backoff_.reset();
      if (envelope.welcome().heartbeat_interval_ms() > 0) {
        heartbeat_ms_ = envelope.welcome().heartbeat_interval_ms();
      }
      event(out, Action::Event::link_online, {}, now);
      flush_queue(out);
      break;
    }
    case v1::Envelope::kError:
      if (link_ == LinkState::greeting) {
        drop(now, "hub refused hello: " + envelope.error().message(), true, out);
      } else {
        handle_error(now, envelope, out);
      }
      break;
    case v1::Envelope::kAccepted: {
      const auto& accepted = envelope.accepted();
      remove_pending(PendingItem::Kind::panic, accepted.alert_id());
      save(out);
      auto it = own_.find(accepted.alert_id());
      if (it == own_.end()) break;
      OwnAlert& alert = it->second;
      if (!alert.accepted) {
        alert.accepted = true;
        alert.recipients = accepted.recipients();
        event(out, Action::Event::panic_accepted, it->first, now, alert.recipients,
              accepted.duplicate());
        if (it->first == last_panic_ && indication_ == Indication::sending) {
          set_indication(Indication::accepted, out);
        }
        if (alert.recipients > 0 && alert.delivered_by.size() >= alert.recipients) {
          alert.all_delivered = true;
          event(out, Action::Event::panic_delivered_all, it->first, now, alert.recipients);
        }
      }
      if (link_ == LinkState::online) flush_queue(out);  // a cancel waiting for this
      break;
    }
    case v1::Envelope::kUpdate: {
      const auto& update = envelope.update();
      auto it = own_.find(update.alert_id());
      if (it == own_.end()) break;
      OwnAlert& alert = it->second;
      const bool newest = it->first == last_panic_;
      {
        Action a;
        a.kind = Action::Kind::event;
        a.event = Action::Event::panic_update;
        a.id = it->first;
        a.at = now;
        a.message = envelope;
        out.push_back(std::move(a));
      }
      switch (update.event()) {
        case v1::RECIPIENT:
          if (update.recipient_status() == v1::DELIVERED) {
            alert.delivered_by.insert(update.by_id());
            if (newest && indication_ == Indication::accepted) {
              set_indication(Indication::delivered, out);
            }
            if (alert.accepted && !alert.all_delivered && alert.recipients > 0 &&
                alert.delivered_by.size() >= alert.recipients) {
              alert.all_delivered = true;
              event(out, Action::Event::panic_delivered_all, it->first, now, alert.recipients);
            }
          } else {
            alert.acknowledged = true;
            if (newest && !alert.cancelled) set_indication(Indication::acknowledged, out);
          }
          break;
        case v1::ESCALATED:
          if (newest && !alert.acknowledged && !alert.cancelled) {
            set_indication(Indication::escalated, out);
          }
          break;
        case v1::CANCELLED:
          if (!alert.cancelled) {
            alert.cancelled = true;
            if (newest) set_indication(Indication::cancelled, out);
            event(out, Action::Event::panic_cancelled, it->first, now);
          }
          break;
        default:
          break;
      }
      break;
    }
    case v1::Envelope::kReceipt: {
      auto found = in_flight_.find(envelope.receipt().in_reply_to());
      if (found == in_flight_.end()) break;
      const auto [kind, id] = found->second;
      if (kind != PendingItem::Kind::cancel) break;
      remove_pending(kind, id);
      save(out);
      auto it = own_.find(id);
      if (it != own_.end() && !it->second.cancelled) {
        it->second.cancelled = true;
        if (id == last_panic_) set_indication(Indication::cancelled, out);
        event(out, Action::Event::panic_cancelled, id, now);
      }
      break;
    }
    case v1::Envelope::kSightingAccepted: {
      const auto& accepted = envelope.sighting_accepted();
      const bool queued = std::any_of(
          flash_.pending.begin(), flash_.pending.end(), [&](const PendingItem& p) {
            return p.kind == PendingItem::Kind::sighting && p.id == accepted.sighting_id();
          });
      if (!queued) break;
      remove_pending(PendingItem::Kind::sighting, accepted.sighting_id());
      save(out);
      event(out, Action::Event::sighting_accepted, accepted.sighting_id(), now,
            accepted.recipients(), accepted.duplicate());
      break;
    }
    case v1::Envelope::kPanic:
    case v1::Envelope::kCancel:
    case v1::Envelope::kSighting:
      handle_relayed(now, envelope, out);
      break;
    default:
      break;  // heartbeats; messages of capabilities this handset does not announce
  }
  for (const Action& a : out) {
    if (a.kind == Action::Kind::send) last_tx_ = now;
  }
  return out;
}

void Handset::handle_relayed(std::int64_t now, const v1::Envelope& envelope, Actions& out) {
  std::string id;
  std::string key;
  switch (envelope.body_case()) {
    case v1::Envelope::kPanic:
      id = envelope.panic().alert_id();
      key = "p:" + id + "#" + std::to_string(envelope.panic().escalation_round());
      break;
    case v1::Envelope::kCancel:
      id = envelope.cancel().alert_id();
      key = "c:" + id;
      break;
    default:
      id = envelope.sighting().sighting_id();
      key = "s:" + id;
      break;
  }
  const bool duplicate =
      envelope.seq() > 0 ? seen_sequenced(envelope.seq(), !envelope.has_sighting())
                         : seen_unsequenced(key);
  if (envelope.has_panic()) {
    // Delivered again even for a duplicate: the answer to the first copy may have been lost.
    v1::Envelope status;
    status.mutable_status()->set_alert_id(id);
    status.mutable_status()->set_status(v1::DELIVERED);
    send(std::move(status), out);
  }
  if (duplicate) {
    ++duplicates_;
    Action a;
    a.kind = Action::Kind::event;
    a.event = Action::Event::received_duplicate;
    a.id = id;
    a.at = now;
    a.message = envelope;
    a.indication = indication_;
    out.push_back(std::move(a));
    return;
  }
  if (envelope.seq() > 0) {
    auto& cursor = envelope.has_sighting() ? flash_.resume_cursor_other : flash_.resume_cursor;
    cursor = envelope.seq();  // not a duplicate: above the lane's cursor
    save(out);
  }
  Action a;
  a.kind = Action::Kind::event;
  a.id = id;
  a.at = now;
  a.message = envelope;
  a.indication = indication_;
  switch (envelope.body_case()) {
    case v1::Envelope::kPanic:
      a.event = Action::Event::received_panic;
      a.count = envelope.panic().escalation_round();
      if (config_.ack_after_ms >= 0 && is_responder(config_.role) &&
          !seen_unsequenced("ack:" + id)) {
        acks_.push_back(PendingAck{now + config_.ack_after_ms, id});
      }
      break;
    case v1::Envelope::kCancel:
      a.event = Action::Event::received_cancel;
      acks_.erase(std::remove_if(acks_.begin(), acks_.end(),
                                 [&](const PendingAck& p) { return p.alert_id == id; }),
                  acks_.end());
      break;
    default:
      a.event = Action::Event::received_sighting;
      break;
  }
  out.push_back(std::move(a));
}

void Handset::handle_error(std::int64_t now, const v1::Envelope& envelope, Actions& out) {
  const auto& error = envelope.error();
  auto found = in_flight_.find(error.in_reply_to());
  if (found == in_flight_.end()) {
    Action a;
    a.kind = Action::Kind::event;
    a.event = Action::Event::hub_error;
    a.at = now;
    a.text = error.message();
    a.indication = indication_;
    out.push_back(std::move(a));
    return;
  }
  const auto [kind, id] = found->second;
  in_flight_.erase(found);
  if (error.code() == v1::STORE_FAILED) {
    retry_at_ = now + config_.retry_ms;  // the hub could not make it durable: send it again
    return;
  }
  remove_pending(kind, id);
  save(out);
  if (kind == PendingItem::Kind::panic) {
    if (id == last_panic_) set_indication(Indication::failed, out);
    Action a;
    a.kind = Action::Kind::event;
    a.event = Action::Event::panic_failed;
    a.id = id;
    a.at = now;
    a.text = error.message();
    a.indication = indication_;
    out.push_back(std::move(a));
    return;
  }
  if (kind == PendingItem::Kind::cancel) {
    if (auto it = own_.find(id); it != own_.end()) it->second.cancel_requested = false;
  }
  Action a;
  a.kind = Action::Kind::event;
  a.event = Action::Event::hub_error;
  a.id = id;
  a.at = now;
  a.text = std::string(kind == PendingItem::Kind::cancel ? "cancel" : "sighting") + " " + id +
           " refused: " + error.message();
  a.indication = indication_;
  out.push_back(std::move(a));
}

}  // namespace saferlink::sim
