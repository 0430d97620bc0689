#include "core/forms.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <limits>
#include <set>
#include <utility>

#include "core/towns.hpp"

namespace saferlink::forms {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<Category, std::string_view>, 6> kCategoryNames{{
    {Category::theft_from_shop, "theft_from_shop"},
    {Category::violence_or_threats, "violence_or_threats"},
    {Category::anti_social_behaviour, "anti_social_behaviour"},
    {Category::criminal_damage, "criminal_damage"},
    {Category::fraud_or_counterfeit, "fraud_or_counterfeit"},
    {Category::other, "other"},
}};

constexpr std::int64_t kMsPerDay = 86'400'000;

bool form_id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == ':' || c == '-';
}

bool lower_hex_sha256(std::string_view text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// No control characters at all (one-line fields) or none but tab and line breaks.
bool free_of_controls(std::string_view text, bool multi_line) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u == 0x7f) return false;
    if (u < 0x20) {
      if (!multi_line) return false;
      if (c != '\n' && c != '\r' && c != '\t') return false;
    }
  }
  return true;
}

// Checks a text field: UTF-8, no stray control characters, at most `max` bytes. `name` is the
// field as the JSON shape spells it.
std::optional<std::string> check_text(std::string_view name, std::string_view text,
                                      std::size_t max, bool multi_line) {
  if (text.size() > max) {
    return std::string(name) + ": longer than " + std::to_string(max) + " bytes (" +
           std::to_string(text.size()) + ")";
  }
  if (!valid_utf8(text)) return std::string(name) + ": not valid UTF-8";
  if (!free_of_controls(text, multi_line)) {
    return std::string(name) +
           (multi_line ? ": contains control characters"
                       : ": must be one line without control characters");
  }
  return std::nullopt;
}

std::optional<std::string> check_town(const IncidentForm& form, const Identity& reporter,
                                      const std::vector<std::string>& towns) {
  if (form.town.empty()) return "town: required";
  if (!known_town(towns, form.town)) {
    // The town id is not echoed raw: it is untrusted and may not even be printable.
    return "town: not a town of this partnership";
  }
  switch (reporter.role) {
    case Role::shop:
      if (form.town != reporter.town) {
        return "town: a shop files only for its own town (" + reporter.town + ")";
      }
      return std::nullopt;
    case Role::police:
    case Role::cctv:
      if (!reporter.all_towns() && form.town != reporter.town) {
        return "town: " + std::string(to_string(reporter.role)) + " of " + reporter.town +
               " file only for " + reporter.town;
      }
      return std::nullopt;
    case Role::coordinator:
      return std::nullopt;
    case Role::hub:
      break;
  }
  return "reporter: the hub does not file incident forms";
}

// ---- JSON ----------------------------------------------------------------------------------

const std::set<std::string, std::less<>>& known_keys() {
  static const std::set<std::string, std::less<>> keys{
      "form_id",     "occurred_at", "occurred_at_ms", "town",       "premises",
      "category",    "description", "goods",          "value_pence", "police_ref",
      "profile_ids", "unknown_offenders", "stills"};
  return keys;
}

bool reporter_key(std::string_view key) { return key.rfind("reporter", 0) == 0; }

bool present(const json& doc, const char* key) {
  auto it = doc.find(key);
  return it != doc.end() && !it->is_null();
}

std::optional<std::string> get_string(const json& doc, const char* key, std::string& out,
                                      bool required) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) {
    if (required) return std::string(key) + ": required";
    return std::nullopt;
  }
  if (!it->is_string()) return std::string(key) + ": must be a string";
  out = it->get<std::string>();
  return std::nullopt;
}

// A JSON integer that fits std::int64_t. `what` names the field (and element) in errors.
std::optional<std::string> to_int64(const json& value, const std::string& what,
                                    std::int64_t& out) {
  if (value.is_number_unsigned()) {
    const auto u = value.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return what + ": out of range";
    }
    out = static_cast<std::int64_t>(u);
    return std::nullopt;
  }
  if (value.is_number_integer()) {
    out = value.get<std::int64_t>();
    return std::nullopt;
  }
  if (value.is_number_float()) return what + ": must be a whole number";
  return what + ": must be an integer";
}

std::optional<std::string> get_string_array(const json& doc, const char* key,
                                            std::vector<std::string>& out) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return std::nullopt;
  if (!it->is_array()) return std::string(key) + ": must be an array of strings";
  for (std::size_t i = 0; i < it->size(); ++i) {
    const auto& element = (*it)[i];
    if (!element.is_string()) {
      return std::string(key) + "[" + std::to_string(i) + "]: must be a string";
    }
    out.push_back(element.get<std::string>());
  }
  return std::nullopt;
}

