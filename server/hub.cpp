#include "server/hub.hpp"

#include "core/envelope.hpp"
#include "core/tls.hpp"
#include "core/towns.hpp"
#include "core/forms.hpp"
#include "server/alert_store.hpp"
#include "server/audit.hpp"
#include "server/gallery_store.hpp"
#include "server/intel_store.hpp"
#include "server/console.hpp"
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

#include <fstream>
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

std::string reason_of(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown error";
  }
}

v1::Envelope gallery_entry_envelope(const gallery::Entry& entry, std::uint64_t version) {
  v1::Envelope e;
  auto* g = e.mutable_gallery_entry();
  g->set_notice_id(entry.notice_id);
  g->set_profile_id(entry.profile_id);
  g->set_name(entry.name);
  g->set_conditions(entry.conditions);
  for (const auto& town : entry.towns) g->add_towns(town);
  g->set_expires_at_ms(entry.expires_at_ms);
  g->set_photo_sha256(entry.photo_sha256);
  g->set_photo_size(entry.photo_size);
  g->set_photo_mime(entry.photo_mime);
  g->set_version(version);
  return e;
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
      handshake_slot_(strand_),
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
  load_devices();
}

Hub::~Hub() { stop(); }

void Hub::load_devices() {
  std::uint64_t epoch = 0;
  std::vector<outbox::KnownDevice> known;
  std::vector<std::pair<std::string, std::uint64_t>> last;
  std::uint64_t gallery_version = 0;
  store_->run_sync([&](SQLite::Database& db) {
    epoch = outbox::next_epoch(db);
    known = outbox::load_devices(db);
    last = outbox::last_seqs(db);
    gallery_version = gallery::current_version(db);
  });
  // Numbers handed out by an earlier run may have reached devices without their rows being
  // committed (a crash): this run starts every device above all of them.
  seq_base_ = epoch << 32;
  for (auto& device : known) {
    devices_[device.identity.id] = DeviceState{std::move(device.identity), seq_base_};
  }
  for (const auto& [id, seq] : last) {
    auto it = devices_.find(id);
    if (it != devices_.end()) it->second.last_seq = std::max(it->second.last_seq, seq);
  }
  gallery_known_ = gallery_pushed_ = gallery_version;
}

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
    live_[record.alert_id] = LiveAlert{relay_of(record), {}};
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

  if (!config_.console_listen.empty()) {
    console_ = std::make_unique<ConsoleServer>(*this, io_, strand_);
    console_port_ = console_->bind(config_.console_listen);
    spdlog::info("console on https://{}/", console_->bound_address());
  }

  asio::co_spawn(strand_, accept_loop(), asio::detached);
  if (metrics_) metrics_->start();
  if (console_) console_->start();
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
    if (console_) console_->close();
    crl_timer_.cancel();
    escalation_timer_.cancel();
    maintenance_timer_.cancel();
    handshake_slot_.cancel();
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
  s.replayed = replayed_.load();
  s.gallery_entries_sent = gallery_entries_sent_.load();
  s.gallery_removals_sent = gallery_removals_sent_.load();
  s.photo_bytes_sent = photo_bytes_sent_.load();
  s.handshakes_in_flight = handshakes_in_flight_.load();
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

awaitable<std::vector<Hub::OnAir>> Hub::on_air() {
  co_return co_await asio::co_spawn(
      strand_,
      [this]() -> awaitable<std::vector<OnAir>> {
        std::vector<OnAir> out;
        out.reserve(sessions_.size());
        for (const auto& [id, s] : sessions_) {
          out.push_back(OnAir{s.identity.id, s.identity.role, s.identity.town,
                              s.identity.member, s.connected_at_ms, s.last_heard_ms,
                              s.battery_percent, s.hello.software});
        }
        std::sort(out.begin(), out.end(), [](const OnAir& a, const OnAir& b) {
          return std::tie(a.town, a.device_id) < std::tie(b.town, b.device_id);
        });
        co_return out;
      },
      use_awaitable);
}

