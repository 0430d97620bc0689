#include "server/hub.hpp"

#include "core/envelope.hpp"
#include "core/tls.hpp"
#include "core/towns.hpp"
#include "server/alert_store.hpp"
#include "core/forms.hpp"
#include "server/intel_store.hpp"
#include "server/metrics.hpp"
#include "server/notice_store.hpp"
#include "server/queries.hpp"
#include "server/routing.hpp"
#include "server/session.hpp"
#include "server/sighting_store.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <future>

namespace saferlink::server {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace {

std::string alert_status_name(const v1::PanicAlert& p) { return std::string(to_string(p.status())); }

constexpr std::int64_t kDefaultAlertLifetimeMs = 30 * 60 * 1000;

// The relayed form of a stored alert.
v1::PanicAlert relay_of(const alerts::AlertRecord& r) {
  v1::PanicAlert p;
  p.set_alert_id(r.alert_id);
  p.set_device_seq(r.device_seq);
  p.set_pressed_at_ms(r.pressed_at_ms);
  p.set_note(r.note);
  p.set_status(parse_alert_status(r.status).value_or(v1::ACTUAL));
  p.set_severity(parse_severity(r.severity).value_or(v1::SEVERE));
  p.set_expires_at_ms(r.expires_at_ms);
  p.set_origin_id(r.device_id);
  p.set_origin_member(r.member);
  p.set_origin_town(r.town);
  p.set_accepted_at_ms(r.accepted_at_ms);
  return p;
}

// The relayed form of a stored sighting.
v1::Sighting relay_of(const sightings::Record& r) {
  v1::Sighting s;
  s.set_sighting_id(r.sighting_id);
  s.set_device_seq(r.device_seq);
  s.set_text(r.text);
  if (r.profile_id) s.set_profile_id(*r.profile_id);
  s.set_photo_sha256(r.photo_sha256);
  s.set_location(r.location);
  s.set_heading(r.heading);
  s.set_town(r.town);
  s.set_seen_at_ms(r.seen_at_ms);
  s.set_origin_id(r.device_id);
  s.set_origin_role(r.sender_role);
  s.set_origin_town(r.sender_town);
  s.set_origin_member(r.sender_member);
  s.set_accepted_at_ms(r.accepted_at_ms);
  s.set_possible_breach(r.possible_breach);
  if (r.notice_id) s.set_notice_id(*r.notice_id);
  s.set_profile_name(r.profile_name);
  return s;
}

AlertTracker::TimePoint steady_from_wall(std::int64_t wall_ms) {
  const auto age = std::chrono::milliseconds(now_ms() - wall_ms);
  return AlertTracker::Clock::now() - age;
}

}  // namespace

Hub::Hub(HubConfig config)
    : config_(std::move(config)),
      towns_(config_.towns.empty() ? default_towns() : config_.towns),
      strand_(asio::make_strand(io_)),
      acceptor_(io_),
      crl_timer_(strand_),
      escalation_timer_(strand_),
      maintenance_timer_(strand_),
      tracker_(AlertTracker::Options{config_.escalation_interval, config_.cancel_window,
                                     std::chrono::hours(12)}) {
  validate(config_);
  const TlsFiles files = tls_files(config_.certs, "hub");
  tls_ = make_server_context(files);
  revoked_ = revoked_serials(files.crl, files.ca);
  std::error_code ec;
  crl_mtime_ = std::filesystem::last_write_time(files.crl, ec);
  store_ = std::make_unique<Store>(Store::Options{config_.db.string(), 512});
  try {
    blobs_ = std::make_unique<BlobStore>(blob_root());
  } catch (const std::exception& e) {
    throw ConfigError("blobs: cannot use " + blob_root().string() + " for image files: " +
                      e.what());
  }
  restore_open_alerts();
}

Hub::~Hub() { stop(); }

bool Hub::serves_town(const std::string& town) const {
  return town == kAllTowns || known_town(towns_, town);
}

void Hub::restore_open_alerts() {
  // Alerts accepted before a restart and still within the tracker's memory resume escalation
  // unless a responder's acknowledgement was recorded.
  const std::int64_t since = now_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::hours(12))
                                            .count();
  std::vector<std::pair<alerts::AlertRecord, std::vector<alerts::EventRecord>>> open;
  store_->run_sync([&](SQLite::Database& db) {
    for (auto& record : alerts::open_since(db, since)) {
      auto events = alerts::events(db, record.alert_id);
      open.emplace_back(std::move(record), std::move(events));
    }
  });
  for (auto& [record, events] : open) {
    Identity sender{record.device_id, Role::shop, record.town, record.member, ""};
    tracker_.add(record.alert_id, sender, steady_from_wall(record.accepted_at_ms));
    for (const auto& event : events) {
      auto status = parse_recipient_status(event.kind);
      auto role = parse_role(event.by_role);
      if (!status || !role) continue;
      Identity by{event.by_id, *role, event.by_town, "", ""};
      tracker_.on_status(record.alert_id, by, *status, steady_from_wall(event.at_ms));
    }
    live_[record.alert_id] = LiveAlert{relay_of(record)};
  }
  if (!open.empty()) spdlog::info("restored {} open alert(s) from the database", open.size());
}

