// Offender sightings end to end: real hub, real TLS on loopback port 0, certificates made here.
// Who receives a sighting per role and town, the possible-breach flag (and coordinators) when the
// named profile has an active exclusion notice and not otherwise, refusals, and the field checks
// of the session (check_sighting).
#include "tests/support/device.hpp"
#include "tests/support/hub_fixture.hpp"
#include "tests/support/images.hpp"
#include "tests/support/pki.hpp"

#include "core/towns.hpp"
#include "server/session.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <thread>

using namespace saferlink;
using namespace saferlink::test;
using json = nlohmann::json;

namespace {

// Two Chatham shops, a Strood shop, police of Chatham, Strood and all towns, CCTV for all towns,
// two coordinators.
struct Medway {
  Medway() {
    pki.issue(Role::shop, "chatham", "shop-chatham-1", "Boots Chatham");
    pki.issue(Role::shop, "chatham", "shop-chatham-2", "WHSmith Chatham");
    pki.issue(Role::shop, "strood", "shop-strood-1", "Co-op Strood");
    pki.issue(Role::police, "chatham", "police-chatham", "Kent Police");
    pki.issue(Role::police, "strood", "police-strood", "Kent Police");
    pki.issue(Role::police, "all", "police-all", "Kent Police");
    pki.issue(Role::cctv, "all", "cctv-01", "Medway CCTV");
    pki.issue(Role::coordinator, "all", "coord-1", "Safer Medway");
    pki.issue(Role::coordinator, "all", "coord-2", "Safer Medway");
    hub = std::make_unique<HubFixture>(pki);
  }
  std::unique_ptr<TestDevice> device(const std::string& id) {
    auto d = std::make_unique<TestDevice>(pki.dir(), id, hub->address());
    d->connect();
    return d;
  }
  // Waits until the hub has attached `n` sessions (attach is posted to the hub strand).
  void wait_sessions(std::uint64_t n) {
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (hub->hub->stats().sessions_live < n && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(5ms);
    }
    REQUIRE(hub->hub->stats().sessions_live >= n);
  }
  TestPki pki;
  std::unique_ptr<HubFixture> hub;
};

v1::Envelope sighting(const std::string& device_id, std::uint64_t seq, std::int64_t profile = 0,
                      const std::string& town = "") {
  v1::Envelope e;
  auto* s = e.mutable_sighting();
  s->set_sighting_id(device_id + ":" + std::to_string(seq));
  s->set_device_seq(seq);
  s->set_text("grey hoodie, filling a bag with razor blades");
  s->set_location("Pentagon Centre, north entrance");
  s->set_heading("towards the bus station");
  s->set_profile_id(profile);
  s->set_town(town);
  return e;
}

// Sends a sighting and returns the hub's answer to it (SightingAccepted or Error).
v1::Envelope post(TestDevice& d, v1::Envelope e) {
  const std::string id = e.sighting().sighting_id();
  const std::uint64_t msg = d.send(std::move(e));
  auto reply = d.wait_for([&](const v1::Envelope& x) {
    return (x.has_sighting_accepted() && x.sighting_accepted().sighting_id() == id) ||
           (x.has_error() && x.error().in_reply_to() == msg);
  });
  REQUIRE(reply);
  return *reply;
}

std::function<bool(const v1::Envelope&)> is_sighting(const std::string& id) {
  return [id](const v1::Envelope& e) { return e.has_sighting() && e.sighting().sighting_id() == id; };
}

bool heard(TestDevice& d, const std::string& id, std::chrono::milliseconds window) {
  for (const auto& e : d.drain(window)) {
    if (e.has_sighting() && e.sighting().sighting_id() == id) return true;
  }
  return false;
}

json result(const v1::Envelope& e) {
  INFO((e.has_error() ? e.error().message() : std::string()));
  REQUIRE(e.has_query_result());
  return json::parse(e.query_result().result_json());
}

// A profile created from a Chatham form through the coordinator queries, with a notice for
// Chatham proposed by coord-1 and, when `serve`, approved by coord-2 and served by coord-1.
// Returns {profile id, notice id}.
std::pair<std::int64_t, std::int64_t> profile_with_notice(Medway& m, const std::string& form_id,
                                                          const std::string& name, bool serve) {
  auto shop = m.device("shop-chatham-2");
  v1::Envelope form;
  auto* f = form.mutable_form();
  f->set_form_id(form_id);
  f->set_occurred_at_ms(now_ms() - 3'600'000);
  f->set_town("chatham");
  f->set_premises("Pentagon Centre");
  f->set_category("theft_from_shop");
  f->set_description("Took razor blades");
  const std::uint64_t msg = shop->send(form);
  auto confirmed = shop->wait_for([msg](const v1::Envelope& x) {
    return x.has_form_confirmed() || (x.has_error() && x.error().in_reply_to() == msg);
  });
  REQUIRE(confirmed);
  REQUIRE(confirmed->has_form_confirmed());

  auto coord1 = m.device("coord-1");
  auto coord2 = m.device("coord-2");
  const std::int64_t profile =
      result(coord1->query("profiles.create",
                           json{{"name", name}, {"from_form", form_id}}.dump()))["profile_id"];
  const std::int64_t notice =
      result(coord1->query("notice.propose",
                           json{{"profile_id", profile},
                                {"incidents", {form_id}},
                                {"conditions", "Not to enter any member premises in Chatham"},
                                {"towns", "chatham"},
                                {"reason", "three thefts in a month"}}
                               .dump()))["notice_id"];
  if (serve) {
    CHECK(result(coord2->query("notice.approve",
                               json{{"notice_id", notice}, {"reason", "board agreed"}}.dump()))
              ["state"] == "approved");
    CHECK(result(coord1->query("notice.serve",
                               json{{"notice_id", notice}, {"reason", "served in person"}}.dump()))
              ["state"] == "active");
  }
  return {profile, notice};
}

constexpr auto kQuiet = 300ms;  // after the accepted answer, nothing more is on its way

}  // namespace