std::string without_exception_prefix(const char* what) {
  std::string text(what);
  // nlohmann's messages start with "[json.exception.parse_error.101] ".
  if (!text.empty() && text.front() == '[') {
    auto end = text.find("] ");
    if (end != std::string::npos) text.erase(0, end + 2);
  }
  return text;
}

Parsed fail(std::string error) {
  Parsed p;
  p.error = std::move(error);
  return p;
}

// Digits only, exactly `count` of them, from text[pos].
bool read_digits(std::string_view text, std::size_t pos, std::size_t count, int& out) {
  if (pos + count > text.size()) return false;
  int value = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  out = value;
  return true;
}

}  // namespace

std::string_view to_string(Category category) {
  for (const auto& [value, name] : kCategoryNames) {
    if (value == category) return name;
  }
  return "unknown";
}

std::optional<Category> parse_category(std::string_view text) {
  for (const auto& [value, name] : kCategoryNames) {
    if (name == text) return value;
  }
  return std::nullopt;
}

bool valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t extra = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
      cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (i + extra >= text.size()) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0u) != 0x80u) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000)) return false;  // overlong
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;                                // surrogate
    if (cp > 0x10FFFF) return false;
    i += extra + 1;
  }
  return true;
}

std::optional<std::string> validate(const IncidentForm& form, const Identity& reporter,
                                    const std::vector<std::string>& towns, std::int64_t now_ms) {
  if (form.form_id.empty()) return "form_id: required";
  bool id_ok = form.form_id.size() >= kFormIdMin && form.form_id.size() <= kFormIdMax;
  for (char c : form.form_id) id_ok = id_ok && form_id_char(c);
  if (!id_ok) {
    return "form_id: must be 8 to 64 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'";
  }

  if (form.occurred_at_ms < kEarliestMs) return "occurred_at: before 2000-01-01";
  if (form.occurred_at_ms > now_ms + kFutureSlackMs) {
    return "occurred_at: more than 5 minutes in the future";
  }

  if (auto error = check_town(form, reporter, towns)) return error;

  if (form.premises.empty()) return "premises: required";
  if (auto error = check_text("premises", form.premises, kPremisesMax, false)) return error;

  if (!parse_category(to_string(form.category))) return "category: not a known category";

  if (form.description.empty()) return "description: required";
  if (auto error = check_text("description", form.description, kDescriptionMax, true)) {
    return error;
  }
  if (auto error = check_text("goods", form.goods, kGoodsMax, true)) return error;
  if (form.value_pence < 0) return "value_pence: must not be negative";
  if (auto error = check_text("police_ref", form.police_ref, kPoliceRefMax, false)) return error;

  if (form.profile_ids.size() > kProfileIdsMax) {
    return "profile_ids: more than " + std::to_string(kProfileIdsMax);
  }
  std::set<std::int64_t> seen_profiles;
  for (std::size_t i = 0; i < form.profile_ids.size(); ++i) {
    const auto id = form.profile_ids[i];
    const std::string where = "profile_ids[" + std::to_string(i) + "]";
    if (id <= 0) return where + ": must be a positive profile id";
    if (!seen_profiles.insert(id).second) return where + ": listed twice";
  }

  if (form.unknown_offenders.size() > kUnknownOffendersMax) {
    return "unknown_offenders: more than " + std::to_string(kUnknownOffendersMax);
  }
  for (std::size_t i = 0; i < form.unknown_offenders.size(); ++i) {
    const std::string where = "unknown_offenders[" + std::to_string(i) + "]";
    if (form.unknown_offenders[i].empty()) return where + ": empty";
    if (auto error = check_text(where, form.unknown_offenders[i], kUnknownOffenderMax, true)) {
      return error;
    }
  }

  if (form.still_sha256s.size() > kStillsMax) {
    return "stills: more than " + std::to_string(kStillsMax);
  }
  std::set<std::string_view> seen_stills;
  for (std::size_t i = 0; i < form.still_sha256s.size(); ++i) {
    const std::string where = "stills[" + std::to_string(i) + "]";
    if (!lower_hex_sha256(form.still_sha256s[i])) {
      return where + ": must be a SHA-256 in lower-case hex (64 digits)";
    }
    if (!seen_stills.insert(form.still_sha256s[i]).second) return where + ": listed twice";
  }
  return std::nullopt;
}

