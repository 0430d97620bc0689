#include "firmware-sim/scenario.hpp"

#include "core/towns.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <sstream>

namespace saferlink::sim {

namespace {

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& reason) const {
    throw ScenarioError(source_ + ": " + key + ": " + reason);
  }

  void only(const toml::table& table, const std::string& where,
            std::initializer_list<std::string_view> keys) const {
    for (const auto& [key, value] : table) {
      if (std::find(keys.begin(), keys.end(), key.str()) == keys.end()) {
        fail(where + std::string(key.str()), "unknown key");
      }
    }
  }

  double number(const toml::table& table, const std::string& where, std::string_view key,
                double fallback, double low, double high) const {
    const toml::node* node = table.get(key);
    if (node == nullptr) return fallback;
    double value = 0;
    if (auto i = node->value_exact<std::int64_t>()) {
      value = static_cast<double>(*i);
    } else if (auto d = node->value_exact<double>()) {
      value = *d;
    } else {
      fail(where + std::string(key), "must be a number");
    }
    if (!std::isfinite(value) || value < low || value > high) {
      std::ostringstream range;
      range << "must be between " << low << " and " << high << " (got " << value << ")";
      fail(where + std::string(key), range.str());
    }
    return value;
  }

  std::string text(const toml::table& table, const std::string& where, std::string_view key,
                   std::string fallback) const {
    const toml::node* node = table.get(key);
    if (node == nullptr) return fallback;
    auto value = node->value_exact<std::string>();
    if (!value) fail(where + std::string(key), "must be a string");
    return *value;
  }

  std::optional<bool> flag(const toml::table& table, const std::string& where,
                           std::string_view key) const {
    const toml::node* node = table.get(key);
    if (node == nullptr) return std::nullopt;
    auto value = node->value_exact<bool>();
    if (!value) fail(where + std::string(key), "must be true or false");
    return *value;
  }

  std::vector<std::string> strings(const toml::table& table, const std::string& where,
                                   std::string_view key) const {
    const toml::node* node = table.get(key);
    if (node == nullptr) return {};
    const toml::array* array = node->as_array();
    if (array == nullptr) fail(where + std::string(key), "must be an array of strings");
    std::vector<std::string> out;
    for (const toml::node& item : *array) {
      auto value = item.value_exact<std::string>();
      if (!value) fail(where + std::string(key), "must be an array of strings");
      out.push_back(*value);
    }
    return out;
  }

  const toml::table* table(const toml::table& parent, const std::string& where,
                           std::string_view key) const {
    const toml::node* node = parent.get(key);
    if (node == nullptr) return nullptr;
    const toml::table* t = node->as_table();
    if (t == nullptr) fail(where + std::string(key), "must be a table");
    return t;
  }

 private:
  std::string source_;
};

constexpr double kMaxSeconds = 7 * 24 * 3600.0;
constexpr double kMaxRate = 3600.0 * 100;  // a hundred per second per handset
constexpr int kMaxHandsets = 100'000;