TEST_CASE("a Chatham shop's sighting reaches Chatham shops and police, all-town police and CCTV, "
          "but not Strood or coordinators") {
  Medway m;
  auto sender = m.device("shop-chatham-1");
  auto neighbour = m.device("shop-chatham-2");
  auto strood_shop = m.device("shop-strood-1");
  auto police = m.device("police-chatham");
  auto police_strood = m.device("police-strood");
  auto police_all = m.device("police-all");
  auto cctv = m.device("cctv-01");
  auto coord = m.device("coord-1");
  m.wait_sessions(8);

  auto answer = post(*sender, sighting("shop-chatham-1", 1));
  REQUIRE(answer.has_sighting_accepted());
  CHECK(answer.sighting_accepted().recipients() == 4);
  CHECK_FALSE(answer.sighting_accepted().possible_breach());
  CHECK_FALSE(answer.sighting_accepted().duplicate());

  for (auto* d : {neighbour.get(), police.get(), police_all.get(), cctv.get()}) {
    CAPTURE(d->id());
    auto e = d->wait_for(is_sighting("shop-chatham-1:1"));
    REQUIRE(e);
    const auto& s = e->sighting();
    CHECK(s.origin_id() == "shop-chatham-1");
    CHECK(s.origin_role() == "shop");
    CHECK(s.origin_member() == "Boots Chatham");
    CHECK(s.town() == "chatham");
    CHECK(s.text() == "grey hoodie, filling a bag with razor blades");
    CHECK(s.heading() == "towards the bus station");
    CHECK(s.accepted_at_ms() > 0);
    CHECK_FALSE(s.possible_breach());
  }
  for (auto* d : {strood_shop.get(), police_strood.get(), coord.get(), sender.get()}) {
    CAPTURE(d->id());
    CHECK_FALSE(heard(*d, "shop-chatham-1:1", kQuiet));
  }

  // A retry of the same sighting is answered again and relayed to nobody.
  auto again = post(*sender, sighting("shop-chatham-1", 1));
  REQUIRE(again.has_sighting_accepted());
  CHECK(again.sighting_accepted().duplicate());
  CHECK_FALSE(heard(*neighbour, "shop-chatham-1:1", kQuiet));
}

