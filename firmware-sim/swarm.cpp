#include "firmware-sim/swarm.hpp"

#include "firmware-sim/describe.hpp"
#include "core/envelope.hpp"

#include <boost/asio/post.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <random>

namespace saferlink::sim {

namespace asio = boost::asio;

namespace {

std::int64_t rss_kb() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0;
  long pages_resident = 0;
  if (!(statm >> pages_total >> pages_resident)) return 0;
  return static_cast<std::int64_t>(pages_resident) * sysconf(_SC_PAGESIZE) / 1024;
}

std::int64_t steady_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string number4(int n) {
  std::string s = std::to_string(n);
  return s.size() >= 4 ? s : std::string(4 - s.size(), '0') + s;
}

constexpr std::int64_t kCancelWindowMs = 30'000;  // HandsetConfig::cancel_window_ms

const char* kSightingTexts[] = {
    "male, grey hoodie, heading towards the station",
    "two youths on bikes by the fountain",
    "woman with a large empty bag, walking to the car park",
    "man in a black cap, known to staff, going into the precinct",
};

}  // namespace

Swarm::Swarm(SwarmOptions options, Scenario scenario)
    : options_(std::move(options)),
      scenario_(std::move(scenario)),
      jobs_timer_(io_),
      check_timer_(io_) {
  if (options_.duration_s) scenario_.duration_s = *options_.duration_s;
  report_.scenario = scenario_.name;
  env_ = std::make_unique<LinkEnv>(
      make_link_env(io_.get_executor(), options_.hub, options_.certs / "ca.crt"));
  Issuer issuer(options_.certs);
  // After the one-off set-up (TLS library, CA): what follows is per handset.
  report_.rss_before_kb = rss_kb();
  if (options_.log_dir) {
    std::error_code ec;
    std::filesystem::create_directories(*options_.log_dir, ec);
    if (ec) {
      throw std::runtime_error("cannot create " + options_.log_dir->string() + ": " + ec.message());
    }
  }

  const std::int64_t seq_base = now_ms();
  std::map<std::string, int> numbering;  // "town-role" -> last number
  std::set<std::string> used;
  for (const Group& group : scenario_.groups) {
    std::vector<std::string> ids = group.ids;
    const bool named = !ids.empty();
    if (!named) {
      const std::string key = group.town + "-" + std::string(to_string(group.role));
      for (int i = 0; i < group.count; ++i) {
        ids.push_back(scenario_.id_prefix + "-" + key + "-" + number4(++numbering[key]));
      }
    }
    for (const std::string& id : ids) {
      if (!used.insert(id).second) {
        throw std::runtime_error("handset id " + id + " appears twice in the scenario");
      }
      Role role = group.role;
      Credentials credentials;
      if (named) {
        credentials = issuer.named(group.role, group.town, id, group.member);
        std::string why;
        // The hub goes by the certificate: so does the simulation.
        if (auto identity = identity_from_cert(credentials.cert.get(), &why)) role = identity->role;
      } else {
        credentials = issuer.issue_in_memory(group.role, group.town, id, group.member);
      }
      HandsetConfig config;
      config.id = id;
      config.role = role;
      config.hold_ms = static_cast<std::int64_t>(group.hold_s * 1000);
      config.ack_after_ms =
          group.ack_after_s < 0 ? -1 : static_cast<std::int64_t>(group.ack_after_s * 1000);
      config.panic_status = group.panic_status;
      config.gallery = group.gallery.value_or(role == Role::shop);
      // Photos are counted and hashed, not kept: ten thousand handsets share one process.
      config.keep_photo_bytes = false;
      if (config.gallery) ++report_.gallery_handsets;
      config.seed = scenario_.seed * 1'000'003 + devices_.size() + 1;
      // A fresh flash numbers its panics from the clock, so that a new run's alert ids are not
      // taken for retries of an earlier run's (the hub would answer duplicate, not relay).
      Flash flash;
      flash.next_device_seq = static_cast<std::uint64_t>(seq_base);
      auto device = std::make_shared<Device>(*env_, std::move(credentials), config, flash,
                                             group.link, this, devices_.size());
      devices_.push_back(std::move(device));
      group_of_.push_back(&group);
    }
  }
  report_.handsets = static_cast<int>(devices_.size());
  link_flags_.assign(devices_.size(), 0);
}

Swarm::~Swarm() {
  for (auto& device : devices_) device->shutdown();
}