void Hub::start() {
  const HostPort where = parse_host_port(config_.listen, "listen");
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(where.host, ec);
  if (ec) throw ConfigError("listen: '" + where.host + "' is not an IP address");
  const asio::ip::tcp::endpoint endpoint(address, where.port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint, ec);
  if (ec) throw ConfigError("listen: cannot bind " + config_.listen + ": " + ec.message());
  acceptor_.listen(asio::socket_base::max_listen_connections);
  port_ = acceptor_.local_endpoint().port();
  spdlog::info("hub listening on {}:{} (TLS 1.3, client certificates from {})", where.host,
               port_.load(), config_.certs.string());

  if (!config_.metrics_listen.empty()) {
    metrics_ = std::make_unique<MetricsServer>(*this, io_, strand_);
    metrics_port_ = metrics_->bind(config_.metrics_listen);
    spdlog::info("metrics on http://{}/metrics", metrics_->bound_address());
  }

  asio::co_spawn(strand_, accept_loop(), asio::detached);
  if (metrics_) metrics_->start();
  asio::post(strand_, [this] {
    rearm_escalation();
    poll_crl();
    last_purge_ms_ = now_ms();  // the first scheduled purge comes one purge interval after start
    run_maintenance();
  });
  const unsigned n = std::max(1u, config_.threads);
  for (unsigned i = 0; i < n; ++i) {
    threads_.emplace_back([this] { io_.run(); });
  }
}

void Hub::run_until_signal() {
  asio::signal_set signals(io_, SIGINT, SIGTERM, SIGHUP);
  std::promise<void> done;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        if (signal == SIGHUP) {
          spdlog::info("SIGHUP: reloading the CRL");
          reload_crl();
          signals.async_wait(on_signal);
          return;
        }
        spdlog::info("signal {}: stopping", signal);
        done.set_value();
      };
  signals.async_wait(on_signal);
  done.get_future().wait();
  signals.cancel();
  stop();
}

void Hub::stop() {
  if (stopped_.exchange(true)) return;
  if (threads_.empty()) return;
  std::promise<void> closed;
  asio::post(strand_, [this, &closed] {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    if (metrics_) metrics_->close();
    crl_timer_.cancel();
    escalation_timer_.cancel();
    maintenance_timer_.cancel();
    for (auto& [id, session] : sessions_) session.connection->abort("hub stopping");
    closed.set_value();
  });
  closed.get_future().wait();
  io_.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  blob_pool_.join();  // lets an image being checked finish; its answer has nowhere to go
  spdlog::info("hub stopped");
}

Hub::Stats Hub::stats() const {
  Stats s;
  s.sessions_live = sessions_live_.load();
  s.alerts_accepted = alerts_accepted_.load();
  s.alerts_duplicate = alerts_duplicate_.load();
  s.escalations = escalations_.load();
  s.refusals = refusals_.load();
  s.handshake_failures = handshake_failures_.load();
  s.forms_stored = forms_stored_.load();
  s.sightings_accepted = sightings_accepted_.load();
  s.queries = queries_.load();
  s.sessions_dropped = sessions_dropped_.load();
  return s;
}

awaitable<Hub::QueueDepths> Hub::queue_depths() {
  // co_spawn copies the lambda into the new coroutine's frame; it runs on the hub strand and
  // the caller resumes on its own executor.
  co_return co_await asio::co_spawn(
      strand_,
      [this]() -> awaitable<QueueDepths> {
        QueueDepths depths;
        for (const auto& [id, session] : sessions_) {
          const auto queued = static_cast<std::uint64_t>(session.connection->queued_messages());
          depths.total_messages += queued;
          depths.max_messages = std::max(depths.max_messages, queued);
        }
        co_return depths;
      },
      use_awaitable);
}