TEST_CASE("all-town CCTV must name the town, and its sighting then reaches that town's shops "
          "and police only") {
  Medway m;
  auto cctv = m.device("cctv-01");
  auto strood_shop = m.device("shop-strood-1");
  auto police_strood = m.device("police-strood");
  auto chatham_shop = m.device("shop-chatham-1");
  auto police_chatham = m.device("police-chatham");
  auto police_all = m.device("police-all");
  m.wait_sessions(6);

  auto unnamed = post(*cctv, sighting("cctv-01", 1));
  REQUIRE(unnamed.has_error());
  CHECK(unnamed.error().code() == v1::INVALID);
  CHECK(unnamed.error().message().rfind("town: required", 0) == 0);
  auto unknown = post(*cctv, sighting("cctv-01", 2, 0, "atlantis"));
  REQUIRE(unknown.has_error());
  CHECK(unknown.error().message().rfind("town: unknown", 0) == 0);

  auto answer = post(*cctv, sighting("cctv-01", 3, 0, "strood"));
  REQUIRE(answer.has_sighting_accepted());
  CHECK(answer.sighting_accepted().recipients() == 3);
  for (auto* d : {strood_shop.get(), police_strood.get(), police_all.get()}) {
    CAPTURE(d->id());
    auto e = d->wait_for(is_sighting("cctv-01:3"));
    REQUIRE(e);
    CHECK(e->sighting().town() == "strood");
    CHECK(e->sighting().origin_town() == "all");
    CHECK(e->sighting().origin_role() == "cctv");
  }
  CHECK_FALSE(heard(*chatham_shop, "cctv-01:3", kQuiet));
  CHECK_FALSE(heard(*police_chatham, "cctv-01:3", kQuiet));

  // A shop cannot move its sighting to another town.
  auto moved = post(*chatham_shop, sighting("shop-chatham-1", 1, 0, "strood"));
  REQUIRE(moved.has_error());
  CHECK(moved.error().message().rfind("town: must be your own town", 0) == 0);
}

TEST_CASE("naming a profile with an active notice flags a possible breach and also reaches "
          "coordinators") {
  Medway m;
  const auto [profile, notice] = profile_with_notice(m, "form-sight-0001", "Razor Ray", true);
  auto sender = m.device("shop-chatham-1");
  auto neighbour = m.device("shop-chatham-2");
  auto strood_shop = m.device("shop-strood-1");
  auto cctv = m.device("cctv-01");
  auto coord1 = m.device("coord-1");
  auto coord2 = m.device("coord-2");
  m.wait_sessions(6);

  auto answer = post(*sender, sighting("shop-chatham-1", 7, profile));
  REQUIRE(answer.has_sighting_accepted());
  CHECK(answer.sighting_accepted().possible_breach());
  CHECK(answer.sighting_accepted().notice_id() == notice);
  CHECK(answer.sighting_accepted().profile_id() == profile);
  CHECK(answer.sighting_accepted().recipients() == 4);  // neighbour, CCTV, two coordinators

  for (auto* d : {neighbour.get(), cctv.get(), coord1.get(), coord2.get()}) {
    CAPTURE(d->id());
    auto e = d->wait_for(is_sighting("shop-chatham-1:7"));
    REQUIRE(e);
    CHECK(e->sighting().possible_breach());
    CHECK(e->sighting().notice_id() == notice);
    CHECK(e->sighting().profile_id() == profile);
    CHECK(e->sighting().profile_name() == "Razor Ray");
  }
  CHECK_FALSE(heard(*strood_shop, "shop-chatham-1:7", kQuiet));

  // The sighting is in the profile's audit trail, ids only, and the chain verifies.
  auto rows = result(coord1->query(
      "audit.show",
      json{{"object_type", "profile"}, {"object_id", std::to_string(profile)}}.dump()));
  bool found = false;
  for (const auto& row : rows) {
    if (row.value("detail", "").rfind("sighting shop-chatham-1:7", 0) == 0) {
      found = true;
      CHECK(row["actor_id"] == "shop-chatham-1");
    }
  }
  CHECK(found);
  CHECK(result(coord1->query("audit.verify", "{}"))["ok"] == true);
}