LinkProfile read_link(const Reader& r, const toml::table& t, const std::string& where,
                      LinkProfile base) {
  r.only(t, where,
         {"latency_ms", "jitter_ms", "dropouts_per_hour", "dropout_percent", "dropout_min_s",
          "dropout_max_s", "stalls_per_hour", "stall_min_s", "stall_max_s"});
  LinkProfile l = base;
  l.latency_ms = r.number(t, where, "latency_ms", l.latency_ms, 0, 60'000);
  l.jitter_ms = r.number(t, where, "jitter_ms", l.jitter_ms, 0, 60'000);
  l.dropouts_per_hour = r.number(t, where, "dropouts_per_hour", l.dropouts_per_hour, 0, kMaxRate);
  l.dropout_percent = r.number(t, where, "dropout_percent", l.dropout_percent, 0, 100);
  l.dropout_min_s = r.number(t, where, "dropout_min_s", l.dropout_min_s, 0, kMaxSeconds);
  l.dropout_max_s = r.number(t, where, "dropout_max_s", l.dropout_max_s, 0, kMaxSeconds);
  l.stalls_per_hour = r.number(t, where, "stalls_per_hour", l.stalls_per_hour, 0, kMaxRate);
  l.stall_min_s = r.number(t, where, "stall_min_s", l.stall_min_s, 0, kMaxSeconds);
  l.stall_max_s = r.number(t, where, "stall_max_s", l.stall_max_s, 0, kMaxSeconds);
  if (l.dropout_max_s < l.dropout_min_s) {
    r.fail(where + "dropout_max_s", "must not be below dropout_min_s");
  }
  if (l.stall_max_s < l.stall_min_s) r.fail(where + "stall_max_s", "must not be below stall_min_s");
  return l;
}

int parse_status(const Reader& r, const std::string& key, const std::string& text) {
  if (text == "actual") return 1;
  if (text == "exercise") return 2;
  if (text == "test") return 3;
  r.fail(key, "must be actual, exercise or test (got \"" + text + "\")");
}

}  // namespace

int Scenario::handsets() const {
  int total = 0;
  for (const Group& g : groups) total += g.ids.empty() ? g.count : static_cast<int>(g.ids.size());
  return total;
}

Scenario parse_scenario(const std::string& text, const std::string& source,
                        const std::vector<std::string>& towns_in) {
  const std::vector<std::string>& towns = towns_in.empty() ? default_towns() : towns_in;
  Reader r(source);
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream out;
    out << source << ":" << e.source().begin.line << ": " << e.description();
    throw ScenarioError(out.str());
  }
  r.only(root, "", {"name", "description", "duration_s", "ramp_s", "drain_s", "seed",
                    "id_prefix", "handset", "link", "group"});
  Scenario s;
  s.name = r.text(root, "", "name", "");
  if (s.name.empty()) r.fail("name", "required: a short title for the report");
  s.description = r.text(root, "", "description", "");
  s.duration_s = r.number(root, "", "duration_s", s.duration_s, 1, kMaxSeconds);
  s.ramp_s = r.number(root, "", "ramp_s", s.ramp_s, 0, kMaxSeconds);
  s.drain_s = r.number(root, "", "drain_s", s.drain_s, 0, 3600);
  s.seed = static_cast<std::uint64_t>(r.number(root, "", "seed", 1, 0, 9.0e15));
  s.id_prefix = r.text(root, "", "id_prefix", s.id_prefix);
  if (!valid_id(s.id_prefix) || s.id_prefix.size() > 24) {
    r.fail("id_prefix", "use 1 to 24 characters of A-Z a-z 0-9 . _ -");
  }

  // Defaults for every group.
  Group defaults;
  if (const toml::table* h = r.table(root, "", "handset")) {
    r.only(*h, "handset.", {"hold_s", "ack_after_s", "panic_status", "member", "gallery"});
    defaults.gallery = r.flag(*h, "handset.", "gallery");
    defaults.hold_s = r.number(*h, "handset.", "hold_s", defaults.hold_s, 0, 60);
    defaults.ack_after_s = r.number(*h, "handset.", "ack_after_s", defaults.ack_after_s, -1, 3600);
    if (h->contains("panic_status")) {
      defaults.panic_status =
          parse_status(r, "handset.panic_status", r.text(*h, "handset.", "panic_status", ""));
    }
    defaults.member = r.text(*h, "handset.", "member", defaults.member);
  }
  if (const toml::table* l = r.table(root, "", "link")) {
    defaults.link = read_link(r, *l, "link.", defaults.link);
  }

  const toml::node* groups = root.get("group");
  if (groups == nullptr) r.fail("group", "required: at least one [[group]] of handsets");
  const toml::array* array = groups->as_array();
  if (array == nullptr || array->empty()) {
    r.fail("group", "must be one or more [[group]] tables");
  }
  for (std::size_t i = 0; i < array->size(); ++i) {
    const std::string where = "group[" + std::to_string(i + 1) + "].";
    const toml::table* t = (*array)[i].as_table();
    if (t == nullptr) r.fail(where.substr(0, where.size() - 1), "must be a table");
    r.only(*t, where,
           {"town", "towns", "role", "ids", "count", "member", "panics_per_hour",
            "sightings_per_hour", "ack_after_s", "hold_s", "panic_status", "link",
            "cancel_percent", "gallery"});
    Group g = defaults;
    const std::string role_text = r.text(*t, where, "role", "");
    auto role = parse_role(role_text);
    if (!role || *role == Role::hub) {
      r.fail(where + "role", "must be shop, police, cctv or coordinator (got \"" + role_text + "\")");
    }
    g.role = *role;
    std::vector<std::string> group_towns = r.strings(*t, where, "towns");
    if (t->contains("town")) {
      if (!group_towns.empty()) r.fail(where + "town", "give town or towns, not both");
      group_towns.push_back(r.text(*t, where, "town", ""));
    }
    if (group_towns.empty()) r.fail(where + "town", "required (a town id, or \"all\")");
    for (const std::string& town : group_towns) {
      if (town == kAllTowns) {
        if (g.role == Role::shop) r.fail(where + "town", "a shop belongs to one town, not \"all\"");
      } else if (!known_town(towns, town)) {
        r.fail(where + "town", "unknown town \"" + town + "\"");
      }
    }
    g.ids = r.strings(*t, where, "ids");
    for (const std::string& id : g.ids) {
      if (!valid_id(id)) r.fail(where + "ids", "invalid handset id \"" + id + "\"");
    }
    g.count = static_cast<int>(r.number(*t, where, "count", 0, 0, kMaxHandsets));
    if (t->contains("count") && !g.ids.empty()) r.fail(where + "count", "give ids or count, not both");
    if (g.ids.empty() && g.count == 0) r.fail(where + "count", "required: how many handsets (or ids)");
    if (!g.ids.empty() && group_towns.size() > 1) {
      r.fail(where + "ids", "named handsets belong to one town: use town, not towns");
    }
    g.member = r.text(*t, where, "member", g.member);
    g.panics_per_hour = r.number(*t, where, "panics_per_hour", 0, 0, kMaxRate);
    if (g.panics_per_hour > 0 && g.role != Role::shop) {
      r.fail(where + "panics_per_hour", "only shops press panic");
    }
    g.cancel_percent = r.number(*t, where, "cancel_percent", 0, 0, 100);
    if (g.cancel_percent > 0 && g.role != Role::shop) {
      r.fail(where + "cancel_percent", "only shops press panic");
    }
    g.sightings_per_hour = r.number(*t, where, "sightings_per_hour", 0, 0, kMaxRate);
    if (g.sightings_per_hour > 0 && g.role == Role::coordinator) {
      r.fail(where + "sightings_per_hour", "coordinators do not post sightings");
    }
    g.ack_after_s = r.number(*t, where, "ack_after_s", g.ack_after_s, -1, 3600);
    g.hold_s = r.number(*t, where, "hold_s", g.hold_s, 0, 60);
    if (t->contains("panic_status")) {
      g.panic_status = parse_status(r, where + "panic_status", r.text(*t, where, "panic_status", ""));
    }
    if (const toml::table* l = r.table(*t, where, "link")) {
      g.link = read_link(r, *l, where + "link.", g.link);
    }
    if (auto gallery = r.flag(*t, where, "gallery")) g.gallery = gallery;
    // Shops carry the exclusion gallery unless told otherwise; other roles only when asked.
    if (!g.gallery) g.gallery = g.role == Role::shop;
    for (const std::string& town : group_towns) {
      Group expanded = g;
      expanded.town = town;
      if (expanded.member.empty()) {
        expanded.member = "Simulated " + std::string(to_string(g.role)) + ", " + town;
      }
      s.groups.push_back(std::move(expanded));
    }
  }
  if (s.handsets() > kMaxHandsets) {
    r.fail("group", "more than " + std::to_string(kMaxHandsets) + " handsets in all");
  }
  return s;
}

Scenario load_scenario(const std::filesystem::path& path, const std::vector<std::string>& towns) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ScenarioError("cannot read scenario " + path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_scenario(buffer.str(), path.string(), towns);
}

}  // namespace saferlink::sim