void Hub::on_heartbeat(std::uint64_t session_id, std::uint32_t battery_percent) {
  asio::post(strand_, [this, session_id, battery_percent, at = now_ms()] {
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return;
    it->second.last_heard_ms = at;
    if (battery_percent > 0 && battery_percent <= 100) it->second.battery_percent = battery_percent;
  });
}

awaitable<void> Hub::accept_loop() {
  for (;;) {
    // At most max_handshakes TLS handshakes at once: the rest wait in the listen backlog.
    while (handshakes_in_flight_.load() >= config_.max_handshakes) {
      handshake_slot_.expires_after(std::chrono::milliseconds(100));  // also re-checks
      co_await handshake_slot_.async_wait(asio::as_tuple(use_awaitable));
      if (!acceptor_.is_open()) co_return;
    }
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
    ++handshakes_in_flight_;
    asio::co_spawn(socket_strand, run_session(*this, tls_, std::move(socket), id),
                   asio::detached);
  }
}

struct Hub::AttachResult {
  std::vector<outbox::Pending> pending;
  gallery::Sync sync;
  std::vector<std::int64_t> held;  // notice ids the holders table says it may hold
};

void Hub::handshake_done() {
  if (handshakes_in_flight_.fetch_sub(1) == config_.max_handshakes) {
    asio::post(strand_, [this] { handshake_slot_.cancel(); });
  }
}

void Hub::attach(SessionRef session, HelloInfo hello) {
  asio::post(strand_, [this, session = std::move(session), hello]() mutable {
    if (revoked_.count(session.identity.serial_hex)) {
      spdlog::warn("session {}: certificate of {} is revoked; dropping", session.id,
                   session.identity.id);
      session.connection->abort("certificate revoked");
      return;
    }
    auto& device = devices_[session.identity.id];
    device.identity = session.identity;
    // A device that processed numbers this hub does not know of (its database was replaced)
    // must still see every new message as new.
    device.last_seq =
        std::max({device.last_seq, seq_base_, hello.cursor.alert, hello.cursor.other});
    const std::uint64_t id = session.id;
    LiveSession live;
    static_cast<SessionRef&>(live) = session;
    live.hello = hello;
    live.connected_at_ms = live.last_heard_ms = now_ms();
    live.ready = !hello.resume;
    sessions_by_device_.emplace(session.identity.id, id);
    sessions_.emplace(id, std::move(live));
    sessions_live_ = sessions_.size();

    const Identity identity = session.identity;
    const std::int64_t now = now_ms();
    auto result = std::make_shared<AttachResult>();
    store_->submit(
        [identity, hello, now, result](SQLite::Database& db) {
          outbox::upsert_device(db, identity, now);
          if (hello.resume) result->pending = outbox::pending(db, identity.id, hello.cursor, now);
          if (hello.gallery) {
            result->sync = gallery::sync_for(db, identity, hello.gallery_version);
            for (const auto& h : gallery::holders_of_device(db, identity.id)) {
              result->held.push_back(h);
            }
          }
        },
        [this, id, result](std::exception_ptr error) {
          asio::post(strand_, [this, id, result, error] {
            if (error) {
              spdlog::error("session {}: could not load what it missed: {}", id,
                            reason_of(error));
              auto it = sessions_.find(id);
              if (it != sessions_.end()) it->second.connection->abort("store failed");
              return;
            }
            finish_attach(id, *result);
          });
        });
  });
}

