#include "firmware-sim/scenario.hpp"

#include <doctest/doctest.h>

#include "core/towns.hpp"

#include <filesystem>
#include <string>

namespace {

using namespace saferlink;
using namespace saferlink::sim;

Scenario parse(const std::string& text) { return parse_scenario(text, "s.toml", default_towns()); }

std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const ScenarioError& e) {
    return e.what();
  }
  return "";
}

const char* kMinimal = R"(
name = "t"
[[group]]
town = "chatham"
role = "shop"
count = 3
)";

}  // namespace

TEST_CASE("a scenario with towns expands one group per town and keeps the defaults") {
  Scenario s = parse(R"(
name = "Saturday"
duration_s = 120
[handset]
ack_after_s = 4
panic_status = "test"
[link]
latency_ms = 30
[[group]]
towns = ["chatham", "strood"]
role = "shop"
count = 10
panics_per_hour = 2
[group.link]
dropout_percent = 20
[[group]]
town = "all"
role = "cctv"
ids = ["cctv-01", "cctv-02"]
)");
  REQUIRE(s.groups.size() == 3);
  CHECK(s.handsets() == 22);
  CHECK(s.duration_s == 120);
  CHECK(s.groups[0].town == "chatham");
  CHECK(s.groups[1].town == "strood");
  CHECK(s.groups[1].link.latency_ms == 30);        // from [link]
  CHECK(s.groups[1].link.dropout_percent == 20);   // from [group.link]
  CHECK(s.groups[2].link.dropout_percent == 0);
  CHECK(s.groups[2].ack_after_s == 4);
  CHECK(s.groups[0].panic_status == 3);
  CHECK(s.groups[2].ids.size() == 2);
  CHECK_FALSE(s.groups[0].member.empty());
}

TEST_CASE("scenario errors name the key and the reason") {
  CHECK(error_of("name = \"x\"") == "s.toml: group: required: at least one [[group]] of handsets");
  CHECK(error_of(std::string(kMinimal) + "colour = 3\n").find("group[1].colour: unknown key") !=
        std::string::npos);
  CHECK(error_of("name=\"x\"\nduraton_s = 3\n[[group]]\ntown=\"chatham\"\nrole=\"shop\"\ncount=1\n") ==
        "s.toml: duraton_s: unknown key");
  CHECK(error_of("name=\"x\"\n[[group]]\ntown=\"maidstone\"\nrole=\"shop\"\ncount=1\n") ==
        "s.toml: group[1].town: unknown town \"maidstone\"");
  CHECK(error_of("name=\"x\"\n[[group]]\ntown=\"all\"\nrole=\"shop\"\ncount=1\n").find(
            "a shop belongs to one town") != std::string::npos);
  CHECK(error_of("name=\"x\"\n[[group]]\ntown=\"chatham\"\nrole=\"shopkeeper\"\ncount=1\n")
            .find("group[1].role: must be shop, police, cctv or coordinator") != std::string::npos);
  CHECK(error_of("name=\"x\"\n[[group]]\ntown=\"chatham\"\nrole=\"police\"\ncount=1\npanics_per_hour=1\n")
            .find("only shops press panic") != std::string::npos);
  CHECK(error_of("name=\"x\"\n[[group]]\ntown=\"chatham\"\nrole=\"shop\"\ncount=-1\n")
            .find("group[1].count: must be between") != std::string::npos);
  CHECK(error_of("name=\"x\"\n[[group]]\ntown=\"chatham\"\nrole=\"shop\"\ncount=\"ten\"\n") ==
        "s.toml: group[1].count: must be a number");
  CHECK(error_of("name=\"x\"\n[link]\ndropout_min_s=5\ndropout_max_s=1\n[[group]]\ntown=\"chatham\"\nrole=\"shop\"\ncount=1\n") ==
        "s.toml: link.dropout_max_s: must not be below dropout_min_s");
  CHECK(error_of("name = [unclosed").rfind("s.toml:1: ", 0) == 0);
  CHECK(error_of("[[group]]\ntown=\"chatham\"\nrole=\"shop\"\ncount=1\n") ==
        "s.toml: name: required: a short title for the report");
  CHECK(error_of(std::string(kMinimal) + "ids = [\"bad id\"]\n").find("invalid handset id") !=
        std::string::npos);
}

TEST_CASE("the example scenarios parse") {
  const std::filesystem::path dir = std::filesystem::path(SIM_SCENARIO_DIR);
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".toml") continue;
    CAPTURE(entry.path().string());
    Scenario s = load_scenario(entry.path(), default_towns());
    CHECK(s.handsets() > 0);
    ++seen;
  }
  CHECK(seen >= 3);
  CHECK(load_scenario(dir / "hub-restart-10k.toml", default_towns()).handsets() == 10'000);
}

TEST_CASE("the gallery is on for shops by default and can be set per group or for all") {
  Scenario s = parse(R"(
name = "g"
[[group]]
town = "chatham"
role = "shop"
count = 1
[[group]]
town = "all"
role = "cctv"
count = 1
[[group]]
town = "strood"
role = "shop"
count = 1
gallery = false
)");
  REQUIRE(s.groups.size() == 3);
  CHECK(s.groups[0].gallery == true);
  CHECK(s.groups[1].gallery == false);
  CHECK(s.groups[2].gallery == false);
  Scenario all = parse(R"(
name = "g"
[handset]
gallery = true
[[group]]
town = "all"
role = "police"
count = 1
)");
  CHECK(all.groups[0].gallery == true);
  CHECK(error_of(std::string(kMinimal) + "gallery = \"yes\"\n") ==
        "s.toml: group[1].gallery: must be true or false");
}
