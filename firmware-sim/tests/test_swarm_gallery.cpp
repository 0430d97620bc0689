// The exclusion gallery on swarm handsets against a real hub (loopback, real TLS): a shop
// handset syncs an active notice, downloads and verifies its photo, and when the notice is
// revoked deletes it and confirms; the hub lists the confirmation under notice.show.
#include "firmware-sim/swarm.hpp"

#include <doctest/doctest.h>

#include "core/image.hpp"
#include "core/towns.hpp"
#include "tests/support/device.hpp"
#include "tests/support/hub_fixture.hpp"
#include "tests/support/images.hpp"
#include "tests/support/pki.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <thread>

namespace {

using namespace saferlink;
using namespace saferlink::sim;
using json = nlohmann::json;

json query(test::TestDevice& d, const std::string& op, const json& args) {
  const auto reply = d.query(op, args.dump());
  INFO(op, ": ", (reply.has_error() ? reply.error().message() : std::string()));
  REQUIRE(reply.has_query_result());
  return json::parse(reply.query_result().result_json());
}

// Waits (polling, at most `limit`) until `done` is true.
bool wait_until(const std::atomic<bool>& done, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done;
}

}  // namespace

TEST_CASE("a swarm shop holds an active notice with its verified photo and confirms its deletion") {
  test::TestPki pki;
  pki.issue(Role::shop, "chatham", "shop-chatham-1", "Boots Chatham");
  pki.issue(Role::coordinator, "all", "coord-1", "Safer Medway");
  pki.issue(Role::coordinator, "all", "coord-2", "Safer Medway");
  test::HubFixture hub(pki);
  test::TestDevice coord1(pki.dir(), "coord-1", hub.address());
  test::TestDevice coord2(pki.dir(), "coord-2", hub.address());
  test::TestDevice shop(pki.dir(), "shop-chatham-1", hub.address());
  coord1.connect();
  coord2.connect();
  shop.connect();

  // An active notice for Chatham with a photo of several 16 KiB pieces.
  const std::string png = test::images::make_png(400, 300, false);
  const v1::UploadStatus stored = coord1.upload(png);
  const std::string sha = stored.stored_sha256();
  REQUIRE(is_sha256_hex(sha));
  v1::Envelope form;
  auto* f = form.mutable_form();
  f->set_form_id("form-sim-gallery");
  f->set_occurred_at_ms(now_ms() - 3'600'000);
  f->set_town("chatham");
  f->set_premises("Pentagon Centre");
  f->set_category("theft_from_shop");
  f->set_description("Took razor blades");
  const std::uint64_t msg = shop.send(form);
  REQUIRE(shop.wait_for([msg](const v1::Envelope& x) {
                return x.has_form_confirmed() || (x.has_error() && x.error().in_reply_to() == msg);
              })->has_form_confirmed());
  const std::int64_t profile =
      query(coord1, "profiles.create", {{"name", "Sim Offender"}, {"from_form", f->form_id()}})
          ["profile_id"];
  const std::int64_t notice = query(coord1, "notice.propose",
                                    {{"profile_id", profile},
                                     {"incidents", {f->form_id()}},
                                     {"conditions", "Not to enter member premises"},
                                     {"towns", "chatham"},
                                     {"photo_sha256", sha},
                                     {"reason", "three thefts in a month"}})["notice_id"];
  query(coord2, "notice.approve", {{"notice_id", notice}, {"reason", "board agreed"}});
  REQUIRE(query(coord1, "notice.serve", {{"notice_id", notice}, {"reason", "served"}})["state"] ==
          "active");

  // A swarm of one Chatham shop (gallery on by default for shops) and one CCTV handset (off).
  Scenario scenario = parse_scenario(R"(
name = "gallery"
duration_s = 60
ramp_s = 0
drain_s = 0
[[group]]
town = "chatham"
role = "shop"
count = 1
[[group]]
town = "all"
role = "cctv"
count = 1
)", "gallery.toml", default_towns());
  REQUIRE(scenario.groups[0].gallery == true);
  REQUIRE(scenario.groups[1].gallery == false);
  std::atomic<bool> photo_done{false};
  std::atomic<bool> removal_confirmed{false};
  // Seen on the swarm's thread when the photo was verified: the entry and its photo size.
  bool held_with_photo = false;
  std::uint64_t entry_photo_size = 0;
  SwarmOptions options;
  options.hub = hub.address();
  options.certs = pki.dir();
  options.observer = [&](const Device& d, const Action& a) {
    if (a.event == Action::Event::gallery_entry) {
      entry_photo_size = a.message.gallery_entry().photo_size();
    }
    if (a.event == Action::Event::photo_complete) {
      const auto& held = d.handset().gallery();
      held_with_photo = held.size() == 1 && held[0].notice_id == notice &&
                        held[0].photo_sha256 == sha && held[0].photo_ok && a.id == sha;
      photo_done = true;
    }
    if (a.event == Action::Event::gallery_remove_confirmed) removal_confirmed = true;
  };
  Swarm swarm(options, scenario);
  Report report;
  std::thread runner([&] { report = swarm.run(); });

  const bool got_photo = wait_until(photo_done, std::chrono::seconds(20));
  if (got_photo) {
    CHECK(query(coord1, "notice.revoke", {{"notice_id", notice}, {"reason", "appeal upheld"}})
              ["state"] == "revoked");
    wait_until(removal_confirmed, std::chrono::seconds(20));
  }
  swarm.request_stop();
  runner.join();

  REQUIRE(got_photo);
  CHECK(held_with_photo);
  CHECK(removal_confirmed);
  const Device& shop_handset = *swarm.devices()[0];
  CHECK(shop_handset.handset().config().gallery);
  CHECK_FALSE(swarm.devices()[1]->handset().config().gallery);
  CHECK(shop_handset.handset().gallery().empty());  // deleted on the hub's command
  CHECK(shop_handset.handset().flash().gallery_unconfirmed.empty());
  CHECK(entry_photo_size > 256 * 1024);  // more than one window
  CHECK(shop_handset.handset().photo_bytes_received() == entry_photo_size);
  CHECK(report.gallery_handsets == 1);
  CHECK(report.gallery_synced == 1);
  CHECK(report.photos_complete == 1);
  CHECK(report.photo_bytes == shop_handset.handset().photo_bytes_received());
  CHECK(report.photo_bytes > 16 * 1024);  // several pieces
  CHECK(report.photo_hash_failures == 0);
  CHECK(report.gallery_removals == 1);
  CHECK(report.gallery_removals_confirmed == 1);
  CHECK(report.gallery_entries == 0);

  const json handsets =
      query(coord1, "notice.show", {{"notice_id", notice}})["gallery_handsets"];
  INFO(handsets.dump());
  REQUIRE(handsets["deletion_confirmed"].size() == 1);
  CHECK(handsets["deletion_confirmed"][0]["device_id"] == shop_handset.id());
  CHECK(handsets["deletion_not_confirmed"].empty());
}
