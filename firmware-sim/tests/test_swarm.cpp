#include "firmware-sim/swarm.hpp"

#include <doctest/doctest.h>

#include "core/towns.hpp"
#include "tests/support/hub_fixture.hpp"
#include "tests/support/pki.hpp"

#include <set>
#include <string>

namespace {

using namespace saferlink;
using namespace saferlink::sim;

Report run_swarm(const test::TestPki& pki, const test::HubFixture& hub, const std::string& text,
                 std::unique_ptr<Swarm>& swarm) {
  Scenario scenario = parse_scenario(text, "test.toml", default_towns());
  SwarmOptions options;
  options.hub = hub.address();
  options.certs = pki.dir();
  swarm = std::make_unique<Swarm>(options, scenario);
  return swarm->run();
}

// Every accepted alert reached every CCTV handset of the swarm exactly once (round 0).
void check_cctv_exactly_once(const Swarm& swarm) {
  std::vector<std::string> cctv;
  for (const auto& device : swarm.devices()) {
    if (device->handset().config().role == Role::cctv) cctv.push_back(device->id());
  }
  REQUIRE_FALSE(cctv.empty());
  for (const auto& [id, trace] : swarm.alerts()) {
    CAPTURE(id);
    REQUIRE(trace.accepted);
    for (const std::string& c : cctv) {
      CAPTURE(c);
      auto it = trace.received_by.find(c);
      REQUIRE(it != trace.received_by.end());
      CHECK(it->second == 1);
    }
  }
}

}  // namespace

TEST_CASE("a swarm of 200 handsets against a real hub accounts for every alert") {
  test::TestPki pki;
  test::HubFixture hub(pki);
  std::unique_ptr<Swarm> swarm;
  const Report report = run_swarm(pki, hub, R"(
name = "two hundred"
duration_s = 8
ramp_s = 2
drain_s = 15
seed = 3
[handset]
panic_status = "test"
[[group]]
towns = ["rochester", "strood", "chatham", "gillingham", "rainham"]
role = "shop"
count = 38
panics_per_hour = 120
sightings_per_hour = 40
[[group]]
towns = ["rochester", "strood", "chatham", "gillingham", "rainham"]
role = "police"
count = 1
ack_after_s = 1
[[group]]
town = "all"
role = "cctv"
count = 5
ack_after_s = 0.5
)", swarm);
  CHECK(report.handsets == 200);
  CHECK(report.connections >= 200);
  CHECK(report.all_online_s > 0);
  CHECK(report.sent >= 20);  // about 38 expected from the rates; the seed fixes it
  CHECK(report.accepted == report.sent);
  CHECK(report.lost == 0);
  CHECK(report.duplicates == 0);
  CHECK(report.failed == 0);
  CHECK(report.accept_latency_us.count() == report.accepted);
  CHECK(report.delivered_latency_us.count() == report.accepted);
  CHECK(report.relayed_received == report.relayed_expected);
  CHECK(report.acknowledged > 0);
  // What the hub counted agrees with the report.
  const auto stats = hub.hub->stats();
  CHECK(stats.alerts_accepted == report.accepted);
  CHECK(stats.alerts_duplicate == report.accepted_as_duplicate);
  CHECK(stats.sightings_accepted == report.sightings_accepted);
  CHECK(report.sightings_accepted == report.sightings_sent);
  CHECK(report.sightings_received > 0);
  check_cctv_exactly_once(*swarm);
}

TEST_CASE("with drop-outs on a fifth of the shops and CCTV every panic pressed reaches CCTV exactly once") {
  test::TestPki pki;
  test::HubFixture hub(pki);
  std::unique_ptr<Swarm> swarm;
  const Report report = run_swarm(pki, hub, R"(
name = "drop-outs"
duration_s = 10
ramp_s = 1
drain_s = 25
seed = 11
[handset]
panic_status = "test"
[[group]]
towns = ["chatham", "strood"]
role = "shop"
count = 25
panics_per_hour = 300
[group.link]
dropout_percent = 20
dropouts_per_hour = 200
dropout_min_s = 0.5
dropout_max_s = 3
[[group]]
town = "all"
role = "cctv"
count = 5
[group.link]
dropout_percent = 20
dropouts_per_hour = 300
dropout_min_s = 0.5
dropout_max_s = 3
)", swarm);
  CHECK(report.dropouts > 0);
  CHECK(report.reconnects > 0);
  CHECK(report.sent >= 15);
  CHECK(report.lost_unaccepted == 0);
  // Store-and-forward: what a handset missed while off air was replayed when it came back.
  CHECK(report.lost == 0);
  CHECK(hub.hub->stats().replayed > 0);
  CHECK(report.accepted == report.sent);
  CHECK(report.duplicates == 0);
  CHECK(hub.hub->stats().alerts_accepted == report.accepted);
  check_cctv_exactly_once(*swarm);
}

TEST_CASE("panics pressed during drop-outs wait in flash and reach CCTV once the link is back") {
  // Every shop loses the link for 3 s at some moment while pressing panic often: the panics
  // pressed meanwhile are queued in flash and sent on reconnect, each accepted and relayed once.
  test::TestPki pki;
  test::HubFixture live(pki);
  std::unique_ptr<Swarm> swarm;
  const Report report = run_swarm(pki, live, R"(
name = "offline start"
duration_s = 4
ramp_s = 0.5
drain_s = 20
seed = 5
[[group]]
town = "chatham"
role = "shop"
count = 4
panics_per_hour = 3000
[group.link]
dropout_percent = 100
dropout_min_s = 3
dropout_max_s = 3
[[group]]
town = "all"
role = "cctv"
count = 1
)", swarm);
  CHECK(report.dropouts == 4);
  CHECK(report.sent > 0);
  CHECK(report.accepted == report.sent);
  CHECK(report.lost == 0);
  // Some panic was pressed while its shop was off air: accepted more than a second later.
  CHECK(report.accept_latency_us.max() > 1'000'000);
  check_cctv_exactly_once(*swarm);
}