awaitable<void> Hub::accept_loop() {
  for (;;) {
    auto socket_strand = asio::make_strand(io_);
    auto [ec, socket] =
        co_await acceptor_.async_accept(socket_strand, asio::as_tuple(use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      spdlog::warn("accept failed: {}", ec.message());
      continue;
    }
    boost::system::error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    const std::uint64_t id = next_session_id_++;
    asio::co_spawn(socket_strand, run_session(*this, tls_, std::move(socket), id),
                   asio::detached);
  }
}

void Hub::attach(SessionRef session) {
  asio::post(strand_, [this, session = std::move(session)]() mutable {
    if (revoked_.count(session.identity.serial_hex)) {
      spdlog::warn("session {}: certificate of {} is revoked; dropping", session.id,
                   session.identity.id);
      session.connection->abort("certificate revoked");
      return;
    }
    sessions_by_device_.emplace(session.identity.id, session.id);
    sessions_.emplace(session.id, std::move(session));
    sessions_live_ = sessions_.size();
  });
}

void Hub::detach(std::uint64_t session_id) {
  asio::post(strand_, [this, session_id] {
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return;
    auto range = sessions_by_device_.equal_range(it->second.identity.id);
    for (auto i = range.first; i != range.second; ++i) {
      if (i->second == session_id) {
        sessions_by_device_.erase(i);
        break;
      }
    }
    sessions_.erase(it);
    sessions_live_ = sessions_.size();
  });
}

void Hub::on_panic(const SessionRef& from, std::uint64_t msg_id, const v1::PanicAlert& panic) {
  const std::int64_t accepted_at = now_ms();
  alerts::AlertRecord record;
  record.alert_id = panic.alert_id();
  record.device_id = from.identity.id;
  record.device_seq = panic.device_seq();
  record.member = from.identity.member;
  record.town = from.identity.town;
  record.status = alert_status_name(panic);
  record.severity = std::string(to_string(panic.severity()));
  record.note = panic.note();
  record.pressed_at_ms = panic.pressed_at_ms() > 0 ? panic.pressed_at_ms() : accepted_at;
  record.expires_at_ms = panic.expires_at_ms() > 0 ? panic.expires_at_ms()
                                                   : record.pressed_at_ms + kDefaultAlertLifetimeMs;
  record.accepted_at_ms = accepted_at;

  auto outcome = std::make_shared<std::pair<alerts::InsertOutcome, alerts::AlertRecord>>();
  store_->submit(
      [record, outcome](SQLite::Database& db) {
        outcome->first = alerts::insert(db, record, &outcome->second);
        if (outcome->first == alerts::InsertOutcome::inserted) outcome->second = record;
      },
      [this, from, msg_id, outcome](std::exception_ptr error) {
        asio::post(strand_, [this, from, msg_id, outcome, error] {
          if (error) {
            std::string why = "could not store the alert";
            try {
              std::rethrow_exception(error);
            } catch (const std::exception& e) {
              why += std::string(": ") + e.what();
            }
            spdlog::error("alert from {}: {}", from.identity.id, why);
            v1::Envelope reply = make_error(msg_id, v1::STORE_FAILED, why + "; retry");
            from.connection->send(reply);
            return;
          }
          const auto& stored = outcome->second;
          const bool duplicate = outcome->first == alerts::InsertOutcome::duplicate;
          v1::Envelope reply;
          auto* accepted = reply.mutable_accepted();
          accepted->set_alert_id(stored.alert_id);
          accepted->set_accepted_at_ms(stored.accepted_at_ms);
          accepted->set_duplicate(duplicate);
          if (duplicate) {
            ++alerts_duplicate_;
            const auto* tracked = tracker_.find(stored.alert_id);
            accepted->set_recipients(
                tracked ? static_cast<std::uint32_t>(tracked->recipients.size()) : 0);
            spdlog::info("alert {} from {}: duplicate, answered again, not relayed",
                         stored.alert_id, from.identity.id);
            from.connection->send(reply);
            return;
          }
          ++alerts_accepted_;
          tracker_.add(stored.alert_id, from.identity,
                       steady_from_wall(stored.accepted_at_ms));
          live_[stored.alert_id] = LiveAlert{relay_of(stored)};
          // Recipients are counted before the accepted reply so it can say how many.
          fan_out(stored.alert_id, false, 0);
          const auto* tracked = tracker_.find(stored.alert_id);
          accepted->set_recipients(static_cast<std::uint32_t>(tracked->recipients.size()));
          from.connection->send(reply);
          spdlog::info("alert {} ({}) from {} in {} accepted, relayed to {}", stored.alert_id,
                       stored.status, from.identity.id, from.identity.town,
                       tracked->recipients.size());
          rearm_escalation();
        });
      });
}

void Hub::fan_out(const std::string& alert_id, bool escalated, std::uint32_t round) {
  auto live = live_.find(alert_id);
  const auto* tracked = tracker_.find(alert_id);
  if (live == live_.end() || tracked == nullptr) return;
  v1::Envelope envelope;
  *envelope.mutable_panic() = live->second.relay;
  envelope.mutable_panic()->set_escalated(escalated);
  envelope.mutable_panic()->set_escalation_round(round);
  const Frame frame = encode(envelope);  // encoded once, shared by every recipient
  std::vector<std::string> recipients;
  for (const auto& [id, session] : sessions_) {
    if (!receives_panic(tracked->sender, session.identity, escalated)) continue;
    session.connection->send(frame, Priority::alert);
    recipients.push_back(session.identity.id);
  }
  tracker_.note_recipients(alert_id, recipients);
}

void Hub::send_to_device(const std::string& device_id, const Frame& frame, Priority p) {
  auto range = sessions_by_device_.equal_range(device_id);
  for (auto i = range.first; i != range.second; ++i) {
    auto s = sessions_.find(i->second);
    if (s != sessions_.end()) s->second.connection->send(frame, p);
  }
}

void Hub::send_update(const std::string& device_id, v1::AlertUpdate update) {
  v1::Envelope envelope;
  *envelope.mutable_update() = std::move(update);
  send_to_device(device_id, encode(envelope), Priority::control);
}

void Hub::record_event(const std::string& alert_id, const std::string& kind, const Identity& by,
                       std::uint32_t round) {
  alerts::EventRecord event{alert_id, kind, by.id, std::string(to_string(by.role)), by.town,
                            now_ms(), round};
  store_->submit([event](SQLite::Database& db) { alerts::record_event(db, event); },
                 [alert_id](std::exception_ptr error) {
                   if (error) spdlog::error("could not record an event of alert {}", alert_id);
                 });
}

void Hub::on_status(const SessionRef& from, std::uint64_t msg_id,
                    const v1::RecipientStatus& status) {
  asio::post(strand_, [this, from, msg_id, status] {
    const auto result =
        tracker_.on_status(status.alert_id(), from.identity, status.status(), AlertTracker::Clock::now());
    if (result == AlertTracker::StatusResult::unknown_alert) {
      ++refusals_;
      v1::Envelope reply =
          make_error(msg_id, v1::UNKNOWN_ALERT, "unknown alert id " + status.alert_id());
      from.connection->send(reply);
      return;
    }
    if (result == AlertTracker::StatusResult::not_a_recipient) {
      ++refusals_;
      v1::Envelope reply = make_error(msg_id, v1::NOT_ALLOWED,
                                      from.identity.id + " is not a recipient of alert " +
                                          status.alert_id());
      from.connection->send(reply);
      return;
    }
    v1::Envelope receipt;
    receipt.mutable_receipt()->set_in_reply_to(msg_id);
    from.connection->send(receipt);

    const auto* tracked = tracker_.find(status.alert_id());
    v1::AlertUpdate update;
    update.set_alert_id(status.alert_id());
    update.set_event(v1::RECIPIENT);
    update.set_recipient_status(status.status());
    update.set_by_id(from.identity.id);
    update.set_by_role(std::string(to_string(from.identity.role)));
    update.set_by_town(from.identity.town);
    update.set_by_member(from.identity.member);
    update.set_at_ms(now_ms());
    update.set_escalation_round(tracked->escalation_round);
    send_update(tracked->sender.id, std::move(update));
    record_event(status.alert_id(), std::string(to_string(status.status())), from.identity, 0);
    if (status.status() != v1::DELIVERED) {
      spdlog::info("alert {}: {} by {} ({})", status.alert_id(), to_string(status.status()),
                   from.identity.id, to_string(from.identity.role));
    }
    if (result == AlertTracker::StatusResult::first_ack) rearm_escalation();
  });
}

void Hub::on_cancel(const SessionRef& from, std::uint64_t msg_id, const v1::CancelAlert& cancel) {
  asio::post(strand_, [this, from, msg_id, cancel] {
    const auto result =
        tracker_.on_cancel(cancel.alert_id(), from.identity, AlertTracker::Clock::now());
    auto refuse = [&](v1::ErrorCode code, const std::string& why) {
      ++refusals_;
      v1::Envelope reply = make_error(msg_id, code, why);
      from.connection->send(reply);
    };
    switch (result) {
      case AlertTracker::CancelResult::unknown_alert:
        return refuse(v1::UNKNOWN_ALERT, "unknown alert id " + cancel.alert_id());
      case AlertTracker::CancelResult::not_sender:
        return refuse(v1::NOT_ALLOWED, "only the sender may cancel alert " + cancel.alert_id());
      case AlertTracker::CancelResult::too_late:
        return refuse(v1::TOO_LATE,
                      "alert " + cancel.alert_id() + " can no longer be cancelled (window " +
                          std::to_string(config_.cancel_window.count() / 1000) + " s)");
      case AlertTracker::CancelResult::already_cancelled:
      case AlertTracker::CancelResult::cancelled:
        break;
    }
    // The database decides: the first cancel that commits is the one relayed, so a cancel
    // whose commit failed can be retried and still reaches everyone.
    const std::string alert_id = cancel.alert_id();
    const std::string reason = cancel.reason();
    const Identity by = from.identity;
    const std::int64_t at = now_ms();
    auto first = std::make_shared<bool>(false);
    store_->submit(
        [alert_id, reason, at, by, first](SQLite::Database& db) {
          *first = alerts::mark_cancelled(db, alert_id, at, reason);
          if (*first) {
            alerts::record_event(db, {alert_id, "cancelled", by.id,
                                      std::string(to_string(by.role)), by.town, at, 0});
          }
        },
        [this, from, msg_id, alert_id, reason, at, first](std::exception_ptr error) {
          asio::post(strand_, [this, from, msg_id, alert_id, reason, at, first, error] {
            if (error) {
              v1::Envelope reply =
                  make_error(msg_id, v1::STORE_FAILED, "could not store the cancel; retry");
              from.connection->send(reply);
              return;
            }
            v1::Envelope receipt;
            receipt.mutable_receipt()->set_in_reply_to(msg_id);
            from.connection->send(receipt);
            if (!*first) return;
            const auto* tracked = tracker_.find(alert_id);
            if (tracked == nullptr) return;
            v1::Envelope relay;
            relay.mutable_cancel()->set_alert_id(alert_id);
            relay.mutable_cancel()->set_reason(reason);
            relay.mutable_cancel()->set_origin_id(from.identity.id);
            const Frame frame = encode(relay);
            if (tracked->recipients.empty()) {
              // Restored after a restart: who received it is not known, so tell everyone
              // connected whom it would reach.
              for (const auto& [sid, session] : sessions_) {
                if (receives_panic(tracked->sender, session.identity,
                                   tracked->escalation_round > 0)) {
                  session.connection->send(frame, Priority::alert);
                }
              }
            }
            for (const auto& id : tracked->recipients) send_to_device(id, frame, Priority::alert);
            v1::AlertUpdate update;
            update.set_alert_id(alert_id);
            update.set_event(v1::CANCELLED);
            update.set_by_id(from.identity.id);
            update.set_by_role(std::string(to_string(from.identity.role)));
            update.set_by_town(from.identity.town);
            update.set_by_member(from.identity.member);
            update.set_at_ms(at);
            send_update(from.identity.id, std::move(update));
            spdlog::info("alert {} cancelled by {} ({}); told {} recipient(s)", alert_id,
                         from.identity.id, reason.empty() ? "no reason given" : reason,
                         tracked->recipients.size());
            rearm_escalation();
          });
        });
  });
}

void Hub::rearm_escalation() {
  const auto next = tracker_.next_deadline();
  if (!next) {
    escalation_timer_.cancel();
    return;
  }
  escalation_timer_.expires_at(*next);
  escalation_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    on_escalation_timer();
  });
}

