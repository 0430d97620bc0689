// Scenario: what a swarm run simulates, read from a TOML file (firmware-sim/scenarios/ has
// examples; docs/handset.md lists every key). Groups of handsets per town and role, their
// panic and sighting rates (open loop: Poisson arrivals decided in advance, whatever the hub
// does), their link impairments (latency, jitter, drop-outs, stalls), the run's duration.
//
// parse_scenario is a plain function of the file's text: every unknown key, wrong type or
// value out of range is refused with one line naming the key. No I/O besides load_scenario.
#pragma once

#include "core/identity.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace saferlink::sim {

struct ScenarioError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Impairment of one handset's link, applied between the handset logic and its TLS connection.
struct LinkProfile {
  double latency_ms = 0;        // added to every frame, both ways
  double jitter_ms = 0;         // plus uniform 0..jitter (order is kept)
  double dropouts_per_hour = 0; // link cut (and no coverage) at random, Poisson
  double dropout_percent = 0;   // or: this share of handsets loses the link once during the run
  double dropout_min_s = 1;     // how long a drop-out lasts (uniform)
  double dropout_max_s = 10;
  double stalls_per_hour = 0;   // stops reading from the hub (the hub sees a stalled peer)
  double stall_min_s = 1;
  double stall_max_s = 10;
};

struct Group {
  std::string town;                 // a town id, or "all" (police, CCTV, coordinators)
  Role role = Role::shop;
  std::vector<std::string> ids;     // named handsets (certificates in the CA directory)
  int count = 0;                    // or this many generated ones
  std::string member;               // member organisation on generated certificates
  double panics_per_hour = 0;       // per handset (shops only); one handset's panics are at
                                    // least the cancel window (30 s) apart
  double cancel_percent = 0;        // share of panics cancelled as false alarms (a second long
                                    // press 2..20 s later)
  double sightings_per_hour = 0;    // per handset (not coordinators)
  double ack_after_s = -1;          // CCTV and police: acknowledge after this (< 0: never)
  double hold_s = 1.5;              // panic button hold
  int panic_status = 2;             // v1::AlertStatusKind: 1 actual, 2 exercise, 3 test
  std::optional<bool> gallery;      // hold the exclusion gallery (parsed: set; default true
                                    // for shops, false for other roles)
  LinkProfile link;
};

struct Scenario {
  std::string name;
  std::string description;
  double duration_s = 60;    // presses happen in [ramp_s, duration_s)
  double ramp_s = 5;         // handsets power on spread over this time
  double drain_s = 10;       // after duration: wait at most this long for answers
  std::uint64_t seed = 1;
  std::string id_prefix = "sim";
  std::vector<Group> groups; // one per town (a group with `towns` is expanded)

  int handsets() const;
};

// Parses the TOML text; `source` names it in errors ("FILE: key: reason").
Scenario parse_scenario(const std::string& text, const std::string& source,
                        const std::vector<std::string>& towns);
Scenario load_scenario(const std::filesystem::path& path, const std::vector<std::string>& towns);

}  // namespace saferlink::sim