TEST_CASE("naming a profile whose notice is only proposed is not flagged and does not reach "
          "coordinators") {
  Medway m;
  const auto [profile, notice] = profile_with_notice(m, "form-sight-0002", "Nicky Fingers", false);
  CHECK(notice > 0);
  auto sender = m.device("police-chatham");
  auto neighbour = m.device("shop-chatham-2");
  auto coord = m.device("coord-1");
  m.wait_sessions(3);

  auto answer = post(*sender, sighting("police-chatham", 1, profile));
  REQUIRE(answer.has_sighting_accepted());
  CHECK_FALSE(answer.sighting_accepted().possible_breach());
  CHECK(answer.sighting_accepted().notice_id() == 0);
  CHECK(answer.sighting_accepted().recipients() == 1);
  auto e = neighbour->wait_for(is_sighting("police-chatham:1"));
  REQUIRE(e);
  CHECK_FALSE(e->sighting().possible_breach());
  CHECK(e->sighting().profile_name() == "Nicky Fingers");
  CHECK_FALSE(heard(*coord, "police-chatham:1", kQuiet));
}

TEST_CASE("a sighting naming an unknown profile is refused, a coordinator may not send one, and "
          "the connection carries on") {
  Medway m;
  auto shop = m.device("shop-chatham-1");
  auto neighbour = m.device("shop-chatham-2");
  auto coord = m.device("coord-1");
  m.wait_sessions(3);

  auto unknown = post(*shop, sighting("shop-chatham-1", 1, 4242));
  REQUIRE(unknown.has_error());
  CHECK(unknown.error().code() == v1::INVALID);
  CHECK(unknown.error().message() == "profile_id: no profile 4242");
  CHECK_FALSE(heard(*neighbour, "shop-chatham-1:1", kQuiet));

  auto from_coord = post(*coord, sighting("coord-1", 1));
  REQUIRE(from_coord.has_error());
  CHECK(from_coord.error().code() == v1::NOT_ALLOWED);
  CHECK(from_coord.error().message() == "role coordinator may not send sighting");

  auto forged = post(*shop, sighting("shop-chatham-2", 5));
  REQUIRE(forged.has_error());
  CHECK(forged.error().message().rfind("sighting_id: must be", 0) == 0);

  auto fine = post(*shop, sighting("shop-chatham-1", 2));
  REQUIRE(fine.has_sighting_accepted());
  CHECK(neighbour->wait_for(is_sighting("shop-chatham-1:2")));
}

TEST_CASE("a sighting with a photo uploaded first carries the stored SHA-256, and one citing an "
          "image the hub does not hold is refused") {
  Medway m;
  auto shop = m.device("shop-chatham-1");
  auto neighbour = m.device("shop-chatham-2");
  m.wait_sessions(2);
  const auto stored = shop->upload(images::make_png(8, 8, true));
  REQUIRE(stored.done());

  auto with_photo = sighting("shop-chatham-1", 1);
  with_photo.mutable_sighting()->set_photo_sha256(stored.stored_sha256());
  REQUIRE(post(*shop, with_photo).has_sighting_accepted());
  auto e = neighbour->wait_for(is_sighting("shop-chatham-1:1"));
  REQUIRE(e);
  CHECK(e->sighting().photo_sha256() == stored.stored_sha256());

  auto missing = sighting("shop-chatham-1", 2);
  missing.mutable_sighting()->set_photo_sha256(std::string(64, 'e'));
  auto refused = post(*shop, missing);
  REQUIRE(refused.has_error());
  CHECK(refused.error().message().rfind("photo_sha256", 0) == 0);
}

