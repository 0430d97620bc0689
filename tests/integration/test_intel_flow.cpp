// The intelligence store over the wire: forms filed by members, coordinator queries, the
// two-person rule, and who may see what — real hub, real TLS, certificates made here.
#include "tests/support/device.hpp"
#include "tests/support/hub_fixture.hpp"
#include "tests/support/pki.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace saferlink;
using namespace saferlink::test;
using json = nlohmann::json;

namespace {

struct Partnership {
  Partnership() {
    pki.issue(Role::shop, "chatham", "shop-chatham-1", "Boots Chatham");
    pki.issue(Role::shop, "chatham", "shop-chatham-2", "WHSmith Chatham");
    pki.issue(Role::shop, "strood", "shop-strood-1", "Co-op Strood");
    pki.issue(Role::police, "chatham", "police-chatham", "Kent Police");
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
  TestPki pki;
  std::unique_ptr<HubFixture> hub;
};

v1::Envelope form_envelope(const std::string& form_id, const std::string& town,
                           const std::string& category = "theft_from_shop") {
  v1::Envelope e;
  auto* f = e.mutable_form();
  f->set_form_id(form_id);
  static const std::int64_t an_hour_ago = now_ms() - 3'600'000;  // same for every retry
  f->set_occurred_at_ms(an_hour_ago);
  f->set_town(town);
  f->set_premises("Pentagon Centre");
  f->set_category(category);
  f->set_description("Took razor blades, left by the north exit");
  f->set_goods("razor blades");
  f->set_value_pence(4599);
  f->add_unknown_offenders("male, 30s, grey hoodie");
  return e;
}

// Files a form and returns the hub's answer (FormConfirmed or Error).
v1::Envelope file(TestDevice& d, v1::Envelope form) {
  const std::uint64_t id = d.send(std::move(form));
  auto reply = d.wait_for([id](const v1::Envelope& x) {
    return x.has_form_confirmed() || (x.has_error() && x.error().in_reply_to() == id);
  });
  REQUIRE(reply);
  return *reply;
}

json result(const v1::Envelope& e) {
  INFO((e.has_error() ? e.error().message() : std::string()));
  REQUIRE(e.has_query_result());
  return json::parse(e.query_result().result_json());
}

}  // namespace

TEST_CASE("a shop files a form: confirmed after commit, a retry gets the same confirmation and "
          "is stored once") {
  Partnership p;
  auto shop = p.device("shop-chatham-1");
  auto first = file(*shop, form_envelope("form-0001-abc", "chatham"));
  REQUIRE(first.has_form_confirmed());
  CHECK_FALSE(first.form_confirmed().duplicate());
  const std::string confirmation = first.form_confirmed().confirmation();
  CHECK_FALSE(confirmation.empty());

  auto again = file(*shop, form_envelope("form-0001-abc", "chatham"));
  REQUIRE(again.has_form_confirmed());
  CHECK(again.form_confirmed().duplicate());
  CHECK(again.form_confirmed().confirmation() == confirmation);

  auto coord = p.device("coord-1");
  auto listed = result(coord->query("incidents.list", "{}"));
  REQUIRE(listed.is_array());
  CHECK(listed.size() == 1);
}

TEST_CASE("a form with a bad field is refused naming the field, and a shop cannot file for "
          "another town") {
  Partnership p;
  auto shop = p.device("shop-chatham-1");
  auto e = form_envelope("form-0002-abc", "chatham");
  e.mutable_form()->set_value_pence(-5);
  auto refused = file(*shop, e);
  REQUIRE(refused.has_error());
  CHECK(refused.error().code() == v1::INVALID);
  CHECK(refused.error().message().rfind("value_pence", 0) == 0);

  auto other_town = file(*shop, form_envelope("form-0003-abc", "strood"));
  REQUIRE(other_town.has_error());
  CHECK(other_town.error().message().rfind("town", 0) == 0);

  auto bad_category = file(*shop, form_envelope("form-0004-abc", "chatham", "shoplifting"));
  REQUIRE(bad_category.has_error());
  CHECK(bad_category.error().message().rfind("category", 0) == 0);
}

TEST_CASE("who sees what: a shop may not read profiles, a Strood shop sees no Chatham forms, "
          "police see a summary") {
  Partnership p;
  auto chatham = p.device("shop-chatham-1");
  REQUIRE(file(*chatham, form_envelope("form-0010-abc", "chatham")).has_form_confirmed());
  auto coord = p.device("coord-1");
  auto created = result(coord->query(
      "profiles.create",
      R"({"name":"Razor Ray","description":"tall, scar on left hand","from_form":"form-0010-abc"})"));
  const std::int64_t profile = created["profile_id"];

  auto strood = p.device("shop-strood-1");
  auto strood_forms = result(strood->query("incidents.list", "{}"));
  CHECK(strood_forms.empty());
  auto denied = strood->query("profiles.show", json{{"profile_id", profile}}.dump());
  REQUIRE(denied.has_error());
  CHECK(denied.error().code() == v1::NOT_ALLOWED);
  auto not_coord = chatham->query("notice.list", "{}");
  REQUIRE(not_coord.has_error());
  CHECK(not_coord.error().code() == v1::NOT_ALLOWED);

  auto police = p.device("police-chatham");
  auto summary = result(police->query("profiles.show", json{{"profile_id", profile}}.dump()));
  CHECK(summary["name"] == "Razor Ray");
  CHECK(summary["summary"] == true);
  CHECK_FALSE(summary.contains("incidents"));
  auto full = result(coord->query("profiles.show", json{{"profile_id", profile}}.dump()));
  CHECK(full["incidents"].size() == 1);

  // Every read above is in the audit log, and the chain verifies.
  auto rows = result(coord->query(
      "audit.show", json{{"object_type", "profile"}, {"object_id", std::to_string(profile)}}.dump()));
  CHECK(rows.size() >= 3);
  auto verified = result(coord->query("audit.verify", "{}"));
  CHECK(verified["ok"] == true);
}

TEST_CASE("the two-person rule: a coordinator cannot approve their own proposal, another can, "
          "and the notice can then be served") {
  Partnership p;
  auto shop = p.device("shop-chatham-1");
  REQUIRE(file(*shop, form_envelope("form-0020-abc", "chatham")).has_form_confirmed());
  auto coord1 = p.device("coord-1");
  auto coord2 = p.device("coord-2");
  auto created = result(coord1->query(
      "profiles.create", R"({"name":"Nicky Fingers","from_form":"form-0020-abc"})"));
  const std::int64_t profile = created["profile_id"];

  auto proposed = result(coord1->query(
      "notice.propose", json{{"profile_id", profile},
                             {"incidents", {"form-0020-abc"}},
                             {"conditions", "Not to enter any member premises in Chatham"},
                             {"towns", "chatham"},
                             {"reason", "three thefts in a month"}}
                            .dump()));
  const std::int64_t notice = proposed["notice_id"];
  CHECK(proposed["state"] == "proposed");

  auto own = coord1->query("notice.approve",
                           json{{"notice_id", notice}, {"reason", "agreed"}}.dump());
  REQUIRE(own.has_error());
  CHECK(own.error().code() == v1::NOT_ALLOWED);

  auto serve_early = coord2->query("notice.serve",
                                   json{{"notice_id", notice}, {"reason", "served"}}.dump());
  REQUIRE(serve_early.has_error());

  auto approved = result(coord2->query(
      "notice.approve", json{{"notice_id", notice}, {"reason", "board agreed"}}.dump()));
  CHECK(approved["state"] == "approved");
  CHECK(approved["approved_by"] == "coord-2");
  auto served = result(coord1->query(
      "notice.serve", json{{"notice_id", notice}, {"reason", "served in person"}}.dump()));
  CHECK(served["state"] == "active");
  CHECK(served["expires_at_ms"].get<std::int64_t>() > served["served_at_ms"].get<std::int64_t>());
  CHECK(served["events"].size() == 3);
}

TEST_CASE("a query with an unknown op or malformed arguments is refused and the connection "
          "carries on") {
  Partnership p;
  auto coord = p.device("coord-1");
  auto unknown = coord->query("profiles.delete_everything", "{}");
  REQUIRE(unknown.has_error());
  CHECK(unknown.error().code() == v1::INVALID);
  auto malformed = coord->query("profiles.show", "{not json");
  REQUIRE(malformed.has_error());
  auto wrong_type = coord->query("profiles.show", R"({"profile_id":"twelve"})");
  REQUIRE(wrong_type.has_error());
  CHECK(wrong_type.error().message().rfind("profile_id", 0) == 0);
  auto missing = coord->query("profiles.show", R"({"profile_id":999})");
  REQUIRE(missing.has_error());
  auto fine = result(coord->query("profiles.list", "{}"));
  CHECK(fine.is_array());
}