Parsed form_from_json(std::string_view text) {
  if (text.size() > kJsonMax) {
    return fail("form: larger than " + std::to_string(kJsonMax) + " bytes");
  }
  json doc;
  try {
    doc = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    return fail("form: not valid JSON: " + without_exception_prefix(e.what()));
  }
  if (!doc.is_object()) return fail("form: must be a JSON object");

  for (const auto& item : doc.items()) {
    const std::string& key = item.key();
    if (reporter_key(key)) {
      return fail(key + ": the reporter comes from your certificate, not from the form");
    }
    if (known_keys().find(key) == known_keys().end()) {
      // Keys are echoed only when short and printable: they are untrusted.
      const bool printable = key.size() <= 40 && free_of_controls(key, false) && valid_utf8(key);
      return fail(printable ? key + ": not a field of the incident form"
                            : std::string("form: contains a key that is not a field"));
    }
  }

  IncidentForm form;
  if (auto e = get_string(doc, "form_id", form.form_id, true)) return fail(*e);

  const bool has_text_time = present(doc, "occurred_at");
  const bool has_ms_time = present(doc, "occurred_at_ms");
  if (has_text_time && has_ms_time) {
    return fail("occurred_at: give occurred_at or occurred_at_ms, not both");
  }
  if (has_text_time) {
    const auto& value = doc.at("occurred_at");
    if (!value.is_string()) return fail("occurred_at: must be a string such as 2025-03-14T15:42:00Z");
    auto ms = parse_rfc3339_ms(value.get_ref<const std::string&>());
    if (!ms) return fail("occurred_at: not an RFC 3339 time such as 2025-03-14T15:42:00Z");
    form.occurred_at_ms = *ms;
  } else if (has_ms_time) {
    if (auto e = to_int64(doc.at("occurred_at_ms"), "occurred_at_ms", form.occurred_at_ms)) {
      return fail(*e);
    }
  } else {
    return fail("occurred_at: required");
  }

  if (auto e = get_string(doc, "town", form.town, true)) return fail(*e);
  if (auto e = get_string(doc, "premises", form.premises, true)) return fail(*e);

  std::string category;
  if (auto e = get_string(doc, "category", category, true)) return fail(*e);
  auto parsed_category = parse_category(category);
  if (!parsed_category) {
    return fail(
        "category: must be one of theft_from_shop, violence_or_threats, anti_social_behaviour, "
        "criminal_damage, fraud_or_counterfeit, other");
  }
  form.category = *parsed_category;

  if (auto e = get_string(doc, "description", form.description, true)) return fail(*e);
  if (auto e = get_string(doc, "goods", form.goods, false)) return fail(*e);
  if (present(doc, "value_pence")) {
    if (auto e = to_int64(doc.at("value_pence"), "value_pence", form.value_pence)) {
      return fail(*e);
    }
  }
  if (auto e = get_string(doc, "police_ref", form.police_ref, false)) return fail(*e);

  if (present(doc, "profile_ids")) {
    const auto& ids = doc.at("profile_ids");
    if (!ids.is_array()) return fail("profile_ids: must be an array of profile ids");
    for (std::size_t i = 0; i < ids.size(); ++i) {
      std::int64_t id = 0;
      if (auto e = to_int64(ids[i], "profile_ids[" + std::to_string(i) + "]", id)) {
        return fail(*e);
      }
      form.profile_ids.push_back(id);
    }
  }
  if (auto e = get_string_array(doc, "unknown_offenders", form.unknown_offenders)) {
    return fail(*e);
  }
  if (auto e = get_string_array(doc, "stills", form.still_sha256s)) return fail(*e);

  Parsed p;
  p.form = std::move(form);
  return p;
}