void Hub::finish_attach(std::uint64_t session_id, const AttachResult& result) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;  // gone already; what it missed stays queued
  LiveSession& session = it->second;
  for (const auto& p : result.pending) {
    const Priority priority =
        p.kind == outbox::Kind::sighting ? Priority::normal : Priority::alert;
    session.connection->send(encode_with_seq(p.body, p.seq), priority);
    if (p.kind == outbox::Kind::panic) {
      tracker_.note_recipients(p.ref, {session.identity.id});
      auto live = live_.find(p.ref);
      if (live != live_.end()) live->second.queued.erase(session.identity.id);
    }
  }
  replayed_ += result.pending.size();
  if (!result.pending.empty()) {
    spdlog::info("session {}: replayed {} message(s) {} missed", session_id,
                 result.pending.size(), session.identity.id);
  }
  for (auto& [seq, frame] : session.held) session.connection->send(frame.first, frame.second);
  session.held.clear();
  session.held.shrink_to_fit();
  session.ready = true;
  if (session.hello.gallery) send_gallery_sync(session, result);
}

void Hub::send_gallery_sync(LiveSession& session, const AttachResult& result) {
  const auto& sync = result.sync;
  session.gallery_held.insert(result.held.begin(), result.held.end());
  v1::Envelope begin;
  begin.mutable_gallery_sync()->set_from_version(sync.from_version);
  begin.mutable_gallery_sync()->set_to_version(sync.to_version);
  begin.mutable_gallery_sync()->set_reset(sync.reset);
  session.connection->send(begin);
  std::vector<std::int64_t> sent;
  for (const auto& entry : sync.entries) {
    v1::Envelope e = gallery_entry_envelope(entry, 0);
    session.connection->send(e);
    sent.push_back(entry.notice_id);
    session.gallery_held.insert(entry.notice_id);
  }
  for (const auto& removal : sync.removals) {
    v1::Envelope e;
    e.mutable_gallery_remove()->set_notice_id(removal.notice_id);
    e.mutable_gallery_remove()->set_reason(removal.reason);
    session.connection->send(e);
  }
  v1::Envelope done;
  done.mutable_gallery_sync()->set_from_version(sync.from_version);
  done.mutable_gallery_sync()->set_to_version(sync.to_version);
  done.mutable_gallery_sync()->set_reset(sync.reset);
  done.mutable_gallery_sync()->set_done(true);
  session.connection->send(done);
  gallery_entries_sent_ += sync.entries.size();
  gallery_removals_sent_ += sync.removals.size();
  session.gallery_synced = true;
  session.gallery_version = std::max(session.gallery_version, sync.to_version);
  record_gallery_sent(session.identity, sent, sync.reset ? "sync (full)" : "sync");
}

