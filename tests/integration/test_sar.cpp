// Subject access and photo retention over the wire: the SAR export holds the profile, its
// incidents, its photos and who viewed it; a revoked notice's photo is gone at once.
#include "tests/support/device.hpp"
#include "tests/support/hub_fixture.hpp"
#include "tests/support/images.hpp"
#include "tests/support/pki.hpp"

#include "client/sar.hpp"
#include "core/image.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

using namespace saferlink;
using namespace saferlink::test;
using json = nlohmann::json;

namespace {

struct Store {
  Store() {
    pki.issue(Role::shop, "chatham", "shop-chatham-1", "Boots Chatham");
    pki.issue(Role::shop, "strood", "shop-strood-1", "Co-op Strood");
    pki.issue(Role::police, "chatham", "police-chatham", "Kent Police");
    pki.issue(Role::coordinator, "all", "coord-1", "Safer Medway");
    pki.issue(Role::coordinator, "all", "coord-2", "Safer Medway");
    hub = std::make_unique<HubFixture>(pki);
  }
  std::unique_ptr<TestDevice> device(const std::string& id) {
    auto d = std::make_unique<TestDevice>(pki.dir(), id, hub->address());
    d->connect();
    return d;
  }
  std::filesystem::path blob_file(const std::string& sha) const {
    return hub->hub->blob_root() / sha.substr(0, 2) / sha;
  }
  TestPki pki;
  std::unique_ptr<HubFixture> hub;
};

json result(const v1::Envelope& e) {
  INFO((e.has_error() ? e.error().message() : std::string()));
  REQUIRE(e.has_query_result());
  return json::parse(e.query_result().result_json());
}

// Files one form for Chatham and returns its id.
std::string file_form(TestDevice& shop, const std::string& form_id) {
  v1::Envelope e;
  auto* f = e.mutable_form();
  f->set_form_id(form_id);
  f->set_occurred_at_ms(now_ms() - 86'400'000);
  f->set_town("chatham");
  f->set_premises("Pentagon Centre");
  f->set_category("violence_or_threats");
  f->set_description("Threatened the cashier with a bottle");
  const auto id = shop.send(std::move(e));
  auto reply = shop.wait_for([id](const v1::Envelope& x) {
    return x.has_form_confirmed() || (x.has_error() && x.error().in_reply_to() == id);
  });
  REQUIRE(reply);
  REQUIRE(reply->has_form_confirmed());
  return form_id;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("a SAR export holds the profile, its incidents, its photos and who viewed it") {
  Store store;
  auto shop = store.device("shop-chatham-1");
  auto coord = store.device("coord-1");
  auto police = store.device("police-chatham");
  const auto form = file_form(*shop, "sar-form-0001");
  const auto photo = coord->upload(images::make_png(6, 4, false));
  REQUIRE(photo.done());
  const std::string sha = photo.stored_sha256();

  auto created = result(coord->query(
      "profiles.create", json{{"name", "Bottle Bill"}, {"from_form", form}}.dump()));
  const std::int64_t profile = created["profile_id"];
  result(coord->query("profiles.photo_add",
                      json{{"profile_id", profile}, {"sha256", sha}}.dump()));
  // A police officer reads the summary and the photo: both reads must appear in the export.
  result(police->query("profiles.show", json{{"profile_id", profile}}.dump()));
  auto piece = result(police->query("photos.get", json{{"sha256", sha}}.dump()));
  CHECK(piece["done"] == true);
  CHECK(piece["mime"] == "image/png");

  TempDir out;
  std::ostringstream printed, errors;
  client::ClientOptions options;
  options.hub = store.hub->address();
  options.certs = store.pki.dir();
  options.id = "coord-2";
  REQUIRE(client::run_sar(options, profile, out.path, printed, errors) == 0);
  INFO(errors.str());

  const auto document = out.path / ("profile-" + std::to_string(profile) + ".json");
  REQUIRE(std::filesystem::exists(document));
  const json sar = json::parse(read_file(document));
  const std::string text = sar.dump();
  CHECK(text.find("Bottle Bill") != std::string::npos);
  CHECK(text.find(form) != std::string::npos);
  CHECK(text.find("Threatened the cashier") != std::string::npos);
  CHECK(text.find("police-chatham") != std::string::npos);  // who viewed it
  // The photo is exported byte for byte as the hub holds it.
  const auto exported = out.path / "photos" / (sha + ".png");
  REQUIRE(std::filesystem::exists(exported));
  CHECK(read_file(exported) == read_file(store.blob_file(sha)));
  CHECK(sha256_hex(read_file(exported)) == sha);

  // The export itself is audited, and so was the upload of the photo.
  auto rows = result(coord->query("audit.show", json{{"actor_id", "coord-2"}}.dump()));
  bool exported_row = false;
  for (const auto& r : rows) exported_row = exported_row || r["action"] == "export";
  CHECK(exported_row);
  auto uploads = result(coord->query(
      "audit.show", json{{"object_type", "photo"}, {"object_id", sha}}.dump()));
  bool upload_row = false;
  for (const auto& r : uploads) {
    upload_row = upload_row || (r["action"] == "upload" && r["actor_id"] == "coord-1");
  }
  CHECK(upload_row);
}

TEST_CASE("a shop may not read offender photos and police may not read a form still") {
  Store store;
  auto shop = store.device("shop-chatham-1");
  auto coord = store.device("coord-1");
  auto police = store.device("police-chatham");
  const auto still = shop->upload(images::make_png(3, 3, false));
  REQUIRE(still.done());
  auto denied_shop = shop->query("photos.get", json{{"sha256", still.stored_sha256()}}.dump());
  REQUIRE(denied_shop.has_error());
  CHECK(denied_shop.error().code() == v1::NOT_ALLOWED);
  auto denied_police =
      police->query("photos.get", json{{"sha256", still.stored_sha256()}}.dump());
  REQUIRE(denied_police.has_error());
  CHECK(denied_police.error().code() == v1::NOT_ALLOWED);
  auto allowed = coord->query("photos.get", json{{"sha256", still.stored_sha256()}}.dump());
  CHECK(allowed.has_query_result());
}

TEST_CASE("revoking a notice deletes its photo at once and keeps the notice record") {
  Store store;
  auto shop = store.device("shop-chatham-1");
  auto coord1 = store.device("coord-1");
  auto coord2 = store.device("coord-2");
  const auto form = file_form(*shop, "revoke-form-0001");
  const auto photo = coord1->upload(images::make_png(5, 5, false));
  REQUIRE(photo.done());
  const std::string sha = photo.stored_sha256();
  REQUIRE(std::filesystem::exists(store.blob_file(sha)));

  auto created = result(coord1->query(
      "profiles.create", json{{"name", "Gallery Gary"}, {"from_form", form}}.dump()));
  const std::int64_t profile = created["profile_id"];
  auto proposed = result(coord1->query(
      "notice.propose", json{{"profile_id", profile},
                             {"incidents", {form}},
                             {"conditions", "Not to enter member premises"},
                             {"towns", "chatham"},
                             {"photo_sha256", sha},
                             {"reason", "violence to staff"}}
                            .dump()));
  const std::int64_t notice = proposed["notice_id"];
  result(coord2->query("notice.approve", json{{"notice_id", notice}, {"reason", "agreed"}}.dump()));
  result(coord1->query("notice.serve", json{{"notice_id", notice}, {"reason", "served"}}.dump()));
  auto revoked = result(
      coord2->query("notice.revoke", json{{"notice_id", notice}, {"reason", "appeal upheld"}}.dump()));
  CHECK(revoked["state"] == "revoked");

  // The file goes after the commit; give the hub a moment (bounded).
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (std::filesystem::exists(store.blob_file(sha)) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(10ms);
  }
  CHECK_FALSE(std::filesystem::exists(store.blob_file(sha)));
  auto shown = result(coord1->query("notice.show", json{{"notice_id", notice}}.dump()));
  CHECK(shown["state"] == "revoked");
  CHECK(shown["photo_sha256"].is_null());
  CHECK(shown["events"].size() == 4);
}

TEST_CASE("members see the gallery of their town: name, conditions, expiry and photo, and "
          "nothing once the notice is revoked") {
  Store store;
  auto shop = store.device("shop-chatham-1");
  auto strood = store.device("shop-strood-1");
  auto coord1 = store.device("coord-1");
  auto coord2 = store.device("coord-2");
  const auto form = file_form(*shop, "gallery-form-0001");
  const auto photo = coord1->upload(images::make_png(4, 4, false));
  REQUIRE(photo.done());
  auto created = result(coord1->query(
      "profiles.create", json{{"name", "Gallery Gail"}, {"from_form", form}}.dump()));
  const std::int64_t profile = created["profile_id"];
  const std::int64_t notice = result(coord1->query(
      "notice.propose", json{{"profile_id", profile},
                             {"incidents", {form}},
                             {"conditions", "Not to enter member premises in Chatham"},
                             {"towns", "chatham"},
                             {"photo_sha256", photo.stored_sha256()},
                             {"reason", "violence to staff"}}
                            .dump()))["notice_id"];
  // Not in the gallery until it is served.
  CHECK(result(shop->query("gallery", "{}")).empty());
  result(coord2->query("notice.approve", json{{"notice_id", notice}, {"reason", "ok"}}.dump()));
  result(coord1->query("notice.serve", json{{"notice_id", notice}, {"reason", "served"}}.dump()));

  const auto gallery = result(shop->query("gallery", "{}"));
  REQUIRE(gallery.size() == 1);
  CHECK(gallery[0]["name"] == "Gallery Gail");
  CHECK(gallery[0]["conditions"] == "Not to enter member premises in Chatham");
  CHECK(gallery[0]["expires_at_ms"].get<std::int64_t>() > now_ms());
  CHECK_FALSE(gallery[0].contains("incidents"));
  auto piece = shop->query("photos.get", json{{"sha256", photo.stored_sha256()}}.dump());
  CHECK(piece.has_query_result());
  // A Strood member does not carry a Chatham-only notice.
  CHECK(result(strood->query("gallery", "{}")).empty());

  result(coord2->query("notice.revoke", json{{"notice_id", notice}, {"reason", "appeal"}}.dump()));
  CHECK(result(shop->query("gallery", "{}")).empty());
  auto gone = shop->query("photos.get", json{{"sha256", photo.stored_sha256()}}.dump());
  CHECK(gone.has_error());
}
