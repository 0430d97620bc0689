#include "firmware-sim/report.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

namespace saferlink::sim {

namespace {

using json = nlohmann::json;

double ms(std::int64_t us) { return static_cast<double>(us) / 1000.0; }

json latency(const Histogram& h) {
  return {{"count", h.count()},
          {"p50_ms", ms(h.percentile(50))},
          {"p90_ms", ms(h.percentile(90))},
          {"p99_ms", ms(h.percentile(99))},
          {"p999_ms", ms(h.percentile(99.9))},
          {"max_ms", ms(h.max())}};
}

std::string fixed(double value, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string latency_row(const char* name, const Histogram& h) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "  %-28s %8llu %9.2f %9.2f %9.2f %9.2f %9.2f\n", name,
                static_cast<unsigned long long>(h.count()), ms(h.percentile(50)),
                ms(h.percentile(90)), ms(h.percentile(99)), ms(h.percentile(99.9)), ms(h.max()));
  return buf;
}

}  // namespace

std::string to_json(const Report& r) {
  json doc = {
      {"scenario", r.scenario},
      {"handsets", r.handsets},
      {"run_s", r.run_s},
      {"sent", r.sent},
      {"lost", r.lost},
      {"duplicates", r.duplicates},
      {"accepted", r.accepted},
      {"accepted_as_duplicate", r.accepted_as_duplicate},
      {"failed", r.failed},
      {"cancelled", r.cancelled},
      {"lost_unaccepted", r.lost_unaccepted},
      {"lost_in_relay", r.lost_in_relay},
      {"relayed_expected", r.relayed_expected},
      {"relayed_received", r.relayed_received},
      {"acknowledged", r.acknowledged},
      {"latency",
       {{"press_to_accepted", latency(r.accept_latency_us)},
        {"press_to_delivered_last", latency(r.delivered_latency_us)}}},
      {"sightings",
       {{"sent", r.sightings_sent},
        {"accepted", r.sightings_accepted},
        {"received", r.sightings_received}}},
      {"links",
       {{"connections", r.connections},
        {"reconnects", r.reconnects},
        {"dial_failures", r.dial_failures},
        {"handshakes_per_s", r.handshakes_per_s},
        {"handshakes_per_s_peak", r.handshakes_per_s_peak},
        {"all_online_s", r.all_online_s},
        {"outages", r.outages},
        {"outage_recovery_s", r.outage_recovery_s},
        {"dropouts", r.dropouts},
        {"stalls", r.stalls}}},
      {"gallery",
       {{"handsets", r.gallery_handsets},
        {"synced", r.gallery_synced},
        {"entries_held", r.gallery_entries},
        {"removals", r.gallery_removals},
        {"removals_confirmed", r.gallery_removals_confirmed},
        {"photos_complete", r.photos_complete},
        {"photo_bytes", r.photo_bytes},
        {"photo_hash_failures", r.photo_hash_failures}}},
      {"low_battery", r.low_battery},
      {"hub_errors", r.hub_errors},
      {"memory",
       {{"rss_before_kb", r.rss_before_kb},
        {"rss_peak_kb", r.rss_peak_kb},
        {"bytes_per_handset", r.bytes_per_handset}}},
  };
  return doc.dump();
}

std::string to_table(const Report& r) {
  std::ostringstream out;
  out << "scenario: " << r.scenario << " (" << r.handsets << " handsets, " << fixed(r.run_s)
      << " s)\n";
  out << "links:    " << r.connections << " connections (" << r.reconnects << " reconnects, "
      << r.dial_failures << " failed dials), " << fixed(r.handshakes_per_s)
      << " handshakes/s (peak " << fixed(r.handshakes_per_s_peak, 0) << "/s), all on air after "
      << (r.all_online_s < 0 ? std::string("never") : fixed(r.all_online_s, 2) + " s") << "\n";
  if (r.outages > 0 || r.dropouts > 0 || r.stalls > 0) {
    out << "          " << r.outages << " outages (longest recovery "
        << (r.outage_recovery_s < 0 ? std::string("never") : fixed(r.outage_recovery_s, 2) + " s")
        << "), " << r.dropouts << " drop-outs and " << r.stalls << " stalls injected\n";
  }
  out << "panics:   " << r.sent << " sent, " << r.accepted << " accepted (" << r.accepted_as_duplicate
      << " on a retry), " << r.failed << " refused, " << r.cancelled << " cancelled, LOST " << r.lost << " (" << r.lost_unaccepted
      << " never accepted, " << r.lost_in_relay << " deliveries unconfirmed), DUPLICATES "
      << r.duplicates << "\n";
  out << "          " << r.relayed_received << " of " << r.relayed_expected
      << " deliveries received by swarm handsets; " << r.acknowledged << " acknowledged\n";
  out << "sightings: " << r.sightings_sent << " sent, " << r.sightings_accepted << " accepted, "
      << r.sightings_received << " received\n";
  if (r.gallery_handsets > 0) {
    out << "gallery:  " << r.gallery_synced << " of " << r.gallery_handsets << " handsets synced, "
        << r.gallery_entries << " entries held, " << r.gallery_removals << " deleted ("
        << r.gallery_removals_confirmed << " confirmed), " << r.photos_complete << " photos ("
        << r.photo_bytes << " bytes), HASH FAILURES " << r.photo_hash_failures << "\n";
  }
  out << "latency (ms)                      count       p50       p90       p99     p99.9       max\n";
  out << latency_row("press -> accepted", r.accept_latency_us);
  out << latency_row("press -> delivered to last", r.delivered_latency_us);
  out << "memory:   " << r.rss_before_kb << " KiB before, " << r.rss_peak_kb
      << " KiB with every handset on air: " << fixed(r.bytes_per_handset / 1024.0, 1)
      << " KiB per handset\n";
  if (r.low_battery > 0 || r.hub_errors > 0) {
    out << "other:    " << r.low_battery << " low-battery reports, " << r.hub_errors
        << " errors from the hub\n";
  }
  return out.str();
}

}  // namespace saferlink::sim
