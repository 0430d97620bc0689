#include "core/forms.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "core/identity.hpp"
#include "core/towns.hpp"

namespace {

namespace forms = saferlink::forms;
using forms::Category;
using forms::IncidentForm;
using saferlink::Identity;
using saferlink::Role;

constexpr std::int64_t kNow = 1741966920000 + 3'600'000;  // an hour after the example incident

Identity person(Role role, std::string town, std::string id = "someone",
                std::string member = "Some Member") {
  Identity who;
  who.id = std::move(id);
  who.role = role;
  who.town = std::move(town);
  who.member = std::move(member);
  return who;
}

Identity chatham_shop() { return person(Role::shop, "chatham", "shop-chatham-01", "Boots"); }

IncidentForm valid_form() {
  IncidentForm f;
  f.form_id = "shop-chatham-01:0001";
  f.occurred_at_ms = kNow - 60'000;
  f.town = "chatham";
  f.premises = "Pentagon Centre Boots";
  f.category = Category::theft_from_shop;
  f.description = "Took razors from aisle 4.";
  return f;
}

// The error for `form` filed by a Chatham shop, or "" when it passes.
std::string error_of(const IncidentForm& form, const Identity& who = chatham_shop()) {
  auto error = forms::validate(form, who, saferlink::default_towns(), kNow);
  return error ? *error : std::string();
}

// Whether the error names `field` first, as every error must.
bool names(const std::string& error, const std::string& field) {
  return error.rfind(field + ":", 0) == 0 || error.rfind(field + "[", 0) == 0;
}

std::string read_example() {
  // tests/unit/server/test_forms.cpp -> docs/examples/incident-form.json; if the compiler was
  // given a relative path, look upwards from the working directory instead.
  namespace fs = std::filesystem;
  const fs::path relative = fs::path("docs") / "examples" / "incident-form.json";
  std::vector<fs::path> candidates{
      fs::path(__FILE__).parent_path().parent_path().parent_path().parent_path() / relative};
  for (auto dir = fs::current_path(); !dir.empty(); dir = dir.parent_path()) {
    candidates.push_back(dir / relative);
    if (dir == dir.root_path()) break;
  }
  for (const auto& path : candidates) {
    std::ifstream in(path, std::ios::binary);
    if (in.good()) {
      return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  }
  FAIL("docs/examples/incident-form.json not found");
  return {};
}

}  // namespace

TEST_CASE("forms: a complete valid form passes validation") {
  CHECK(error_of(valid_form()).empty());
}

TEST_CASE("forms: form_id is required, 8..64 characters of [A-Za-z0-9._:-]") {
  auto f = valid_form();
  f.form_id = "";
  CHECK(error_of(f) == "form_id: required");
  f.form_id = "abcdefg";  // 7
  CHECK(names(error_of(f), "form_id"));
  f.form_id = "abcdefgh";  // 8
  CHECK(error_of(f).empty());
  f.form_id = std::string(64, 'a');
  CHECK(error_of(f).empty());
  f.form_id = std::string(65, 'a');
  CHECK(names(error_of(f), "form_id"));
  f.form_id = "A-Za-z0.9_x:y";
  CHECK(error_of(f).empty());
  for (const char* bad : {"has space1", "slash/12345", "quote'12345", "uml\xc3\xa4ut123"}) {
    f.form_id = bad;
    CHECK_MESSAGE(names(error_of(f), "form_id"), bad);
  }
}

TEST_CASE("forms: occurred_at is refused before 2000 and more than 5 minutes ahead") {
  auto f = valid_form();
  f.occurred_at_ms = kNow + 5 * 60'000;
  CHECK(error_of(f).empty());
  f.occurred_at_ms = kNow + 5 * 60'000 + 1;
  CHECK(error_of(f) == "occurred_at: more than 5 minutes in the future");
  f.occurred_at_ms = forms::kEarliestMs;
  CHECK(error_of(f).empty());
  f.occurred_at_ms = forms::kEarliestMs - 1;
  CHECK(error_of(f) == "occurred_at: before 2000-01-01");
  f.occurred_at_ms = 0;
  CHECK(names(error_of(f), "occurred_at"));
}

TEST_CASE("forms: the town must be known and one the reporter may file for") {
  auto f = valid_form();
  f.town = "";
  CHECK(error_of(f) == "town: required");
  f.town = "maidstone";
  CHECK(error_of(f) == "town: not a town of this partnership");
  f.town = "all";
  CHECK(names(error_of(f), "town"));

  SUBCASE("a shop files only for its own town") {
    f.town = "strood";
    CHECK(error_of(f) == "town: a shop files only for its own town (chatham)");
    CHECK(error_of(f, person(Role::shop, "strood")).empty());
  }
  SUBCASE("police and CCTV of a town file for that town only") {
    f.town = "strood";
    CHECK(names(error_of(f, person(Role::police, "chatham")), "town"));
    CHECK(names(error_of(f, person(Role::cctv, "chatham")), "town"));
    CHECK(error_of(f, person(Role::police, "strood")).empty());
  }
  SUBCASE("police and CCTV of all towns file for any known town") {
    for (const auto& town : saferlink::default_towns()) {
      f.town = town;
      CHECK(error_of(f, person(Role::police, "all")).empty());
      CHECK(error_of(f, person(Role::cctv, "all")).empty());
    }
    f.town = "maidstone";
    CHECK(names(error_of(f, person(Role::cctv, "all")), "town"));
  }
  SUBCASE("coordinators file for any town, the hub for none") {
    f.town = "rainham";
    CHECK(error_of(f, person(Role::coordinator, "all")).empty());
    CHECK(names(error_of(f, person(Role::hub, "all")), "reporter"));
  }
}

TEST_CASE("forms: premises, description, goods and police_ref have limits") {
  auto f = valid_form();
  SUBCASE("premises") {
    f.premises = "";
    CHECK(error_of(f) == "premises: required");
    f.premises = std::string(200, 'p');
    CHECK(error_of(f).empty());
    f.premises = std::string(201, 'p');
    CHECK(error_of(f) == "premises: longer than 200 bytes (201)");
    f.premises = "two\nlines";
    CHECK(names(error_of(f), "premises"));
  }
  SUBCASE("description") {
    f.description = "";
    CHECK(error_of(f) == "description: required");
    f.description = std::string(4000, 'd');
    CHECK(error_of(f).empty());
    f.description = std::string(4001, 'd');
    CHECK(names(error_of(f), "description"));
    f.description = "line one\nline two\tand a tab";
    CHECK(error_of(f).empty());
    f.description = "bell\a";
    CHECK(names(error_of(f), "description"));
    f.description = "broken \xc3( utf-8";
    CHECK(error_of(f) == "description: not valid UTF-8");
    f.description = "overlong \xc0\xaf slash";
    CHECK(error_of(f) == "description: not valid UTF-8");
    f.description = "truncated \xe2\x82";
    CHECK(error_of(f) == "description: not valid UTF-8");
    f.description = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";  // café € 😀
    CHECK(error_of(f).empty());
  }
  SUBCASE("goods") {
    f.goods = std::string(1000, 'g');
    CHECK(error_of(f).empty());
    f.goods = std::string(1001, 'g');
    CHECK(names(error_of(f), "goods"));
  }
  SUBCASE("police_ref") {
    f.police_ref = std::string(50, '1');
    CHECK(error_of(f).empty());
    f.police_ref = std::string(51, '1');
    CHECK(names(error_of(f), "police_ref"));
  }
}

TEST_CASE("forms: value_pence must not be negative") {
  auto f = valid_form();
  f.value_pence = 0;
  CHECK(error_of(f).empty());
  f.value_pence = -1;
  CHECK(error_of(f) == "value_pence: must not be negative");
}

TEST_CASE("forms: an unknown category is refused") {
  auto f = valid_form();
  f.category = static_cast<Category>(42);
  CHECK(error_of(f) == "category: not a known category");
  for (auto c : {Category::theft_from_shop, Category::violence_or_threats,
                 Category::anti_social_behaviour, Category::criminal_damage,
                 Category::fraud_or_counterfeit, Category::other}) {
    f.category = c;
    CHECK(error_of(f).empty());
    CHECK(forms::parse_category(forms::to_string(c)) == c);
  }
  CHECK_FALSE(forms::parse_category("shoplifting"));
}

TEST_CASE("forms: at most 10 unknown offenders of at most 500 bytes each") {
  auto f = valid_form();
  f.unknown_offenders.assign(10, std::string(500, 'u'));
  CHECK(error_of(f).empty());
  f.unknown_offenders.push_back("one more");
  CHECK(error_of(f) == "unknown_offenders: more than 10");
  f.unknown_offenders = {"fine", std::string(501, 'u')};
  CHECK(names(error_of(f), "unknown_offenders"));
  CHECK(error_of(f).find("[1]") != std::string::npos);
  f.unknown_offenders = {""};
  CHECK(names(error_of(f), "unknown_offenders"));
}

TEST_CASE("forms: at most 10 distinct stills, each a lower-case SHA-256") {
  auto f = valid_form();
  for (int i = 0; i < 10; ++i) {
    f.still_sha256s.push_back(std::string(63, 'a') + static_cast<char>('0' + i));
  }
  CHECK(error_of(f).empty());
  f.still_sha256s.push_back(std::string(64, 'b'));
  CHECK(error_of(f) == "stills: more than 10");
  f.still_sha256s = {std::string(64, 'A')};
  CHECK(names(error_of(f), "stills"));
  f.still_sha256s = {std::string(63, 'a')};
  CHECK(names(error_of(f), "stills"));
  f.still_sha256s = {std::string(64, 'a'), std::string(64, 'a')};
  CHECK(error_of(f) == "stills[1]: listed twice");
}

TEST_CASE("forms: linked profile ids must be positive and distinct") {
  auto f = valid_form();
  f.profile_ids = {1, 2, 3};
  CHECK(error_of(f).empty());
  f.profile_ids = {0};
  CHECK(names(error_of(f), "profile_ids"));
  f.profile_ids = {4, 4};
  CHECK(error_of(f) == "profile_ids[1]: listed twice");
}

TEST_CASE("forms: the documented example parses, validates and round-trips") {
  const auto text = read_example();
  auto parsed = forms::form_from_json(text);
  REQUIRE_MESSAGE(parsed, parsed.error);
  const auto& f = *parsed.form;
  CHECK(f.form_id == "shop-chatham-01:2025-03-14:0001");
  CHECK(f.occurred_at_ms == 1741966920000);
  CHECK(f.town == "chatham");
  CHECK(f.category == Category::theft_from_shop);
  CHECK(f.value_pence == 53400);
  CHECK(f.police_ref == "46/12345/25");
  CHECK(f.profile_ids == std::vector<std::int64_t>{12});
  CHECK(f.unknown_offenders.size() == 1);
  CHECK(f.still_sha256s.size() == 1);
  CHECK_FALSE(f.goods.empty());
  CHECK_FALSE(f.description.empty());
  CHECK(error_of(f).empty());

  auto again = forms::form_from_json(forms::form_to_json(f, 2));
  REQUIRE_MESSAGE(again, again.error);
  CHECK(*again.form == f);
}

TEST_CASE("forms: JSON round-trips every field, milliseconds included") {
  auto f = valid_form();
  f.occurred_at_ms = 1709251199123;
  f.category = Category::fraud_or_counterfeit;
  f.goods = "counterfeit \xc2\xa3" "20 note";
  f.value_pence = 2000;
  f.police_ref = "46/1/24";
  f.profile_ids = {7, 3};
  f.unknown_offenders = {"a", "b \"quoted\"\nnext line"};
  f.still_sha256s = {std::string(64, 'c')};
  const auto text = forms::form_to_json(f);
  CHECK(text.find('\n') == std::string::npos);  // indent < 0: one line
  auto back = forms::form_from_json(text);
  REQUIRE_MESSAGE(back, back.error);
  CHECK(*back.form == f);
}

TEST_CASE("forms: JSON errors name the field") {
  const std::string base =
      R"("form_id": "abcdefgh1", "occurred_at": "2025-03-14T15:42:00Z", "town": "chatham", )"
      R"("premises": "P", "category": "other", "description": "D")";
  auto parse = [&](const std::string& extra) {
    return forms::form_from_json("{" + base + extra + "}");
  };
  REQUIRE(parse(""));

  CHECK(names(parse(R"(, "value_pence": "12")").error, "value_pence"));
  CHECK(parse(R"(, "value_pence": 12.5)").error == "value_pence: must be a whole number");
  CHECK(parse(R"(, "value_pence": 18446744073709551615)").error == "value_pence: out of range");
  CHECK(parse(R"(, "value_pence": -5)").form->value_pence == -5);  // validate() refuses it
  CHECK(parse(R"(, "goods": null)").form->goods.empty());
  CHECK(names(parse(R"(, "goods": 3)").error, "goods"));
  CHECK(names(parse(R"(, "police_ref": [])").error, "police_ref"));
  CHECK(names(parse(R"(, "profile_ids": [1, "two"])").error, "profile_ids"));
  CHECK(names(parse(R"(, "profile_ids": 1)").error, "profile_ids"));
  CHECK(names(parse(R"(, "unknown_offenders": "one")").error, "unknown_offenders"));
  CHECK(names(parse(R"(, "unknown_offenders": ["ok", 2])").error, "unknown_offenders"));
  CHECK(names(parse(R"(, "stills": [true])").error, "stills"));
  CHECK(parse(R"(, "descripton": "typo")").error == "descripton: not a field of the incident form");
  CHECK(names(parse(R"(, "reporter_id": "someone-else")").error, "reporter_id"));
  CHECK(names(parse(R"(, "occurred_at_ms": 1741966920000)").error, "occurred_at"));

  const std::vector<std::pair<std::string, std::string>> required{
      {"form_id", "\"abcdefgh1\""}, {"town", "\"chatham\""},   {"premises", "\"P\""},
      {"category", "\"other\""},    {"description", "\"D\""}};
  for (const auto& [missing, ignored] : required) {
    std::string doc = "{\"occurred_at\": \"2025-03-14T15:42:00Z\"";
    for (const auto& [key, value] : required) {
      if (key != missing) doc += ", \"" + key + "\": " + value;
    }
    doc += "}";
    CHECK_MESSAGE(forms::form_from_json(doc).error == missing + ": required", doc);
    // null is the same as absent
    CHECK(forms::form_from_json(doc.substr(0, doc.size() - 1) + ", \"" + missing + "\": null}")
              .error == missing + ": required");
  }
  CHECK(forms::form_from_json(R"({"form_id": "abcdefgh1", "town": "chatham"})").error ==
        "occurred_at: required");

  auto bad_category = forms::form_from_json(
      R"({"form_id": "abcdefgh1", "occurred_at": "2025-03-14T15:42:00Z", "town": "chatham",)"
      R"( "premises": "P", "category": "burglary", "description": "D"})");
  CHECK(names(bad_category.error, "category"));
  auto bad_time = forms::form_from_json(
      R"({"form_id": "abcdefgh1", "occurred_at": "14/03/2025 15:42"})");
  CHECK(names(bad_time.error, "occurred_at"));
}

TEST_CASE("forms: occurred_at may be given as milliseconds instead") {
  auto parsed = forms::form_from_json(
      R"({"form_id": "abcdefgh1", "occurred_at_ms": 1741966920000, "town": "chatham",)"
      R"( "premises": "P", "category": "other", "description": "D"})");
  REQUIRE_MESSAGE(parsed, parsed.error);
  CHECK(parsed.form->occurred_at_ms == 1741966920000);
}

TEST_CASE("forms: a document that is not a JSON object, or too large, is refused") {
  CHECK(forms::form_from_json("").error.rfind("form: not valid JSON", 0) == 0);
  CHECK(forms::form_from_json("{\"form_id\": ").error.rfind("form: not valid JSON", 0) == 0);
  CHECK(forms::form_from_json("[1, 2]").error == "form: must be a JSON object");
  CHECK(forms::form_from_json("\"text\"").error == "form: must be a JSON object");
  const std::string huge = "{\"description\": \"" + std::string(forms::kJsonMax, 'x') + "\"}";
  CHECK(forms::form_from_json(huge).error.rfind("form: larger than", 0) == 0);
}

TEST_CASE("forms: RFC 3339 times are read with offsets and fractions, written in UTC") {
  CHECK(forms::parse_rfc3339_ms("2000-01-01T00:00:00Z") == forms::kEarliestMs);
  CHECK(forms::parse_rfc3339_ms("2025-03-14T15:42:00Z") == 1741966920000);
  CHECK(forms::parse_rfc3339_ms("2025-03-14t15:42:00z") == 1741966920000);
  CHECK(forms::parse_rfc3339_ms("2025-03-14T16:42:00+01:00") == 1741966920000);
  CHECK(forms::parse_rfc3339_ms("2025-03-14T10:12:00-05:30") == 1741966920000);
  CHECK(forms::parse_rfc3339_ms("2024-02-29T23:59:59.123456Z") == 1709251199123);
  CHECK(forms::parse_rfc3339_ms("2024-02-29T23:59:59.1Z") == 1709251199100);
  for (const char* bad : {"2025-02-29T00:00:00Z", "2025-13-01T00:00:00Z", "2025-03-14T24:00:00Z",
                          "2025-03-14T15:42:00", "2025-03-14T15:42:00.Z", "2025-03-14",
                          "2025-03-14T15:42:00+0100", "2025-03-14T15:42:00Zjunk"}) {
    CHECK_MESSAGE(!forms::parse_rfc3339_ms(bad).has_value(), bad);
  }
  CHECK(forms::format_rfc3339_ms(1741966920000) == "2025-03-14T15:42:00.000Z");
  CHECK(forms::format_rfc3339_ms(1709251199123) == "2024-02-29T23:59:59.123Z");
  CHECK(forms::format_rfc3339_ms(-1) == "1969-12-31T23:59:59.999Z");
}
