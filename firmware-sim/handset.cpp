#include "firmware-sim/handset.hpp"

#include "core/envelope.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <limits>

namespace saferlink::sim {

namespace {

constexpr std::size_t kSeenLimit = 512;       // unsequenced relays remembered for dedupe
constexpr std::int64_t kBatteryTickMs = 60'000;
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
constexpr int kPhotoAttempts = 3;             // hash mismatches before a photo is given up
constexpr std::uint64_t kPhotoPieceMax = 16 * 1024;  // PhotoChunk.data, at most

std::string hex_of(const unsigned char* bytes, unsigned int n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (unsigned int i = 0; i < n; ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
  return out;
}

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
  link_gone();
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
  link_gone();
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
  if (config_.gallery) {
    h->add_capabilities("gallery");
    h->set_gallery_version(flash_.gallery_version);
  }
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
      if (config_.gallery) {
        const auto& caps = envelope.welcome().capabilities();
        photos_allowed_ = std::find(caps.begin(), caps.end(), "photos") != caps.end();
        // Deletions the hub has not acknowledged yet (the link went before its Receipt).
        for (const std::int64_t notice : flash_.gallery_unconfirmed) send_removed(notice, out);
      }
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
      if (auto removal = removals_sent_.find(envelope.receipt().in_reply_to());
          removal != removals_sent_.end()) {
        const std::int64_t notice = removal->second;
        removals_sent_.erase(removal);
        auto& unconfirmed = flash_.gallery_unconfirmed;
        const auto it = std::find(unconfirmed.begin(), unconfirmed.end(), notice);
        if (it == unconfirmed.end()) break;  // already confirmed by an earlier answer
        unconfirmed.erase(it);
        ++removals_confirmed_;
        save(out);
        event(out, Action::Event::gallery_remove_confirmed, std::to_string(notice), now);
        break;
      }
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
    case v1::Envelope::kGallerySync:
    case v1::Envelope::kGalleryEntry:
    case v1::Envelope::kGalleryRemove:
      if (config_.gallery) handle_gallery(now, envelope, out);
      break;
    case v1::Envelope::kPhotoChunk:
      if (config_.gallery) handle_chunk(now, envelope, out);
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
  if (auto request = photo_requests_.find(error.in_reply_to()); request != photo_requests_.end()) {
    const std::string sha = request->second;
    photo_requests_.erase(request);
    if (!download_ || download_->sha256 != sha) return;
    if (error.code() == v1::STORE_FAILED) {
      download_->paused = true;  // the hub could not read it now: ask again on the next link
      return;
    }
    // Not allowed or not there: give it up until the entry changes or the handset restarts.
    photo_attempts_[sha] = kPhotoAttempts;
    download_.reset();
    Action a;
    a.kind = Action::Kind::event;
    a.event = Action::Event::photo_failed;
    a.id = sha;
    a.at = now;
    a.text = "refused by the hub: " + error.message();
    a.indication = indication_;
    out.push_back(std::move(a));
    next_photo(now, out);
    return;
  }
  if (auto removal = removals_sent_.find(error.in_reply_to()); removal != removals_sent_.end()) {
    const std::int64_t notice = removal->second;
    removals_sent_.erase(removal);
    if (error.code() != v1::STORE_FAILED) {
      // The hub does not know the notice (its database was replaced): nothing to confirm.
      auto& unconfirmed = flash_.gallery_unconfirmed;
      unconfirmed.erase(std::remove(unconfirmed.begin(), unconfirmed.end(), notice),
                        unconfirmed.end());
      save(out);
    }
    return;  // STORE_FAILED: sent again on the next connection
  }
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

// ---- gallery and photos ----------------------------------------------------------------------

void Handset::HashFree::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

std::pair<std::string, std::uint64_t> Handset::photo_progress() const {
  if (!download_) return {};
  return {download_->sha256, download_->have};
}

void Handset::link_gone() {
  gallery_syncing_ = false;
  gallery_synced_ = false;
  photos_allowed_ = false;
  seen_in_sync_.clear();
  photo_requests_.clear();
  removals_sent_.clear();
  if (download_) {
    // What arrived is counted and hashed: the next link asks from there.
    download_->requested = download_->have;
    download_->paused = false;
  }
}

void Handset::send_removed(std::int64_t notice_id, Actions& out) {
  v1::Envelope removed;
  removed.mutable_gallery_removed()->set_notice_id(notice_id);
  removed.set_msg_id(next_msg_id());
  removals_sent_[removed.msg_id()] = notice_id;
  send(std::move(removed), out);
}

void Handset::forget_photo_if_unused(const std::string& sha256) {
  if (sha256.empty() || !download_ || download_->sha256 != sha256) return;
  for (const GalleryHeld& g : flash_.gallery) {
    if (g.photo_sha256 == sha256) return;  // another entry still shows it
  }
  download_.reset();  // windows still on the way are ignored (no download of theirs)
}

void Handset::delete_entry(std::int64_t now, std::int64_t notice_id, const std::string& reason,
                           Actions& out) {
  auto& held = flash_.gallery;
  auto it = std::find_if(held.begin(), held.end(),
                         [&](const GalleryHeld& g) { return g.notice_id == notice_id; });
  if (it == held.end()) return;  // not held: nothing to delete or confirm
  const std::string sha = it->photo_sha256;
  held.erase(it);
  forget_photo_if_unused(sha);
  if (std::find(flash_.gallery_unconfirmed.begin(), flash_.gallery_unconfirmed.end(),
                notice_id) == flash_.gallery_unconfirmed.end()) {
    flash_.gallery_unconfirmed.push_back(notice_id);
  }
  save(out);
  if (link_ == LinkState::online) send_removed(notice_id, out);
  Action a;
  a.kind = Action::Kind::event;
  a.event = Action::Event::gallery_removed;
  a.id = std::to_string(notice_id);
  a.at = now;
  a.text = reason;
  a.indication = indication_;
  out.push_back(std::move(a));
}

void Handset::handle_gallery(std::int64_t now, const v1::Envelope& envelope, Actions& out) {
  switch (envelope.body_case()) {
    case v1::Envelope::kGallerySync: {
      const auto& sync = envelope.gallery_sync();
      if (!sync.done()) {
        gallery_syncing_ = true;
        gallery_reset_ = sync.reset();
        seen_in_sync_.clear();
        return;
      }
      if (gallery_syncing_ && gallery_reset_) {
        // The hub did not know this handset's version: what it did not send is gone.
        std::vector<std::int64_t> stale;
        for (const GalleryHeld& g : flash_.gallery) {
          if (!seen_in_sync_.contains(g.notice_id)) stale.push_back(g.notice_id);
        }
        for (const std::int64_t id : stale) delete_entry(now, id, "not in the gallery", out);
      }
      for (GalleryHeld& g : flash_.gallery) {
        if (g.version == 0) g.version = sync.to_version();
      }
      flash_.gallery_version = sync.to_version();
      gallery_syncing_ = false;
      gallery_synced_ = true;
      seen_in_sync_.clear();
      save(out);
      event(out, Action::Event::gallery_synced, {}, now,
            static_cast<std::uint32_t>(flash_.gallery.size()), sync.reset());
      next_photo(now, out);
      return;
    }
    case v1::Envelope::kGalleryEntry: {
      const auto& entry = envelope.gallery_entry();
      if (entry.notice_id() <= 0) return;
      seen_in_sync_.insert(entry.notice_id());
      auto& held = flash_.gallery;
      auto it = std::find_if(held.begin(), held.end(), [&](const GalleryHeld& g) {
        return g.notice_id == entry.notice_id();
      });
      const bool added = it == held.end();
      if (added) {
        GalleryHeld g;
        g.notice_id = entry.notice_id();
        it = held.insert(std::upper_bound(held.begin(), held.end(), g,
                                          [](const GalleryHeld& a, const GalleryHeld& b) {
                                            return a.notice_id < b.notice_id;
                                          }),
                         g);
      }
      GalleryHeld& g = *it;
      g.version = entry.version();  // 0 inside a sync: the sync's to_version at its end
      if (added || g.photo_sha256 != entry.photo_sha256() || g.photo_size != entry.photo_size()) {
        const std::string old = g.photo_sha256;
        g.photo_sha256 = entry.photo_sha256();
        g.photo_size = entry.photo_size();
        g.photo_ok = false;
        // Another entry may show the same photo, already here.
        for (const GalleryHeld& other : held) {
          if (other.notice_id != g.notice_id && other.photo_ok &&
              other.photo_sha256 == g.photo_sha256 && !g.photo_sha256.empty()) {
            g.photo_ok = true;
          }
        }
        forget_photo_if_unused(old);
      }
      if (entry.version() != 0) flash_.gallery_version = entry.version();
      save(out);
      Action a;
      a.kind = Action::Kind::event;
      a.event = Action::Event::gallery_entry;
      a.id = std::to_string(entry.notice_id());
      a.at = now;
      a.flag = added;
      a.message = envelope;
      a.indication = indication_;
      out.push_back(std::move(a));
      if (entry.version() != 0) next_photo(now, out);  // a live change: fetch its photo now
      return;
    }
    case v1::Envelope::kGalleryRemove: {
      const auto& remove = envelope.gallery_remove();
      delete_entry(now, remove.notice_id(), remove.reason(), out);
      if (remove.version() != 0) {
        flash_.gallery_version = remove.version();
        save(out);
      }
      return;
    }
    default:
      return;
  }
}

void Handset::next_photo(std::int64_t now, Actions& out) {
  (void)now;
  if (link_ != LinkState::online || !photos_allowed_ || !gallery_synced_) return;
  if (!download_) {
    for (const GalleryHeld& g : flash_.gallery) {
      if (g.photo_sha256.empty() || g.photo_ok || g.photo_size == 0) continue;
      if (photo_attempts_[g.photo_sha256] >= kPhotoAttempts) continue;
      Download d;
      d.sha256 = g.photo_sha256;
      d.size = g.photo_size;
      d.hash.reset(EVP_MD_CTX_new());
      if (!d.hash || EVP_DigestInit_ex(d.hash.get(), EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("OpenSSL cannot start a SHA-256");
      }
      download_ = std::move(d);
      break;
    }
  }
  ask_photo(out);
}

void Handset::ask_photo(Actions& out) {
  if (!download_ || download_->paused || link_ != LinkState::online) return;
  Download& d = *download_;
  const std::uint64_t window = config_.photo_window_bytes;
  // Two windows ahead of what is held keep the link busy without queueing a whole photo.
  while (d.requested < d.size && d.requested - d.have < 2 * window) {
    v1::Envelope request;
    auto* r = request.mutable_photo_request();
    r->set_sha256(d.sha256);
    r->set_offset(d.requested);
    r->set_max_bytes(static_cast<std::uint32_t>(window));
    request.set_msg_id(next_msg_id());
    photo_requests_[request.msg_id()] = d.sha256;
    send(std::move(request), out);
    d.requested = std::min<std::uint64_t>(d.size, d.requested + window);
  }
}

void Handset::handle_chunk(std::int64_t now, const v1::Envelope& envelope, Actions& out) {
  const auto& chunk = envelope.photo_chunk();
  if (!download_ || download_->sha256 != chunk.sha256()) return;  // an abandoned download's
  Download& d = *download_;
  const std::string& data = chunk.data();
  if (chunk.offset() != d.have || data.empty() || data.size() > kPhotoPieceMax ||
      chunk.total_size() != d.size || d.have + data.size() > d.size) {
    // A piece out of place ends the attempt; the next link resumes from what is held.
    drop(now,
         "photo " + d.sha256.substr(0, 12) + ": piece at " + std::to_string(chunk.offset()) +
             " where " + std::to_string(d.have) + " was expected",
         true, out);
    return;
  }
  if (EVP_DigestUpdate(d.hash.get(), data.data(), data.size()) != 1) {
    throw std::runtime_error("OpenSSL SHA-256 update failed");
  }
  if (config_.keep_photo_bytes) d.bytes.append(data);
  if (d.mime.empty()) d.mime = chunk.mime();
  d.have += data.size();
  photo_bytes_ += data.size();
  if (d.have < d.size) {
    ask_photo(out);
    return;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(d.hash.get(), digest, &n) != 1) {
    throw std::runtime_error("OpenSSL SHA-256 final failed");
  }
  Action a;
  a.kind = Action::Kind::event;
  a.id = d.sha256;
  a.at = now;
  a.count = static_cast<std::uint32_t>(d.size);
  a.text = d.mime;
  if (hex_of(digest, n) == d.sha256) {
    for (GalleryHeld& g : flash_.gallery) {
      if (g.photo_sha256 == d.sha256) g.photo_ok = true;
    }
    save(out);
    a.event = Action::Event::photo_complete;
    a.data = std::move(d.bytes);
  } else {
    // Deleted; the next attempt starts again from zero.
    ++photo_hash_failures_;
    ++photo_attempts_[d.sha256];
    a.event = Action::Event::photo_failed;
    a.flag = true;
    a.text = "the bytes received do not match the SHA-256; deleted";
  }
  download_.reset();
  a.indication = indication_;
  out.push_back(std::move(a));
  next_photo(now, out);
}

}  // namespace saferlink::sim