void Hub::record_gallery_sent(const Identity& device, const std::vector<std::int64_t>& sent,
                              const std::string& how) {
  if (sent.empty()) return;
  const std::int64_t now = now_ms();
  store_->submit(
      [device, sent, now, how](SQLite::Database& db) {
        gallery::record_sent(db, device.id, sent, now);
        // The gallery names people: what went to which handset is part of the access record.
        audit::append(db, {now, device.id, std::string(to_string(device.role)), "read",
                           "gallery", device.town,
                           how + ": " + std::to_string(sent.size()) + " entries sent"});
      },
      [id = device.id](std::exception_ptr error) {
        if (error) spdlog::error("could not record the gallery entries sent to {}", id);
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
          live_[stored.alert_id] = LiveAlert{relay_of(stored), {}};
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
  const Identity sender = tracked->sender;
  const std::function<bool(const Identity&)> targets = [&sender, escalated](const Identity& d) {
    return receives_panic(sender, d, escalated);
  };
  const auto recipients = relay(outbox::Kind::panic, alert_id, envelope, Priority::alert,
                                config_.alert_replay_ttl, targets, &live->second.queued);
  tracker_.note_recipients(alert_id, recipients);
}

std::vector<std::string> Hub::relay(outbox::Kind kind, const std::string& ref,
                                    v1::Envelope& envelope, Priority priority,
                                    std::chrono::milliseconds ttl,
                                    const std::function<bool(const Identity&)>& targets,
                                    std::set<std::string>* queued_offline) {
  if (envelope.msg_id() == 0) envelope.set_msg_id(next_msg_id());
  if (envelope.sent_at_ms() == 0) envelope.set_sent_at_ms(now_ms());
  outbox::Relay record;
  record.kind = kind;
  record.ref = ref;
  record.body = envelope.SerializeAsString();  // once, shared by every recipient
  record.created_at_ms = now_ms();
  record.expires_at_ms = record.created_at_ms + ttl.count();
  std::vector<std::pair<std::string, std::uint64_t>> numbered;
  std::vector<std::string> live;
  for (auto& [device_id, device] : devices_) {
    if (!targets(device.identity)) continue;
    if (revoked_.count(device.identity.serial_hex)) continue;
    auto range = sessions_by_device_.equal_range(device_id);
    const bool online = range.first != range.second;
    if (!online && queued_offline != nullptr && !queued_offline->insert(device_id).second) {
      continue;  // already waiting for it (an escalation round of an alert it will get)
    }
    const std::uint64_t seq = ++device.last_seq;
    numbered.emplace_back(device_id, seq);
    if (!online) continue;
    const Frame frame = encode_with_seq(record.body, seq);
    for (auto i = range.first; i != range.second; ++i) {
      auto s = sessions_.find(i->second);
      if (s == sessions_.end()) continue;
      if (s->second.ready) {
        s->second.connection->send(frame, priority);
      } else {
        s->second.held.push_back({seq, {frame, priority}});
      }
    }
    live.push_back(device_id);
  }
  if (!numbered.empty()) {
    store_->submit(
        [record = std::move(record), numbered = std::move(numbered)](SQLite::Database& db) {
          outbox::record(db, record, numbered);
        },
        [ref](std::exception_ptr error) {
          if (error) {
            spdlog::error("{}: could not record it for replay: {}", ref, reason_of(error));
          }
        });
  }
  return live;
}

void Hub::send_to_device(const std::string& device_id, const Frame& frame, Priority p) {
  auto range = sessions_by_device_.equal_range(device_id);
  for (auto i = range.first; i != range.second; ++i) {
    auto s = sessions_.find(i->second);
    if (s != sessions_.end()) s->second.connection->send(frame, p);
  }
}

void Hub::send_update(const std::string& device_id, v1::AlertUpdate update) {
  const bool delivered =
      update.event() == v1::RECIPIENT && update.recipient_status() == v1::DELIVERED;
  const auto* tracked = tracker_.find(update.alert_id());
  v1::Envelope envelope;
  *envelope.mutable_update() = std::move(update);
  const Frame frame = encode(envelope);
  send_to_device(device_id, frame, Priority::control);
  // Alert boards (the console, capability "board") follow every alert they may see.
  if (delivered || tracked == nullptr) return;
  const bool widened = tracked->escalation_round > 0;
  for (const auto& [id, session] : sessions_) {
    if (!session.hello.board || session.identity.id == device_id) continue;
    if (!receives_panic(tracked->sender, session.identity, false) &&
        !(widened && receives_panic(tracked->sender, session.identity, true))) {
      continue;
    }
    session.connection->send(frame, Priority::control);
  }
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
            v1::Envelope cancel_relay;
            cancel_relay.mutable_cancel()->set_alert_id(alert_id);
            cancel_relay.mutable_cancel()->set_reason(reason);
            cancel_relay.mutable_cancel()->set_origin_id(from.identity.id);
            // Everyone the alert could have reached (any round so far), on air or not: the
            // ones off air get the cancel right after the alert when they come back.
            const Identity sender = tracked->sender;
            const bool widened = tracked->escalation_round > 0;
            const std::function<bool(const Identity&)> targets =
                [&sender, widened](const Identity& d) {
                  return receives_panic(sender, d, false) ||
                         (widened && receives_panic(sender, d, true));
                };
            relay(outbox::Kind::cancel, alert_id, cancel_relay, Priority::alert,
                  config_.alert_replay_ttl, targets);
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
          v1::Envelope sighting_relay;
          *sighting_relay.mutable_sighting() = relay_of(stored);
          const bool breach = stored.possible_breach;
          const std::function<bool(const Identity&)> targets = [&sender, breach](
                                                                   const Identity& d) {
            return receives_sighting(sender, d, breach);
          };
          const auto reached = relay(outbox::Kind::sighting, stored.sighting_id, sighting_relay,
                                     Priority::normal, config_.sighting_replay_ttl, targets);
          const auto recipients = static_cast<std::uint32_t>(reached.size());
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

void Hub::run_query(const Identity& who, const std::string& op, const std::string& args_json,
                    std::function<void(QueryOutcome)> done) {
  queries::Context context;
  context.actor = who;
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
  auto gallery_version = std::make_shared<std::uint64_t>(0);
  store_->submit(
      [op, args_json, context, answer, refusal, gallery_version](SQLite::Database& db) {
        try {
          *answer = queries::run(db, op, args_json, context);
        } catch (const queries::QueryError& e) {
          // A refusal is an answer, not a failed job: whatever the op wrote (its audit row of
          // a refused read, say) still commits.
          *refusal = e;
        }
        // A notice transition, a profile edit or a purge may have changed the gallery.
        *gallery_version = gallery::current_version(db);
      },
      [this, who, op, answer, refusal, gallery_version,
       done = std::move(done)](std::exception_ptr error) {
        ++queries_;
        QueryOutcome outcome;
        if (error) {
          spdlog::error("query {} from {}: {}", op, who.id, reason_of(error));
          outcome.error = v1::STORE_FAILED;
          outcome.message = "the store failed: " + reason_of(error);
        } else if (*refusal) {
          ++refusals_;
          spdlog::info("query {} from {} refused: {}", op, who.id, (*refusal)->what());
          outcome.error = (*refusal)->code;
          outcome.message = (*refusal)->what();
        } else {
          asio::post(strand_, [this, v = *gallery_version] { gallery_seen(v); });
          outcome.json = std::move(answer->json);
          delete_blob_files(answer->delete_blobs);
        }
        done(std::move(outcome));
      });
}

void Hub::on_query(const SessionRef& from, std::uint64_t msg_id, const v1::Query& query) {
  std::function<void(QueryOutcome)> reply_to_device = [from, msg_id](QueryOutcome outcome) {
    v1::Envelope reply;
    if (outcome.error) {
      reply = make_error(msg_id, *outcome.error, outcome.message);
    } else if (outcome.json.size() + 1024 > kMaxResultFrameBytes) {
      reply = make_error(msg_id, v1::INVALID,
                         "the answer is too large (" + std::to_string(outcome.json.size()) +
                             " bytes); narrow the query (limit, since, town)");
    } else {
      reply.mutable_query_result()->set_in_reply_to(msg_id);
      reply.mutable_query_result()->set_result_json(std::move(outcome.json));
    }
    from.connection->send(reply);
  };
  run_query(from.identity, query.op(), query.args_json(), std::move(reply_to_device));
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
  auto gallery_version = std::make_shared<std::uint64_t>(0);
  store_->submit(
      [now, notice_options, retention, purge_due, deleted, gallery_version](SQLite::Database& db) {
        // Store-and-forward messages past their time to live.
        if (const auto n = outbox::prune(db, now); n > 0) {
          spdlog::info("{} relayed message(s) expired unreplayed", n);
        }
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
        *gallery_version = gallery::current_version(db);
      },
      [this, deleted, gallery_version](std::exception_ptr error) {
        if (error) {
          spdlog::error("maintenance failed: {}", reason_of(error));
          return;
        }
        asio::post(strand_, [this, v = *gallery_version] { gallery_seen(v); });
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

// ---------------------------------------------------------------------------------------------
// The gallery on handsets: live changes and deletion confirmations.

struct Hub::GalleryPush {
  std::vector<gallery::Change> changes;
};

void Hub::gallery_seen(std::uint64_t version) {
  if (version <= gallery_known_) return;
  gallery_known_ = version;
  push_gallery();
}

void Hub::push_gallery() {
  if (gallery_pushing_ || gallery_known_ <= gallery_pushed_ || stopped_) return;
  gallery_pushing_ = true;
  const std::uint64_t from = gallery_pushed_;
  auto push = std::make_shared<GalleryPush>();
  store_->submit(
      [from, push](SQLite::Database& db) { push->changes = gallery::changes_since(db, from); },
      [this, push](std::exception_ptr error) {
        asio::post(strand_, [this, push, error] {
          gallery_pushing_ = false;
          if (error) {
            spdlog::error("could not read the gallery's changes: {}", reason_of(error));
            return;  // the next change (or maintenance run) tries again
          }
          apply_gallery_push(*push);
          push_gallery();
        });
      });
}

void Hub::apply_gallery_push(const GalleryPush& push) {
  // Which handsets were sent which entries: one store job for the whole push.
  std::map<std::string, std::pair<Identity, std::vector<std::int64_t>>> sent;
  for (const auto& change : push.changes) {
    std::optional<Frame> entry_frame;
    std::optional<Frame> remove_frame;
    for (auto& [id, session] : sessions_) {
      if (!session.gallery_synced || session.gallery_version >= change.version) continue;
      session.gallery_version = change.version;
      if (change.entry && gallery::covers(change.entry->towns, session.identity)) {
        if (!entry_frame) {
          v1::Envelope e = gallery_entry_envelope(*change.entry, change.version);
          entry_frame = encode(e);
        }
        session.connection->send(*entry_frame, Priority::normal);
        session.gallery_held.insert(change.notice_id);
        ++gallery_entries_sent_;
        auto& record = sent[session.identity.id];
        record.first = session.identity;
        record.second.push_back(change.notice_id);
      } else if (session.gallery_held.erase(change.notice_id) > 0) {
        if (!remove_frame) {
          v1::Envelope e;
          e.mutable_gallery_remove()->set_notice_id(change.notice_id);
          e.mutable_gallery_remove()->set_reason(change.entry ? "withdrawn" : change.reason);
          e.mutable_gallery_remove()->set_version(change.version);
          remove_frame = encode(e);
        }
        session.connection->send(*remove_frame, Priority::normal);
        ++gallery_removals_sent_;
      }
    }
    gallery_pushed_ = std::max(gallery_pushed_, change.version);
    if (change.entry) {
      spdlog::info("gallery v{}: notice {} added or changed", change.version, change.notice_id);
    } else {
      spdlog::info("gallery v{}: notice {} removed ({})", change.version, change.notice_id,
                   change.reason);
    }
  }
  if (sent.empty()) return;
  const std::int64_t now = now_ms();
  store_->submit(
      [sent = std::move(sent), now](SQLite::Database& db) {
        for (const auto& [id, record] : sent) {
          const auto& [device, notices] = record;
          gallery::record_sent(db, device.id, notices, now);
          audit::append(db, {now, device.id, std::string(to_string(device.role)), "read",
                             "gallery", device.town,
                             "live change: " + std::to_string(notices.size()) + " entries sent"});
        }
      },
      [](std::exception_ptr error) {
        if (error) spdlog::error("could not record the gallery entries sent: {}", reason_of(error));
      });
}

void Hub::on_gallery_removed(const SessionRef& from, std::uint64_t msg_id,
                             std::int64_t notice_id) {
  const std::int64_t now = now_ms();
  auto known = std::make_shared<bool>(false);
  const std::string device = from.identity.id;
  store_->submit(
      [device, notice_id, now, known](SQLite::Database& db) {
        *known = gallery::confirm_removed(db, device, notice_id, now);
      },
      [this, from, msg_id, notice_id, known](std::exception_ptr error) {
        v1::Envelope reply;
        if (error) {
          reply = make_error(msg_id, v1::STORE_FAILED, "could not record the deletion; retry");
        } else if (!*known) {
          ++refusals_;
          reply = make_error(msg_id, v1::INVALID,
                             "notice_id: no notice " + std::to_string(notice_id));
        } else {
          spdlog::info("gallery: {} confirmed deleting notice {}", from.identity.id, notice_id);
          reply.mutable_receipt()->set_in_reply_to(msg_id);
        }
        from.connection->send(reply);
      });
}

void Hub::on_photo_request(const SessionRef& from, std::uint64_t msg_id,
                           const v1::PhotoRequest& request) {
  const std::string sha = request.sha256();
  const std::uint64_t offset = request.offset();
  const std::uint64_t window =
      request.max_bytes() == 0 || request.max_bytes() > kPhotoWindowBytes ? kPhotoWindowBytes
                                                                         : request.max_bytes();
  const Identity who = from.identity;
  const std::int64_t now = now_ms();
  const std::int64_t sighting_ttl = config_.sighting_replay_ttl.count();
  auto grant = std::make_shared<std::optional<gallery::PhotoGrant>>();
  auto refusal = std::make_shared<gallery::PhotoRefusal>(gallery::PhotoRefusal::none);
  store_->submit(
      [who, sha, offset, now, sighting_ttl, grant, refusal](SQLite::Database& db) {
        *grant = gallery::photo_grant(db, who, sha, now, sighting_ttl, refusal.get());
        if (*grant && offset == 0) {
          audit::append(db, {now, who.id, std::string(to_string(who.role)), "read", "photo",
                             sha, "download"});
        }
      },
      [this, from, msg_id, sha, offset, window, grant, refusal](std::exception_ptr error) {
        auto refuse = [&](v1::ErrorCode code, const std::string& why) {
          ++refusals_;
          v1::Envelope reply = make_error(msg_id, code, why);
          from.connection->send(reply);
        };
        if (error) {
          v1::Envelope reply = make_error(msg_id, v1::STORE_FAILED, "the store failed; retry");
          from.connection->send(reply);
          return;
        }
        if (*refusal == gallery::PhotoRefusal::unknown) return refuse(v1::INVALID, "no image " + sha);
        if (!*grant) return refuse(v1::NOT_ALLOWED, "you may not download image " + sha);
        const gallery::PhotoGrant g = **grant;
        if (offset >= g.size) {
          return refuse(v1::INVALID, "offset: " + std::to_string(offset) +
                                         " is not below the image's " + std::to_string(g.size) +
                                         " bytes");
        }
        // Read on the blob pool, never on the store thread or a network thread.
        asio::post(blob_pool_, [this, from, msg_id, sha, offset, window, g] {
          const auto path = blob_root() / sha.substr(0, 2) / sha;
          std::ifstream in(path, std::ios::binary);
          const std::uint64_t end = std::min<std::uint64_t>(g.size, offset + window);
          std::string piece;
          if (in) in.seekg(static_cast<std::streamoff>(offset));
          for (std::uint64_t at = offset; in && at < end;) {
            const std::uint64_t n = std::min<std::uint64_t>(kPhotoChunkBytes, end - at);
            piece.resize(n);
            in.read(piece.data(), static_cast<std::streamsize>(n));
            if (static_cast<std::uint64_t>(in.gcount()) != n) break;
            v1::Envelope chunk;
            auto* c = chunk.mutable_photo_chunk();
            c->set_sha256(sha);
            c->set_offset(at);
            c->set_total_size(g.size);
            c->set_mime(g.mime);
            c->set_data(piece);
            from.connection->send(chunk);
            photo_bytes_sent_ += n;
            at += n;
            if (at == end) return;
          }
          spdlog::error("image {} is recorded but its file is missing or short", sha);
          v1::Envelope reply =
              make_error(msg_id, v1::STORE_FAILED, "image " + sha + " cannot be read");
          from.connection->send(reply);
        });
      });
}

}  // namespace saferlink::server