void Swarm::schedule() {
  std::mt19937_64 rng(scenario_.seed);
  const auto ramp_ms = static_cast<std::int64_t>(scenario_.ramp_s * 1000);
  end_ms_ = std::max<std::int64_t>(static_cast<std::int64_t>(scenario_.duration_s * 1000), ramp_ms);
  deadline_ms_ = end_ms_ + static_cast<std::int64_t>(scenario_.drain_s * 1000);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto uniform = [&](double lo, double hi) { return lo + (hi - lo) * unit(rng); };
  // Poisson arrivals of `per_hour` between ramp and end.
  auto poisson = [&](std::size_t device, double per_hour, Job job, double min_s, double max_s) {
    if (per_hour <= 0) return;
    std::exponential_distribution<double> gap(per_hour / 3'600'000.0);
    for (double t = static_cast<double>(ramp_ms) + gap(rng); t < static_cast<double>(end_ms_);
         t += gap(rng)) {
      const auto arg = static_cast<std::int64_t>(uniform(min_s, max_s) * 1000);
      jobs_.push(Scheduled{static_cast<std::int64_t>(t), device, job, arg});
    }
  };
  for (std::size_t d = 0; d < devices_.size(); ++d) {
    const Group& g = *group_of_[d];
    jobs_.push(Scheduled{static_cast<std::int64_t>(uniform(0, static_cast<double>(ramp_ms))), d,
                         Job::power_on});
    if (g.panics_per_hour > 0) {
      // A second long press within the cancel window is a cancel: panics of one handset are
      // spaced further apart than that; cancels are scheduled as such (cancel_percent).
      std::exponential_distribution<double> gap(g.panics_per_hour / 3'600'000.0);
      const double window = static_cast<double>(kCancelWindowMs) + 1000;
      for (double t = static_cast<double>(ramp_ms) + gap(rng); t < static_cast<double>(end_ms_);
           t += std::max(gap(rng), window)) {
        jobs_.push(Scheduled{static_cast<std::int64_t>(t), d, Job::press});
        if (g.cancel_percent > 0 && unit(rng) * 100 < g.cancel_percent) {
          const double after = g.hold_s * 1000 + uniform(2000, 20'000);
          jobs_.push(Scheduled{static_cast<std::int64_t>(t + after), d, Job::press});
          t += after;
        }
      }
    }
    poisson(d, g.sightings_per_hour, Job::sighting, 0, 0);
    poisson(d, g.link.dropouts_per_hour, Job::dropout, g.link.dropout_min_s, g.link.dropout_max_s);
    poisson(d, g.link.stalls_per_hour, Job::stall, g.link.stall_min_s, g.link.stall_max_s);
    if (g.link.dropout_percent > 0 && unit(rng) * 100 < g.link.dropout_percent) {
      const auto at = static_cast<std::int64_t>(
          uniform(static_cast<double>(ramp_ms), static_cast<double>(end_ms_)));
      const auto arg =
          static_cast<std::int64_t>(uniform(g.link.dropout_min_s, g.link.dropout_max_s) * 1000);
      jobs_.push(Scheduled{at, d, Job::dropout, arg});
    }
  }
}

Report Swarm::run() {
  schedule();
  start_ = std::chrono::steady_clock::now();
  pump();
  check(false);
  io_.run();
  return report_;
}

void Swarm::request_stop() {
  asio::post(io_, [this] {
    if (!done_) finish();
  });
}

void Swarm::pump() {
  if (done_) return;
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - start_)
                           .count();
  std::size_t sightings = 0;
  while (!jobs_.empty() && jobs_.top().at_ms <= elapsed) {
    const Scheduled job = jobs_.top();
    jobs_.pop();
    Device& device = *devices_[job.device];
    switch (job.job) {
      case Job::power_on:
        device.power_on();
        break;
      case Job::press:
        device.press();
        break;
      case Job::sighting:
        device.sighting(kSightingTexts[(job.device + sightings++) % std::size(kSightingTexts)]);
        break;
      case Job::dropout:
        ++report_.dropouts;
        device.dropout(job.arg);
        break;
      case Job::stall:
        ++report_.stalls;
        device.stall(job.arg);
        break;
    }
  }
  if (jobs_.empty()) return;
  jobs_timer_.expires_at(start_ + std::chrono::milliseconds(jobs_.top().at_ms));
  jobs_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) pump();
  });
}

bool Swarm::drained() const {
  for (const auto& device : devices_) {
    for (const PendingItem& item : device->handset().flash().pending) {
      if (item.kind == PendingItem::Kind::panic) return false;
    }
  }
  for (const auto& [id, trace] : alerts_) {
    if (trace.failed || trace.cancelled) continue;
    if (!trace.accepted) return false;
    std::set<std::string> evidence = trace.confirmed_by;
    for (const auto& [by, n] : trace.received_by) evidence.insert(by);
    if (evidence.size() < trace.recipients) return false;
  }
  return true;
}

