// Swarm: many simulated handsets (firmware-sim/device.hpp) in one process, on one io_context
// thread (no thread per handset), driven by a scenario (firmware-sim/scenario.hpp):
//   - certificates issued on the fly from the CA directory (firmware-sim/issuer.hpp);
//   - handsets power on spread over ramp_s; panics, sightings, drop-outs and stalls arrive as
//     Poisson processes decided in advance (open loop: a slow hub does not slow the presses,
//     so it cannot hide its latency);
//   - after duration_s no more presses; the run drains (every queued panic accepted, every
//     delivery the hub counted confirmed) for at most drain_s, then reports.
//
// Accounting (Report): `sent` panics raised; `lost` = raised and never accepted, plus
// deliveries the hub counted in AlertAccepted.recipients that neither a swarm handset received
// nor the sender saw confirmed; `duplicates` = relayed messages a handset had already
// processed (by Envelope.seq, or by alert id and round while the hub sends seq 0).
//
// Thread contract: build and run on one thread; run() blocks until the report is ready.
#pragma once

#include "firmware-sim/device.hpp"
#include "firmware-sim/report.hpp"
#include "firmware-sim/scenario.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <vector>

namespace saferlink::sim {

struct SwarmOptions {
  std::string hub = "127.0.0.1:7443";
  std::filesystem::path certs;            // CA directory (ca.crt, ca.key, issued/)
  std::optional<double> duration_s;       // overrides the scenario's
  std::optional<std::filesystem::path> log_dir;  // each handset's received events, DIR/ID.log
  bool quiet = true;                      // no progress lines on stderr
  // Told about every handset event after the swarm counted it, on the swarm's thread (tests
  // use it to act on the hub at the right moment).
  std::function<void(const Device&, const Action&)> observer;
};

class Swarm : public DeviceObserver {
 public:
  // Resolves the hub, issues certificates and makes the devices. Throws std::runtime_error
  // (IssueError, ScenarioError) with a one-line reason.
  Swarm(SwarmOptions options, Scenario scenario);
  ~Swarm() override;

  // Runs the scenario to the end and returns the report.
  Report run();
  // Ends the run now, as if the drain were over. Any thread may call it.
  void request_stop();

  // What happened to one of the swarm's own panics (for tests).
  struct AlertTrace {
    std::string sender;
    std::int64_t pressed_us = 0;       // steady clock
    bool accepted = false;
    bool failed = false;
    bool cancelled = false;
    std::uint32_t recipients = 0;
    std::map<std::string, int> received_by;  // round-0 receipts per swarm handset id (new ones)
    std::set<std::string> confirmed_by;      // round-0 DELIVERED updates the sender saw
  };
  const std::map<std::string, AlertTrace>& alerts() const { return alerts_; }
  const std::vector<std::shared_ptr<Device>>& devices() const { return devices_; }

  void on_event(Device& device, const Action& event) override;

 private:
  enum class Job { power_on, press, sighting, dropout, stall };
  struct Scheduled {
    std::int64_t at_ms;  // offset from the start
    std::size_t device;
    Job job;
    std::int64_t arg = 0;  // duration for dropout/stall
    bool operator>(const Scheduled& o) const { return at_ms > o.at_ms; }
  };

  void schedule();
  void pump();
  void check(bool ending);
  void finish();
  void log_event(Device& device, const Action& event);
  bool drained() const;

  SwarmOptions options_;
  Scenario scenario_;
  boost::asio::io_context io_;
  std::unique_ptr<LinkEnv> env_;
  std::vector<std::shared_ptr<Device>> devices_;
  std::vector<const Group*> group_of_;
  static constexpr std::uint8_t kEverOnline = 1;
  static constexpr std::uint8_t kOnline = 2;
  static constexpr std::uint8_t kGallerySynced = 4;
  std::vector<std::uint8_t> link_flags_;  // per device
  std::priority_queue<Scheduled, std::vector<Scheduled>, std::greater<>> jobs_;
  boost::asio::steady_timer jobs_timer_;
  boost::asio::steady_timer check_timer_;
  std::chrono::steady_clock::time_point start_;
  std::int64_t end_ms_ = 0;      // offset when presses stop
  std::int64_t deadline_ms_ = 0; // offset when the drain gives up
  bool done_ = false;

  Report report_;
  std::map<std::string, AlertTrace> alerts_;
  std::size_t online_ = 0;
  std::size_t first_online_ = 0;
  std::int64_t first_online_last_us_ = 0;
  std::map<std::int64_t, std::uint64_t> handshakes_per_second_;
  std::deque<std::int64_t> recent_drops_us_;
  bool in_outage_ = false;
  std::size_t outage_target_ = 0;
  std::int64_t outage_start_us_ = 0;
};

}  // namespace saferlink::sim