// ---- field checks (server/session.hpp) -------------------------------------------------------

namespace {

Identity who(const std::string& id, Role role, const std::string& town) {
  Identity i;
  i.id = id;
  i.role = role;
  i.town = town;
  i.member = "m";
  return i;
}

v1::Sighting valid(const std::string& device_id) { return sighting(device_id, 3).sighting(); }

}  // namespace

TEST_CASE("check_sighting accepts a well-formed sighting and names the field of each fault") {
  using server::check_sighting;
  const auto shop = who("shop-chatham-1", Role::shop, "chatham");
  const auto cctv = who("cctv-01", Role::cctv, "all");
  const auto& towns = default_towns();
  CHECK(check_sighting(shop, valid("shop-chatham-1"), towns) == std::nullopt);

  struct Case {
    const char* what;
    std::function<void(v1::Sighting&)> change;
    const char* field;
  };
  const Case cases[] = {
      {"no id", [](v1::Sighting& s) { s.clear_sighting_id(); }, "sighting_id"},
      {"another device's id", [](v1::Sighting& s) { s.set_sighting_id("shop-x:3"); },
       "sighting_id"},
      {"no sequence", [](v1::Sighting& s) { s.set_device_seq(0); }, "device_seq"},
      {"no text", [](v1::Sighting& s) { s.clear_text(); }, "text"},
      {"text too long", [](v1::Sighting& s) { s.set_text(std::string(501, 'x')); }, "text"},
      {"location too long", [](v1::Sighting& s) { s.set_location(std::string(201, 'x')); },
       "location"},
      {"heading too long", [](v1::Sighting& s) { s.set_heading(std::string(101, 'x')); },
       "heading"},
      {"negative profile", [](v1::Sighting& s) { s.set_profile_id(-1); }, "profile_id"},
      {"photo not a SHA-256", [](v1::Sighting& s) { s.set_photo_sha256("ABC"); },
       "photo_sha256"},
      {"negative time", [](v1::Sighting& s) { s.set_seen_at_ms(-1); }, "seen_at_ms"},
      {"another town", [](v1::Sighting& s) { s.set_town("strood"); }, "town"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    auto s = valid("shop-chatham-1");
    c.change(s);
    const auto bad = check_sighting(shop, s, towns);
    REQUIRE(bad.has_value());
    CHECK(bad->rfind(std::string(c.field) + ":", 0) == 0);
  }
  // Limits are inclusive.
  auto at_limits = valid("shop-chatham-1");
  at_limits.set_text(std::string(500, 'x'));
  at_limits.set_location(std::string(200, 'x'));
  at_limits.set_heading(std::string(100, 'x'));
  at_limits.set_town("chatham");
  CHECK(check_sighting(shop, at_limits, towns) == std::nullopt);

  // An all-town sender names a known town.
  auto from_cctv = valid("cctv-01");
  CHECK(check_sighting(cctv, from_cctv, towns)->rfind("town: required", 0) == 0);
  from_cctv.set_town("atlantis");
  CHECK(check_sighting(cctv, from_cctv, towns)->rfind("town: unknown", 0) == 0);
  from_cctv.set_town("all");
  CHECK(check_sighting(cctv, from_cctv, towns)->rfind("town: unknown", 0) == 0);
  from_cctv.set_town("strood");
  CHECK(check_sighting(cctv, from_cctv, towns) == std::nullopt);
}