void Hub::on_escalation_timer() {
  const auto now = AlertTracker::Clock::now();
  for (const auto& due : tracker_.due(now)) {
    const auto* tracked = tracker_.find(due.alert_id);
    auto live = live_.find(due.alert_id);
    if (tracked == nullptr || live == live_.end()) continue;
    if (live->second.relay.expires_at_ms() <= now_ms()) {
      tracker_.expire(due.alert_id);
      spdlog::warn("alert {}: expired without an acknowledgement; escalation stops",
                   due.alert_id);
      continue;
    }
    fan_out(due.alert_id, true, due.round);
    ++escalations_;
    spdlog::warn("alert {}: nobody has acknowledged; escalated (round {}) to police, CCTV and "
                 "coordinators in every town",
                 due.alert_id, due.round);
    v1::AlertUpdate update;
    update.set_alert_id(due.alert_id);
    update.set_event(v1::ESCALATED);
    update.set_at_ms(now_ms());
    update.set_escalation_round(due.round);
    send_update(tracked->sender.id, std::move(update));
    record_event(due.alert_id, "escalated", Identity{"hub", Role::hub, "all", "", ""}, due.round);
  }
  tracker_.prune(now);
  for (auto it = live_.begin(); it != live_.end();) {
    it = tracker_.find(it->first) ? std::next(it) : live_.erase(it);
  }
  rearm_escalation();
}