void Swarm::check(bool /*ending*/) {
  if (done_) return;
  report_.rss_peak_kb = std::max(report_.rss_peak_kb, rss_kb());
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - start_)
                           .count();
  if (!options_.quiet && elapsed / 1000 != (elapsed - 250) / 1000) {
    std::cerr << "saferlink-sim: " << elapsed / 1000 << " s, " << online_ << "/" << devices_.size()
              << " on air, " << report_.sent << " panics sent, " << report_.accepted
              << " accepted\n";
  }
  if (elapsed >= end_ms_ && (elapsed >= deadline_ms_ || drained())) {
    finish();
    return;
  }
  check_timer_.expires_after(std::chrono::milliseconds(250));
  check_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) check(false);
  });
}

void Swarm::finish() {
  done_ = true;
  Report& r = report_;
  r.run_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  for (const auto& [id, trace] : alerts_) {
    if (trace.cancelled) ++r.cancelled;
    if (trace.failed || trace.cancelled) continue;
    if (!trace.accepted) {
      ++r.lost_unaccepted;
      continue;
    }
    r.relayed_received += trace.received_by.size();
    std::set<std::string> evidence = trace.confirmed_by;
    for (const auto& [by, n] : trace.received_by) evidence.insert(by);
    r.relayed_expected += trace.recipients;
    if (evidence.size() < trace.recipients) r.lost_in_relay += trace.recipients - evidence.size();
  }
  r.lost = r.lost_unaccepted + r.lost_in_relay;
  for (const auto& device : devices_) {
    const Handset& h = device->handset();
    r.gallery_entries += h.gallery().size();
    r.gallery_removals_confirmed += h.gallery_removals_confirmed();
    r.photo_bytes += h.photo_bytes_received();
    r.photo_hash_failures += h.photo_hash_failures();
  }
  if (first_online_ > 0) {
    const double span_s =
        static_cast<double>(first_online_last_us_ -
                            std::chrono::duration_cast<std::chrono::microseconds>(
                                start_.time_since_epoch())
                                .count()) /
        1e6;
    r.handshakes_per_s = span_s > 0 ? static_cast<double>(first_online_) / span_s : 0;
  }
  for (const auto& [second, n] : handshakes_per_second_) {
    r.handshakes_per_s_peak = std::max(r.handshakes_per_s_peak, static_cast<double>(n));
  }
  if (r.handsets > 0) {
    r.bytes_per_handset =
        static_cast<double>(std::max<std::int64_t>(r.rss_peak_kb - r.rss_before_kb, 0)) * 1024.0 /
        r.handsets;
  }
  jobs_timer_.cancel();
  check_timer_.cancel();
  for (auto& device : devices_) device->shutdown();
  io_.stop();
}

void Swarm::log_event(Device& device, const Action& event) {
  if (!options_.log_dir) return;
  std::string line;
  switch (event.event) {
    case Action::Event::received_panic:
    case Action::Event::received_cancel:
    case Action::Event::received_sighting:
    case Action::Event::panic_update:
      line = describe(event.message);
      break;
    case Action::Event::received_duplicate:
      line = "duplicate (not raised again): " + describe(event.message);
      break;
    case Action::Event::panic_raised:
      line = "panic raised: " + event.id;
      break;
    case Action::Event::link_online:
      line = "on air";
      break;
    case Action::Event::gallery_entry:
      line = (event.flag ? "gallery: added " : "gallery: changed ") + describe(event.message);
      break;
    case Action::Event::gallery_removed:
      line = "gallery: deleted notice " + event.id + " (" + event.text + ")";
      break;
    case Action::Event::gallery_remove_confirmed:
      line = "gallery: the hub recorded the deletion of notice " + event.id;
      break;
    case Action::Event::photo_complete:
      line = "gallery: photo " + event.id.substr(0, 12) + " verified (" +
             std::to_string(event.count) + " bytes)";
      break;
    case Action::Event::photo_failed:
      line = "gallery: photo " + event.id.substr(0, 12) + " failed: " + event.text;
      break;
    case Action::Event::link_lost:
      line = "off air: " + event.text;
      break;
    default:
      return;
  }
  std::ofstream out(*options_.log_dir / (device.id() + ".log"), std::ios::app);
  out << line << "\n";
}