std::string form_to_json(const IncidentForm& form, int indent) {
  nlohmann::ordered_json doc;
  doc["form_id"] = form.form_id;
  // Years 0000..9999 print as RFC 3339; anything else (never a valid form) as milliseconds.
  constexpr std::int64_t kYear0 = -62'167'219'200'000;     // 0000-01-01T00:00:00Z
  constexpr std::int64_t kYear10000 = 253'402'300'800'000;  // 10000-01-01T00:00:00Z
  if (form.occurred_at_ms >= kYear0 && form.occurred_at_ms < kYear10000) {
    doc["occurred_at"] = format_rfc3339_ms(form.occurred_at_ms);
  } else {
    doc["occurred_at_ms"] = form.occurred_at_ms;
  }
  doc["town"] = form.town;
  doc["premises"] = form.premises;
  doc["category"] = std::string(to_string(form.category));
  doc["description"] = form.description;
  doc["goods"] = form.goods;
  doc["value_pence"] = form.value_pence;
  doc["police_ref"] = form.police_ref;
  doc["profile_ids"] = form.profile_ids;
  doc["unknown_offenders"] = form.unknown_offenders;
  doc["stills"] = form.still_sha256s;
  // Invalid UTF-8 (an unvalidated form) is replaced rather than thrown on.
  return doc.dump(indent, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::optional<std::int64_t> parse_rfc3339_ms(std::string_view text) {
  // YYYY-MM-DD('T'|'t'|' ')hh:mm:ss[.fraction]('Z'|'z'|('+'|'-')hh:mm)
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (text.size() < 20) return std::nullopt;
  if (!read_digits(text, 0, 4, year) || text[4] != '-' || !read_digits(text, 5, 2, month) ||
      text[7] != '-' || !read_digits(text, 8, 2, day)) {
    return std::nullopt;
  }
  if (text[10] != 'T' && text[10] != 't' && text[10] != ' ') return std::nullopt;
  if (!read_digits(text, 11, 2, hour) || text[13] != ':' || !read_digits(text, 14, 2, minute) ||
      text[16] != ':' || !read_digits(text, 17, 2, second)) {
    return std::nullopt;
  }
  if (hour > 23 || minute > 59 || second > 59) return std::nullopt;

  std::size_t pos = 19;
  std::int64_t millis = 0;
  if (text[pos] == '.') {
    ++pos;
    std::size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 3) millis = millis * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0 || digits > 9) return std::nullopt;
    for (std::size_t d = digits; d < 3; ++d) millis *= 10;
  }
  if (pos >= text.size()) return std::nullopt;

  std::int64_t offset_minutes = 0;
  if (text[pos] == 'Z' || text[pos] == 'z') {
    ++pos;
  } else if (text[pos] == '+' || text[pos] == '-') {
    const bool negative = text[pos] == '-';
    int off_h = 0, off_m = 0;
    if (!read_digits(text, pos + 1, 2, off_h) || pos + 3 >= text.size() ||
        text[pos + 3] != ':' || !read_digits(text, pos + 4, 2, off_m)) {
      return std::nullopt;
    }
    if (off_h > 23 || off_m > 59) return std::nullopt;
    offset_minutes = off_h * 60 + off_m;
    if (negative) offset_minutes = -offset_minutes;
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;

  const std::chrono::year_month_day date{std::chrono::year{year},
                                         std::chrono::month{static_cast<unsigned>(month)},
                                         std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return std::nullopt;
  const std::int64_t days = std::chrono::sys_days{date}.time_since_epoch().count();
  const std::int64_t local_ms = days * kMsPerDay + hour * 3'600'000LL + minute * 60'000LL +
                                second * 1'000LL + millis;
  return local_ms - offset_minutes * 60'000;
}

std::string format_rfc3339_ms(std::int64_t ms) {
  std::int64_t days = ms / kMsPerDay;
  std::int64_t rest = ms % kMsPerDay;
  if (rest < 0) {
    rest += kMsPerDay;
    --days;
  }
  const std::chrono::year_month_day date{
      std::chrono::sys_days{std::chrono::days{static_cast<int>(days)}}};
  const auto hour = rest / 3'600'000;
  const auto minute = rest / 60'000 % 60;
  const auto second = rest / 1'000 % 60;
  const auto millis = rest % 1'000;
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                static_cast<unsigned>(date.day()), static_cast<long long>(hour),
                static_cast<long long>(minute), static_cast<long long>(second),
                static_cast<long long>(millis));
  return buffer;
}

v1::IncidentForm to_wire(const IncidentForm& form) {
  v1::IncidentForm w;
  w.set_form_id(form.form_id);
  w.set_occurred_at_ms(form.occurred_at_ms);
  w.set_town(form.town);
  w.set_premises(form.premises);
  w.set_category(std::string(to_string(form.category)));
  w.set_description(form.description);
  w.set_goods(form.goods);
  w.set_value_pence(form.value_pence);
  w.set_police_ref(form.police_ref);
  for (auto id : form.profile_ids) w.add_profile_ids(id);
  for (const auto& d : form.unknown_offenders) w.add_unknown_offenders(d);
  for (const auto& s : form.still_sha256s) w.add_still_sha256(s);
  return w;
}

Parsed from_wire(const v1::IncidentForm& w) {
  const auto category = parse_category(w.category());
  if (!category) {
    return Parsed{std::nullopt,
                  "category: must be theft_from_shop, violence_or_threats, anti_social_behaviour, "
                  "criminal_damage, fraud_or_counterfeit or other"};
  }
  IncidentForm f;
  f.form_id = w.form_id();
  f.occurred_at_ms = w.occurred_at_ms();
  f.town = w.town();
  f.premises = w.premises();
  f.category = *category;
  f.description = w.description();
  f.goods = w.goods();
  f.value_pence = w.value_pence();
  f.police_ref = w.police_ref();
  f.profile_ids.assign(w.profile_ids().begin(), w.profile_ids().end());
  f.unknown_offenders.assign(w.unknown_offenders().begin(), w.unknown_offenders().end());
  f.still_sha256s.assign(w.still_sha256().begin(), w.still_sha256().end());
  return Parsed{std::move(f), {}};
}

}  // namespace saferlink::forms