void Hub::reload_crl() {
  asio::post(strand_, [this] {
    crl_mtime_ = {};
    poll_crl();
  });
}

void Hub::poll_crl() {
  if (stopped_) return;
  const TlsFiles files = tls_files(config_.certs, "hub");
  std::error_code ec;
  const auto mtime = std::filesystem::last_write_time(files.crl, ec);
  if (!ec && mtime != crl_mtime_) {
    try {
      auto revoked = revoked_serials(files.crl, files.ca);
      tls_ = make_server_context(files);
      crl_mtime_ = mtime;
      apply_crl(std::move(revoked));
    } catch (const std::exception& e) {
      // Keep the previous CRL: a half-written or bad file must not open the door.
      spdlog::error("CRL reload failed, keeping the previous one: {}", e.what());
    }
  }
  crl_timer_.expires_after(config_.crl_poll_interval);
  crl_timer_.async_wait([this](const boost::system::error_code& error) {
    if (!error) poll_crl();
  });
}

void Hub::apply_crl(std::set<std::string> revoked) {
  revoked_ = std::move(revoked);
  std::size_t dropped = 0;
  for (auto& [id, session] : sessions_) {
    if (revoked_.count(session.identity.serial_hex)) {
      spdlog::warn("session {}: certificate of {} revoked; dropping the session", id,
                   session.identity.id);
      session.connection->abort("certificate revoked");
      ++dropped;
    }
  }
  spdlog::info("CRL loaded: {} revoked certificate(s), {} live session(s) dropped",
               revoked_.size(), dropped);
}

}  // namespace saferlink::server

