// The incident information form: what a member (or CCTV, or police) files after an incident,
// as a plain value, its validation and its JSON shape.
//
// The reporter (id, role, member organisation) is never part of the form: it comes from the
// filer's verified certificate (core/identity.hpp) and is passed beside the form.
//
// JSON shape (what `saferlink report FORM.json` reads; docs/examples/incident-form.json is a
// complete example):
//   {
//     "form_id":           "shop-chatham-01:2025-03-14:0001",  required, 8..64 of [A-Za-z0-9._:-]
//     "occurred_at":       "2025-03-14T15:42:00Z",   required (RFC 3339 with Z or ±hh:mm),
//                                                     or instead "occurred_at_ms": 1741966920000
//     "town":              "chatham",                 required, a town id
//     "premises":          "Pentagon Centre Boots",   required
//     "category":          "theft_from_shop",         required: theft_from_shop |
//                          violence_or_threats | anti_social_behaviour | criminal_damage |
//                          fraud_or_counterfeit | other
//     "description":       "...",                     required
//     "goods":             "...",                     optional, default ""
//     "value_pence":       4599,                      optional integer, default 0
//     "police_ref":        "46/12345/25",             optional, default ""
//     "profile_ids":       [12, 40],                  optional: known offender profiles
//     "unknown_offenders": ["male, 30s, ..."],        optional: descriptions of unknown ones
//     "stills":            ["<sha256 hex>", ...]      optional: CCTV stills already uploaded
//   }
// Unknown keys are refused (a misspelt "descripton" must not vanish silently), and so are
// reporter fields ("reporter_id", ...), which only the certificate may supply.
//
// Plain functions with no shared state; callable from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/identity.hpp"
#include "proto/saferlink.pb.h"

namespace saferlink::forms {

enum class Category {
  theft_from_shop,
  violence_or_threats,
  anti_social_behaviour,
  criminal_damage,
  fraud_or_counterfeit,
  other,
};

// The text names above, as stored in incident_forms.category and used in JSON.
std::string_view to_string(Category category);
std::optional<Category> parse_category(std::string_view text);

// Limits (bytes of UTF-8). Exposed so that clients and tests agree with the hub.
inline constexpr std::size_t kFormIdMin = 8;
inline constexpr std::size_t kFormIdMax = 64;
inline constexpr std::size_t kPremisesMax = 200;
inline constexpr std::size_t kDescriptionMax = 4000;
inline constexpr std::size_t kGoodsMax = 1000;
inline constexpr std::size_t kPoliceRefMax = 50;
inline constexpr std::size_t kUnknownOffenderMax = 500;
inline constexpr std::size_t kUnknownOffendersMax = 10;
inline constexpr std::size_t kStillsMax = 10;
inline constexpr std::size_t kProfileIdsMax = 20;
inline constexpr std::int64_t kFutureSlackMs = 5 * 60 * 1000;  // clocks drift
inline constexpr std::int64_t kEarliestMs = 946684800000;       // 2000-01-01T00:00:00Z
inline constexpr std::size_t kJsonMax = 64 * 1024;              // form_from_json input cap

struct IncidentForm {
  std::string form_id;  // chosen by the filer; a retry sends the same id
  std::int64_t occurred_at_ms = 0;
  std::string town;
  std::string premises;
  Category category = Category::other;
  std::string description;
  std::string goods;
  std::int64_t value_pence = 0;
  std::string police_ref;
  std::vector<std::int64_t> profile_ids;       // known offender profiles involved
  std::vector<std::string> unknown_offenders;  // descriptions of unknown offenders
  std::vector<std::string> still_sha256s;      // lower-case hex SHA-256 of uploaded stills

  bool operator==(const IncidentForm&) const = default;
};

// Checks a form filed by `reporter` against every rule; nullopt when it passes, otherwise one
// clear error that starts with the field's name ("premises: longer than 200 bytes").
//   - form_id 8..64 of [A-Za-z0-9._:-]; town, premises, description present;
//   - premises ≤ 200, description ≤ 4000, goods ≤ 1000, police_ref ≤ 50 bytes, all valid UTF-8;
//     premises and police_ref on one line (no control characters);
//   - ≤ 10 unknown offenders, each 1..500 bytes; ≤ 10 stills, each a distinct SHA-256 in
//     lower-case hex; ≤ 20 distinct positive profile ids;
//   - town in `towns`, and one the reporter may file for: a shop only its own town, police and
//     CCTV their own town or any town when theirs is "all", coordinators any town (they enter
//     forms phoned in); the hub files none;
//   - occurred_at not before 2000-01-01 and at most 5 minutes after `now_ms`;
//   - value_pence ≥ 0; category one of the six.
std::optional<std::string> validate(const IncidentForm& form, const Identity& reporter,
                                    const std::vector<std::string>& towns, std::int64_t now_ms);

// form_from_json's answer: exactly one of `form` (parsed) or `error` (non-empty, naming the
// field, or "form: ..." for the document as a whole).
struct Parsed {
  std::optional<IncidentForm> form;
  std::string error;
  explicit operator bool() const { return form.has_value(); }
};

// Parses the JSON shape above. Checks types, presence of the required keys and unknown keys;
// the rules of validate() (lengths, town, time) are left to validate().
Parsed form_from_json(std::string_view text);

// The JSON shape above, occurred_at as RFC 3339 UTC with milliseconds
// ("2025-03-14T15:42:00.000Z") so that form_from_json(form_to_json(f)) == f.
// indent < 0: one line; otherwise pretty-printed with that many spaces.
std::string form_to_json(const IncidentForm& form, int indent = -1);

// RFC 3339 helpers used by the JSON shape (UTC only on output).
std::optional<std::int64_t> parse_rfc3339_ms(std::string_view text);
std::string format_rfc3339_ms(std::int64_t ms);

// Valid UTF-8 (no overlongs, no surrogates, ≤ U+10FFFF). Shared with the intel store.
bool valid_utf8(std::string_view text);

// The form on the wire (v1::IncidentForm) and back. from_wire refuses an unknown category
// naming the field; everything else is checked by validate().
v1::IncidentForm to_wire(const IncidentForm& form);
Parsed from_wire(const v1::IncidentForm& wire);

}  // namespace saferlink::forms
