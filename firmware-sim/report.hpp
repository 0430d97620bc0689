// Report: what a swarm run measured, as one JSON object (`--json`) or a table for a person.
// The counts a script reads are at the top level: sent, lost, duplicates. Plain values and
// functions.
#pragma once

#include "firmware-sim/histogram.hpp"

#include <cstdint>
#include <string>

namespace saferlink::sim {

struct Report {
  std::string scenario;
  int handsets = 0;
  double run_s = 0;              // from the first power-on to the end of the drain

  // Links.
  std::uint64_t connections = 0;      // welcomes received (first connections and reconnects)
  std::uint64_t reconnects = 0;       // welcomes after a handset's first
  std::uint64_t dial_failures = 0;    // dials that ended before a welcome
  double handshakes_per_s = 0;        // first connections / the time they took
  double handshakes_per_s_peak = 0;   // the busiest second
  double all_online_s = -1;           // from the first power-on until every handset was on air
                                      // (-1: never)
  std::uint64_t outages = 0;          // moments when a quarter or more of the handsets lost the
                                      // link within a second (a hub restart)
  double outage_recovery_s = -1;      // the longest time from such a moment until every handset
                                      // that had been on air was back (-1: none or never)
  std::uint64_t dropouts = 0;         // drop-outs injected
  std::uint64_t stalls = 0;           // stalls injected

  // Panics.
  std::uint64_t sent = 0;             // panics raised (long presses)
  std::uint64_t accepted = 0;         // of those, accepted by the hub
  std::uint64_t accepted_as_duplicate = 0;  // first acceptance seen was a retry's (duplicate)
  std::uint64_t failed = 0;           // refused by the hub
  std::uint64_t cancelled = 0;        // cancelled as false alarms (not counted as lost)
  std::uint64_t lost_unaccepted = 0;  // raised but never accepted by the end
  std::uint64_t lost_in_relay = 0;    // deliveries the hub counted that no recipient confirmed
  std::uint64_t lost = 0;             // lost_unaccepted + lost_in_relay
  std::uint64_t duplicates = 0;       // relayed messages a handset had already processed
  std::uint64_t relayed_expected = 0; // sum of AlertAccepted.recipients
  std::uint64_t relayed_received = 0; // first receipts of swarm panics by swarm handsets
  std::uint64_t acknowledged = 0;     // acknowledgements sent by simulated responders
  Histogram accept_latency_us;        // press -> AlertAccepted
  Histogram delivered_latency_us;     // press -> delivered to the last recipient

  // Sightings.
  std::uint64_t sightings_sent = 0;
  std::uint64_t sightings_accepted = 0;
  std::uint64_t sightings_received = 0;

  // The exclusion gallery (handsets with the gallery on).
  std::uint64_t gallery_handsets = 0;         // handsets that hold a gallery
  std::uint64_t gallery_synced = 0;           // of those, synced at least once
  std::uint64_t gallery_entries = 0;          // entries held at the end, over all handsets
  std::uint64_t gallery_removals = 0;         // entries deleted on the hub's command
  std::uint64_t gallery_removals_confirmed = 0;  // deletions the hub acknowledged
  std::uint64_t photos_complete = 0;          // photos downloaded and verified
  std::uint64_t photo_bytes = 0;              // photo bytes received
  std::uint64_t photo_hash_failures = 0;      // photos whose bytes did not match (must be 0)

  // Other.
  std::uint64_t low_battery = 0;
  std::uint64_t hub_errors = 0;
  std::int64_t rss_before_kb = 0;
  std::int64_t rss_peak_kb = 0;       // resident set with every handset on air
  double bytes_per_handset = 0;       // (rss_peak - rss_before) / handsets
};

std::string to_json(const Report& report);   // one line, no newline
std::string to_table(const Report& report);  // several lines, ends with a newline

}  // namespace saferlink::sim