namespace saferlink::server {

namespace {

std::string reason_of(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace

void Hub::on_form(const SessionRef& from, std::uint64_t msg_id, const v1::IncidentForm& wire) {
  auto parsed = forms::from_wire(wire);
  if (!parsed) {
    ++refusals_;
    v1::Envelope reply = make_error(msg_id, v1::INVALID, parsed.error);
    from.connection->send(reply);
    return;
  }
  const forms::IncidentForm form = std::move(*parsed.form);
  const std::int64_t now = now_ms();
  if (auto bad = forms::validate(form, from.identity, towns_, now)) {
    ++refusals_;
    v1::Envelope reply = make_error(msg_id, v1::INVALID, *bad);
    from.connection->send(reply);
    return;
  }
  auto result = std::make_shared<intel::InsertResult>();
  store_->submit(
      [form, from, now, result](SQLite::Database& db) {
        *result = intel::insert_form(db, form, from.identity, now);
      },
      [this, from, msg_id, form_id = form.form_id, now, result](std::exception_ptr error) {
        // Store thread; Connection::send is thread-safe.
        v1::Envelope reply;
        if (error) {
          spdlog::error("form {} from {}: {}", form_id, from.identity.id, reason_of(error));
          reply = make_error(msg_id, v1::STORE_FAILED, "could not store the form; retry");
        } else if (result->outcome == intel::InsertOutcome::refused) {
          reply = make_error(msg_id, v1::INVALID, result->error);
        } else {
          auto* confirmed = reply.mutable_form_confirmed();
          confirmed->set_form_id(form_id);
          confirmed->set_confirmation(result->confirmation);
          confirmed->set_received_at_ms(now);
          confirmed->set_duplicate(result->outcome == intel::InsertOutcome::duplicate);
          if (!confirmed->duplicate()) ++forms_stored_;
          spdlog::info("form {} from {} ({}) {}", form_id, from.identity.id, from.identity.town,
                       confirmed->duplicate() ? "repeated: confirmed again" : "stored");
        }
        from.connection->send(reply);
      });
}

void Hub::on_sighting(const SessionRef& from, std::uint64_t msg_id,
                      const v1::Sighting& sighting) {
  const std::int64_t accepted_at = now_ms();
  sightings::Record record;
  record.sighting_id = sighting.sighting_id();
  record.device_id = from.identity.id;
  record.device_seq = sighting.device_seq();
  record.sender_role = std::string(to_string(from.identity.role));
  record.sender_member = from.identity.member;
  record.sender_town = from.identity.town;
  // check_sighting made sure an all-town sender named a town and nobody else named another.
  record.town = from.identity.all_towns() ? sighting.town() : from.identity.town;
  record.text = sighting.text();
  record.location = sighting.location();
  record.heading = sighting.heading();
  if (sighting.profile_id() > 0) record.profile_id = sighting.profile_id();
  record.photo_sha256 = sighting.photo_sha256();
  record.seen_at_ms = sighting.seen_at_ms() > 0 ? sighting.seen_at_ms() : accepted_at;
  record.accepted_at_ms = accepted_at;

  auto result = std::make_shared<sightings::InsertResult>();
  store_->submit(
      [record, accepted_at, result](SQLite::Database& db) {
        *result = sightings::insert(db, record, accepted_at);
      },
      [this, from, msg_id, result](std::exception_ptr error) {
        asio::post(strand_, [this, from, msg_id, result, error] {
          if (error) {
            spdlog::error("sighting from {}: {}", from.identity.id, reason_of(error));
            v1::Envelope reply =
                make_error(msg_id, v1::STORE_FAILED, "could not store the sighting; retry");
            from.connection->send(reply);
            return;
          }
          if (result->outcome == sightings::Outcome::refused) {
            ++refusals_;
            spdlog::info("sighting from {} refused: {}", from.identity.id, result->error);
            v1::Envelope reply = make_error(msg_id, v1::INVALID, result->error);
            from.connection->send(reply);
            return;
          }
          const auto& stored = result->stored;
          v1::Envelope reply;
          auto* accepted = reply.mutable_sighting_accepted();
          accepted->set_sighting_id(stored.sighting_id);
          accepted->set_accepted_at_ms(stored.accepted_at_ms);
          accepted->set_possible_breach(stored.possible_breach);
          if (stored.notice_id) accepted->set_notice_id(*stored.notice_id);
          if (stored.profile_id) accepted->set_profile_id(*stored.profile_id);
          if (result->outcome == sightings::Outcome::duplicate) {
            accepted->set_duplicate(true);
            spdlog::info("sighting {} from {}: duplicate, answered again, not relayed",
                         stored.sighting_id, from.identity.id);
            from.connection->send(reply);
            return;
          }
          ++sightings_accepted_;
          // Routed as if the sender stood in the sighting's town (an all-town CCTV operator
          // or police officer names it).
          Identity sender = from.identity;
          sender.town = stored.town;
          v1::Envelope relay;
          *relay.mutable_sighting() = relay_of(stored);
          const Frame frame = encode(relay);  // encoded once, shared by every recipient
          std::uint32_t recipients = 0;
          for (const auto& [id, session] : sessions_) {
            if (!receives_sighting(sender, session.identity, stored.possible_breach)) continue;
            session.connection->send(frame, Priority::normal);
            ++recipients;
          }
          accepted->set_recipients(recipients);
          from.connection->send(reply);
          spdlog::info("sighting {} from {} in {} accepted{}, relayed to {}", stored.sighting_id,
                       from.identity.id, stored.town,
                       stored.possible_breach
                           ? " (possible breach of notice " + std::to_string(*stored.notice_id) +
                                 ")"
                           : std::string(),
                       recipients);
        });
      });
}

void Hub::on_query(const SessionRef& from, std::uint64_t msg_id, const v1::Query& query) {
  queries::Context context;
  context.actor = from.identity;
  context.now_ms = now_ms();
  context.blob_root = blob_root();
  context.notice_options = notice_options();
  context.candidates.min_incidents = config_.candidate_min_incidents;
  context.candidates.min_members = config_.candidate_min_members;
  context.retention.forms_and_profiles_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(config_.retention).count();
  context.retention.ended_notices_ms = config_.ended_notice_retention.count();
  auto answer = std::make_shared<queries::Answer>();
  auto refusal = std::make_shared<std::optional<queries::QueryError>>();
  store_->submit(
      [query, context, answer, refusal](SQLite::Database& db) {
        try {
          *answer = queries::run(db, query.op(), query.args_json(), context);
        } catch (const queries::QueryError& e) {
          // A refusal is an answer, not a failed job: whatever the op wrote (its audit row of
          // a refused read, say) still commits.
          *refusal = e;
        }
      },
      [this, from, msg_id, op = query.op(), answer, refusal](std::exception_ptr error) {
        ++queries_;
        v1::Envelope reply;
        if (error) {
          spdlog::error("query {} from {}: {}", op, from.identity.id, reason_of(error));
          reply = make_error(msg_id, v1::STORE_FAILED, "the store failed: " + reason_of(error));
        } else if (*refusal) {
          ++refusals_;
          spdlog::info("query {} from {} refused: {}", op, from.identity.id, (*refusal)->what());
          reply = make_error(msg_id, (*refusal)->code, (*refusal)->what());
        } else if (answer->json.size() + 1024 > kMaxResultFrameBytes) {
          reply = make_error(msg_id, v1::INVALID,
                             "the answer is too large (" + std::to_string(answer->json.size()) +
                                 " bytes); narrow the query (limit, since, town)");
        } else {
          reply.mutable_query_result()->set_in_reply_to(msg_id);
          reply.mutable_query_result()->set_result_json(std::move(answer->json));
        }
        from.connection->send(reply);
        if (!error && !*refusal) delete_blob_files(answer->delete_blobs);
      });
}

notices::Options Hub::notice_options() const {
  notices::Options options;
  options.towns = towns_;
  options.validity = config_.notice_validity;
  options.review_after = config_.notice_review_after;
  return options;
}

std::filesystem::path Hub::blob_root() const {
  return config_.blobs.empty() ? config_.db.parent_path() / "blobs" : config_.blobs;
}

UploadServices Hub::upload_services() {
  return UploadServices{*store_, *blobs_, blob_pool_.get_executor(), config_.image_cap_bytes,
                        [this] { ++refusals_; }};
}

void Hub::delete_blob_files(const std::vector<std::string>& sha256s) {
  const auto root = blob_root();
  for (const auto& sha : sha256s) {
    if (sha.size() != 64) continue;
    std::error_code ec;
    std::filesystem::remove(root / sha.substr(0, 2) / sha, ec);
    if (ec) spdlog::warn("could not delete image file {}: {}", sha, ec.message());
  }
}

void Hub::run_maintenance() {
  if (stopped_) return;
  const std::int64_t now = now_ms();
  const bool purge_due =
      now - last_purge_ms_ >=
      std::chrono::duration_cast<std::chrono::milliseconds>(config_.purge_interval).count();
  if (purge_due) last_purge_ms_ = now;
  const notices::Options notice_options = this->notice_options();
  intel::RetentionOptions retention;
  retention.forms_and_profiles_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(config_.retention).count();
  retention.ended_notices_ms = config_.ended_notice_retention.count();
  auto deleted = std::make_shared<std::vector<std::string>>();
  store_->submit(
      [now, notice_options, retention, purge_due, deleted](SQLite::Database& db) {
        const auto due = notice_store::run_due(db, now, notice_options);
        for (const auto& n : due.expired) {
          spdlog::info("notice {} expired", n.id);
        }
        for (const auto& n : due.reminded) {
          spdlog::warn("notice {} is due for its 6-month review", n.id);
        }
        // Photos of notices that expired now go at once, not at the next scheduled purge.
        if (purge_due || !due.expired.empty()) {
          const auto report =
              intel::purge(db, now, retention, false, notice_store::hub_identity());
          if (report.ok()) {
            *deleted = report.value->blobs;
            spdlog::info("scheduled purge: {} form(s), {} profile(s), {} notice photo(s), {} "
                         "image(s) removed",
                         report.value->forms.size(), report.value->profiles.size(),
                         report.value->notice_photos.size(), report.value->blobs.size());
          } else {
            spdlog::error("scheduled purge refused: {}", report.status.error);
          }
        }
      },
      [this, deleted](std::exception_ptr error) {
        if (error) {
          spdlog::error("maintenance failed: {}", reason_of(error));
          return;
        }
        delete_blob_files(*deleted);
      });
  if (purge_due) {
    // Partial uploads nobody resumed within a week: their senders have given up.
    asio::post(blob_pool_, [this] {
      try {
        const auto cutoff =
            std::filesystem::file_time_type::clock::now() - std::chrono::hours(24 * 7);
        if (const auto n = blobs_->remove_stale_partials(cutoff); n > 0) {
          spdlog::info("removed {} partial upload(s) untouched for a week", n);
        }
      } catch (const std::exception& e) {
        spdlog::error("could not remove stale partial uploads: {}", e.what());
      }
    });
  }
  maintenance_timer_.expires_after(config_.maintenance_interval);
  maintenance_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) run_maintenance();
  });
}

}  // namespace saferlink::server