void Swarm::on_event(Device& device, const Action& event) {
  log_event(device, event);
  const std::int64_t now_us = steady_us();
  Report& r = report_;
  switch (event.event) {
    case Action::Event::panic_raised: {
      ++r.sent;
      AlertTrace& trace = alerts_[event.id];
      trace.sender = device.id();
      trace.pressed_us = now_us;
      break;
    }
    case Action::Event::panic_accepted: {
      auto it = alerts_.find(event.id);
      if (it == alerts_.end() || it->second.accepted) break;
      it->second.accepted = true;
      it->second.recipients = event.count;
      ++r.accepted;
      if (event.flag) ++r.accepted_as_duplicate;
      r.accept_latency_us.record(now_us - it->second.pressed_us);
      break;
    }
    case Action::Event::panic_delivered_all: {
      auto it = alerts_.find(event.id);
      if (it != alerts_.end()) r.delivered_latency_us.record(now_us - it->second.pressed_us);
      break;
    }
    case Action::Event::panic_update: {
      auto it = alerts_.find(event.id);
      const auto& update = event.message.update();
      if (it != alerts_.end() && update.event() == v1::RECIPIENT &&
          update.recipient_status() == v1::DELIVERED && update.escalation_round() == 0) {
        it->second.confirmed_by.insert(update.by_id());
      }
      break;
    }
    case Action::Event::panic_failed: {
      ++r.failed;
      if (auto it = alerts_.find(event.id); it != alerts_.end()) it->second.failed = true;
      break;
    }
    case Action::Event::panic_cancelled:
      if (auto it = alerts_.find(event.id); it != alerts_.end()) it->second.cancelled = true;
      break;
    case Action::Event::received_panic: {
      auto it = alerts_.find(event.id);
      if (it != alerts_.end() && event.count == 0) ++it->second.received_by[device.id()];
      break;
    }
    case Action::Event::received_duplicate:
      ++r.duplicates;
      break;
    case Action::Event::received_sighting:
      ++r.sightings_received;
      break;
    case Action::Event::sighting_raised:
      ++r.sightings_sent;
      break;
    case Action::Event::sighting_accepted:
      ++r.sightings_accepted;
      break;
    case Action::Event::acknowledged_sent:
      ++r.acknowledged;
      break;
    case Action::Event::link_online: {
      ++r.connections;
      ++online_;
      const bool first = (link_flags_[device.index()] & kEverOnline) == 0;
      link_flags_[device.index()] |= kEverOnline | kOnline;
      if (first) {
        ++first_online_;
        first_online_last_us_ = now_us;
        const auto second = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::steady_clock::now() - start_)
                                .count();
        ++handshakes_per_second_[second];
        if (first_online_ == devices_.size()) {
          r.all_online_s =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        }
      } else {
        ++r.reconnects;
      }
      if (in_outage_ && online_ >= outage_target_) {
        in_outage_ = false;
        r.outage_recovery_s =
            std::max(r.outage_recovery_s, static_cast<double>(now_us - outage_start_us_) / 1e6);
      }
      break;
    }
    case Action::Event::link_lost: {
      const bool was_online = (link_flags_[device.index()] & kOnline) != 0;
      link_flags_[device.index()] &= static_cast<std::uint8_t>(~kOnline);
      if (!was_online) {
        ++r.dial_failures;
        break;
      }
      --online_;
      recent_drops_us_.push_back(now_us);
      while (!recent_drops_us_.empty() && now_us - recent_drops_us_.front() > 1'000'000) {
        recent_drops_us_.pop_front();
      }
      const std::size_t threshold = std::max<std::size_t>(2, devices_.size() / 4);
      if (!in_outage_ && recent_drops_us_.size() >= threshold) {
        in_outage_ = true;
        ++r.outages;
        outage_target_ = online_ + recent_drops_us_.size();
        outage_start_us_ = recent_drops_us_.front();
      }
      break;
    }
    case Action::Event::gallery_synced:
      if ((link_flags_[device.index()] & kGallerySynced) == 0) {
        link_flags_[device.index()] |= kGallerySynced;
        ++r.gallery_synced;
      }
      break;
    case Action::Event::gallery_removed:
      ++r.gallery_removals;
      break;
    case Action::Event::photo_complete:
      ++r.photos_complete;
      break;
    case Action::Event::low_battery:
      ++r.low_battery;
      break;
    case Action::Event::hub_error:
      ++r.hub_errors;
      break;
    default:
      break;
  }
  if (options_.observer) options_.observer(device, event);
}

}  // namespace saferlink::sim
