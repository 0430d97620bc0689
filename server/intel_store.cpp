#include "server/intel_store.hpp"

#include "server/savepoint.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

#include "server/audit.hpp"

namespace saferlink::server::intel {
namespace {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

// ---- plumbing -------------------------------------------------------------------------------


Status fail(Code code, std::string error) { return Status{code, std::move(error)}; }

template <class T>
Result<T> fail_with(Code code, std::string error) {
  Result<T> r;
  r.status = fail(code, std::move(error));
  return r;
}

template <class T>
Result<T> success(T value) {
  Result<T> r;
  r.value = std::move(value);
  return r;
}

std::string role_name(const Identity& who) { return std::string(to_string(who.role)); }

void audit_row(SQLite::Database& db, const Identity& actor, std::int64_t now_ms,
               std::string action, std::string object_type, std::string object_id,
               std::string detail) {
  audit::Entry entry;
  entry.at_ms = now_ms;
  entry.actor_id = actor.id;
  entry.actor_role = role_name(actor);
  entry.action = std::move(action);
  entry.object_type = std::move(object_type);
  entry.object_id = std::move(object_id);
  entry.detail = std::move(detail);
  audit::append(db, entry);
}

bool is_coordinator(const Identity& who) { return who.role == Role::coordinator; }

Status coordinators_only(const Identity& who, const char* what) {
  if (is_coordinator(who)) return {};
  return fail(Code::refused, std::string("only a coordinator may ") + what);
}

std::size_t capped(std::size_t limit) { return std::min(limit, kMaxListLimit); }

std::int64_t as_sql_limit(std::size_t limit) { return static_cast<std::int64_t>(capped(limit)); }

std::optional<std::int64_t> optional_int(const SQLite::Column& column) {
  if (column.isNull()) return std::nullopt;
  return column.getInt64();
}

forms::Category stored_category(const std::string& text) {
  auto category = forms::parse_category(text);
  if (!category) throw std::runtime_error("stored form has unknown category '" + text + "'");
  return *category;
}

std::vector<std::string> json_strings(const std::string& text) {
  std::vector<std::string> out;
  const auto doc = json::parse(text);
  if (!doc.is_array()) throw std::runtime_error("stored list is not a JSON array");
  for (const auto& element : doc) {
    if (element.is_string()) out.push_back(element.get<std::string>());
  }
  return out;
}

std::string dump(const ojson& doc, int indent = -1) {
  return doc.dump(indent, ' ', false, ojson::error_handler_t::replace);
}

// A profile id followed through merges to the profile that holds its data now.
std::optional<std::int64_t> resolve_profile(SQLite::Database& db, std::int64_t profile_id) {
  SQLite::Statement select(db, "SELECT merged_into FROM profiles WHERE profile_id = ?");
  std::int64_t id = profile_id;
  for (int hops = 0; hops < 1000; ++hops) {
    select.reset();
    select.bind(1, id);
    if (!select.executeStep()) return std::nullopt;
    if (select.getColumn(0).isNull()) return id;
    id = select.getColumn(0).getInt64();
  }
  throw std::runtime_error("profile " + std::to_string(profile_id) + ": merge chain too long");
}

// ---- text rules shared by profile input ------------------------------------------------------

bool one_line(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

bool free_of_stray_controls(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\n' && c != '\r' && c != '\t') || u == 0x7f;
  });
}

std::optional<std::string> check_line(const std::string& field, std::string_view text,
                                      std::size_t max) {
  if (text.empty()) return field + ": required";
  if (text.size() > max) return field + ": longer than " + std::to_string(max) + " bytes";
  if (!forms::valid_utf8(text)) return field + ": not valid UTF-8";
  if (!one_line(text)) return field + ": must be one line without control characters";
  return std::nullopt;
}

std::optional<std::string> check_profile_input(const ProfileInput& input) {
  if (auto e = check_line("name", input.name, kNameMax)) return e;
  if (input.aliases.size() > kAliasesMax) {
    return "aliases: more than " + std::to_string(kAliasesMax);
  }
  std::set<std::string_view> seen;
  for (std::size_t i = 0; i < input.aliases.size(); ++i) {
    const std::string where = "aliases[" + std::to_string(i) + "]";
    if (auto e = check_line(where, input.aliases[i], kAliasMax)) return e;
    if (!seen.insert(input.aliases[i]).second) return where + ": listed twice";
  }
  if (input.description.size() > kProfileDescriptionMax) {
    return "description: longer than " + std::to_string(kProfileDescriptionMax) + " bytes";
  }
  if (!forms::valid_utf8(input.description)) return "description: not valid UTF-8";
  if (!free_of_stray_controls(input.description)) return "description: contains control characters";
  return std::nullopt;
}

bool valid_sha256(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool blob_exists(SQLite::Database& db, const std::string& sha256) {
  SQLite::Statement select(db, "SELECT 1 FROM blobs WHERE sha256 = ?");
  select.bind(1, sha256);
  return select.executeStep();
}

bool form_exists(SQLite::Database& db, const std::string& form_id) {
  SQLite::Statement select(db, "SELECT 1 FROM incident_forms WHERE form_id = ?");
  select.bind(1, form_id);
  return select.executeStep();
}

// ---- forms ----------------------------------------------------------------------------------

constexpr const char* kFormColumns =
    "form_id, reporter_id, reporter_role, reporter_member, town, premises, occurred_at_ms, "
    "category, description, goods, value_pence, police_ref, unknown_offenders, received_at_ms, "
    "reviewed_at_ms, reviewed_by";

std::string confirmation_of(const std::string& form_id, std::int64_t received_at_ms) {
  return "F-" + form_id + "@" + std::to_string(received_at_ms);
}

// The stored form with its stills and current links, or nullopt.
std::optional<StoredForm> load_form(SQLite::Database& db, const std::string& form_id) {
  SQLite::Statement select(
      db, std::string("SELECT ") + kFormColumns + " FROM incident_forms WHERE form_id = ?");
  select.bind(1, form_id);
  if (!select.executeStep()) return std::nullopt;
  StoredForm s;
  s.form.form_id = select.getColumn(0).getString();
  s.reporter_id = select.getColumn(1).getString();
  s.reporter_role = select.getColumn(2).getString();
  s.reporter_member = select.getColumn(3).getString();
  s.form.town = select.getColumn(4).getString();
  s.form.premises = select.getColumn(5).getString();
  s.form.occurred_at_ms = select.getColumn(6).getInt64();
  s.form.category = stored_category(select.getColumn(7).getString());
  s.form.description = select.getColumn(8).getString();
  s.form.goods = select.getColumn(9).getString();
  s.form.value_pence = select.getColumn(10).getInt64();
  s.form.police_ref = select.getColumn(11).getString();
  s.form.unknown_offenders = json_strings(select.getColumn(12).getString());
  s.received_at_ms = select.getColumn(13).getInt64();
  s.reviewed_at_ms = optional_int(select.getColumn(14));
  if (!select.getColumn(15).isNull()) s.reviewed_by = select.getColumn(15).getString();
  s.confirmation = confirmation_of(s.form.form_id, s.received_at_ms);

  SQLite::Statement stills(db,
                           "SELECT sha256 FROM form_stills WHERE form_id = ? ORDER BY position");
  stills.bind(1, form_id);
  while (stills.executeStep()) s.form.still_sha256s.push_back(stills.getColumn(0).getString());

  SQLite::Statement links(
      db, "SELECT profile_id FROM form_profiles WHERE form_id = ? ORDER BY profile_id");
  links.bind(1, form_id);
  while (links.executeStep()) s.form.profile_ids.push_back(links.getColumn(0).getInt64());
  return s;
}

// What the filer wrote, ignoring profile links (coordinators change those after filing).
bool same_content(const forms::IncidentForm& a, const forms::IncidentForm& b) {
  return a.form_id == b.form_id && a.occurred_at_ms == b.occurred_at_ms && a.town == b.town &&
         a.premises == b.premises && a.category == b.category &&
         a.description == b.description && a.goods == b.goods &&
         a.value_pence == b.value_pence && a.police_ref == b.police_ref &&
         a.unknown_offenders == b.unknown_offenders && a.still_sha256s == b.still_sha256s;
}

// Whether `actor` may read the form in full (and see it in lists).
Status may_read_form(const Identity& actor, const StoredForm& stored) {
  switch (actor.role) {
    case Role::coordinator:
      return {};
    case Role::police:
    case Role::cctv:
      if (actor.all_towns() || actor.town == stored.form.town) return {};
      return fail(Code::refused, role_name(actor) + " of " + actor.town +
                                     " may read only forms of " + actor.town);
    case Role::shop:
      if (stored.reporter_member == actor.member && stored.form.town == actor.town) return {};
      return fail(Code::refused, "a shop may read only the forms its own member filed");
    case Role::hub:
      break;
  }
  return fail(Code::refused, "the hub does not read incident forms");
}

void insert_link(SQLite::Database& db, const std::string& form_id, std::int64_t profile_id,
                 const Identity& actor, std::int64_t now_ms) {
  SQLite::Statement insert(db,
                           "INSERT INTO form_profiles (form_id, profile_id, linked_at_ms, "
                           "linked_by) VALUES (?, ?, ?, ?)");
  insert.bind(1, form_id);
  insert.bind(2, profile_id);
  insert.bind(3, now_ms);
  insert.bind(4, actor.id);
  insert.exec();
}

void touch_profile(SQLite::Database& db, std::int64_t profile_id, std::int64_t now_ms) {
  SQLite::Statement update(db, "UPDATE profiles SET updated_at_ms = ? WHERE profile_id = ?");
  update.bind(1, now_ms);
  update.bind(2, profile_id);
  update.exec();
}

// ---- profiles -------------------------------------------------------------------------------

struct ProfileRow {
  std::int64_t profile_id = 0;
  std::string name;
  std::string description;
  bool violent = false;
  bool weapons = false;
  std::optional<std::int64_t> merged_into;
  std::int64_t created_at_ms = 0;
  std::string created_by;
  std::int64_t updated_at_ms = 0;
};

std::optional<ProfileRow> load_profile_row(SQLite::Database& db, std::int64_t profile_id) {
  SQLite::Statement select(db,
                           "SELECT profile_id, name, description, violent, weapons, merged_into, "
                           "created_at_ms, created_by, updated_at_ms FROM profiles "
                           "WHERE profile_id = ?");
  select.bind(1, profile_id);
  if (!select.executeStep()) return std::nullopt;
  ProfileRow r;
  r.profile_id = select.getColumn(0).getInt64();
  r.name = select.getColumn(1).getString();
  r.description = select.getColumn(2).getString();
  r.violent = select.getColumn(3).getInt() != 0;
  r.weapons = select.getColumn(4).getInt() != 0;
  r.merged_into = optional_int(select.getColumn(5));
  r.created_at_ms = select.getColumn(6).getInt64();
  r.created_by = select.getColumn(7).getString();
  r.updated_at_ms = select.getColumn(8).getInt64();
  return r;
}

std::vector<std::string> load_aliases(SQLite::Database& db, std::int64_t profile_id) {
  SQLite::Statement select(
      db, "SELECT alias FROM profile_aliases WHERE profile_id = ? ORDER BY alias");
  select.bind(1, profile_id);
  std::vector<std::string> out;
  while (select.executeStep()) out.push_back(select.getColumn(0).getString());
  return out;
}

void replace_aliases(SQLite::Database& db, std::int64_t profile_id,
                     const std::vector<std::string>& aliases) {
  SQLite::Statement remove(db, "DELETE FROM profile_aliases WHERE profile_id = ?");
  remove.bind(1, profile_id);
  remove.exec();
  SQLite::Statement insert(db, "INSERT INTO profile_aliases (profile_id, alias) VALUES (?, ?)");
  for (const auto& alias : aliases) {
    insert.reset();
    insert.bind(1, profile_id);
    insert.bind(2, alias);
    insert.exec();
  }
}

// Existing, not merged: the profiles that may be changed or linked.
Status live_profile(SQLite::Database& db, std::int64_t profile_id,
                    std::optional<ProfileRow>* row_out = nullptr) {
  auto row = load_profile_row(db, profile_id);
  if (!row) return fail(Code::not_found, "no profile " + std::to_string(profile_id));
  if (row->merged_into) {
    return fail(Code::invalid, "profile " + std::to_string(profile_id) + " was merged into " +
                                   std::to_string(*row->merged_into) + ": use " +
                                   std::to_string(*row->merged_into));
  }
  if (row_out != nullptr) *row_out = std::move(row);
  return {};
}

std::int64_t insert_profile(SQLite::Database& db, const ProfileInput& input,
                            const Identity& actor, std::int64_t now_ms) {
  SQLite::Statement insert(db,
                           "INSERT INTO profiles (name, description, violent, weapons, "
                           "created_at_ms, created_by, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)");
  insert.bind(1, input.name);
  insert.bind(2, input.description);
  insert.bind(3, input.violent ? 1 : 0);
  insert.bind(4, input.weapons ? 1 : 0);
  insert.bind(5, now_ms);
  insert.bind(6, actor.id);
  insert.bind(7, now_ms);
  insert.exec();
  const std::int64_t id = db.getLastInsertRowid();
  replace_aliases(db, id, input.aliases);
  // No names in the audit log: it outlives every retention period.
  audit_row(db, actor, now_ms, "create", "profile", std::to_string(id), "");
  return id;
}

std::vector<std::string> sorted_distinct(std::vector<std::string> values) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  return values;
}

// ---- ranking --------------------------------------------------------------------------------

// One aggregate over the window's incidents; the candidate variant filters profiles with an
// open notice before aggregating and applies the thresholds after.
constexpr const char* kRankingSelect =
    "SELECT p.profile_id, p.name, p.violent, p.weapons, count(*) AS incidents, "
    "  sum(f.category = 'violence_or_threats') AS violent_incidents, "
    "  count(DISTINCT f.reporter_member) AS members, max(f.occurred_at_ms) AS last_seen, "
    "  (count(*) + 2 * sum(f.category = 'violence_or_threats')) * "
    "    (CASE WHEN p.violent OR p.weapons THEN 1.5 ELSE 1.0 END) AS score "
    "FROM incident_forms f "
    "JOIN form_profiles fp ON fp.form_id = f.form_id "
    "JOIN profiles p ON p.profile_id = fp.profile_id "
    "WHERE f.occurred_at_ms >= ?1 AND p.merged_into IS NULL ";

constexpr const char* kRankingOrder =
    "ORDER BY score DESC, incidents DESC, members DESC, last_seen DESC, p.profile_id "
    "LIMIT ?2";

constexpr const char* kCandidateFilter =
    "AND NOT EXISTS (SELECT 1 FROM notices n WHERE n.profile_id = p.profile_id "
    "  AND n.state IN ('proposed', 'approved', 'active', 'disputed')) "
    "GROUP BY p.profile_id HAVING incidents >= ?3 AND members >= ?4 ";

std::vector<ProlificEntry> read_ranking(SQLite::Statement& select) {
  std::vector<ProlificEntry> out;
  while (select.executeStep()) {
    ProlificEntry e;
    e.profile_id = select.getColumn(0).getInt64();
    e.name = select.getColumn(1).getString();
    e.violent = select.getColumn(2).getInt() != 0;
    e.weapons = select.getColumn(3).getInt() != 0;
    e.incidents = select.getColumn(4).getInt64();
    e.violent_incidents = select.getColumn(5).getInt64();
    e.members = select.getColumn(6).getInt64();
    e.last_seen_ms = select.getColumn(7).getInt64();
    e.score = select.getColumn(8).getDouble();
    out.push_back(std::move(e));
  }
  return out;
}

// ---- purge ----------------------------------------------------------------------------------

constexpr const char* kPurgeTables =
    "CREATE TEMP TABLE IF NOT EXISTS purge_forms (form_id TEXT PRIMARY KEY);"
    "CREATE TEMP TABLE IF NOT EXISTS purge_profiles (profile_id INTEGER PRIMARY KEY);"
    "CREATE TEMP TABLE IF NOT EXISTS purge_notices (notice_id INTEGER PRIMARY KEY);"
    "DELETE FROM temp.purge_forms;"
    "DELETE FROM temp.purge_profiles;"
    "DELETE FROM temp.purge_notices;";

constexpr const char* kDropPurgeTables =
    "DROP TABLE IF EXISTS temp.purge_forms; DROP TABLE IF EXISTS temp.purge_profiles;"
    "DROP TABLE IF EXISTS temp.purge_notices;";

// ?1 = cutoff: ended notices whose record has been kept long enough.
constexpr const char* kSelectPurgeNotices =
    "INSERT INTO temp.purge_notices (notice_id) SELECT notice_id FROM notices "
    "WHERE state IN ('expired', 'revoked') AND ended_at_ms IS NOT NULL AND ended_at_ms < ?1";

// ?1 = cutoff: forms received before it, not protected by an active or disputed notice (of a
// linked profile, or citing the form).
constexpr const char* kSelectPurgeForms =
    "INSERT INTO temp.purge_forms (form_id) "
    "SELECT f.form_id FROM incident_forms f WHERE f.received_at_ms < ?1 "
    "AND NOT EXISTS (SELECT 1 FROM form_profiles fp JOIN notices n ON n.profile_id = fp.profile_id "
    "  WHERE fp.form_id = f.form_id AND n.state IN ('active', 'disputed')) "
    "AND NOT EXISTS (SELECT 1 FROM notice_incidents ni JOIN notices n ON n.notice_id = ni.notice_id "
    "  WHERE ni.form_id = f.form_id AND n.state IN ('active', 'disputed'))";

// ?1 = cutoff. A tree is a live profile and every profile merged into it (transitively); it is
// purged whole when no member of it is recent, holds a notice, or keeps a form that stays.
constexpr const char* kSelectPurgeProfiles =
    "INSERT INTO temp.purge_profiles (profile_id) "
    "WITH RECURSIVE tree(root, id) AS ("
    "  SELECT profile_id, profile_id FROM profiles WHERE merged_into IS NULL AND updated_at_ms < ?1"
    "  UNION ALL"
    "  SELECT tree.root, p.profile_id FROM profiles p JOIN tree ON p.merged_into = tree.id"
    "), blocked(root) AS ("
    "  SELECT tree.root FROM tree JOIN profiles p ON p.profile_id = tree.id"
    "  WHERE p.updated_at_ms >= ?1"
    "     OR EXISTS (SELECT 1 FROM notices n WHERE n.profile_id = tree.id"
    "                AND n.notice_id NOT IN (SELECT notice_id FROM temp.purge_notices))"
    "     OR EXISTS (SELECT 1 FROM form_profiles fp WHERE fp.profile_id = tree.id"
    "                AND fp.form_id NOT IN (SELECT form_id FROM temp.purge_forms))"
    ") "
    "SELECT id FROM tree WHERE root NOT IN (SELECT root FROM blocked)";

// ?1 = grace cutoff. Images nothing will reference once the purge is done. The grace (for a
// still uploaded just before its form) does not apply to the photo of an expired or revoked
// notice: that goes at once.
constexpr const char* kSelectPurgeBlobs =
    "SELECT b.sha256 FROM blobs b WHERE (b.stored_at_ms < ?1 "
    "  OR EXISTS (SELECT 1 FROM notices n WHERE n.photo_sha256 = b.sha256 "
    "             AND n.state IN ('expired', 'revoked'))) "
    "AND NOT EXISTS (SELECT 1 FROM form_stills fs WHERE fs.sha256 = b.sha256 "
    "  AND fs.form_id NOT IN (SELECT form_id FROM temp.purge_forms)) "
    "AND NOT EXISTS (SELECT 1 FROM profile_photos pp WHERE pp.sha256 = b.sha256 "
    "  AND pp.profile_id NOT IN (SELECT profile_id FROM temp.purge_profiles)) "
    "AND NOT EXISTS (SELECT 1 FROM notices n WHERE n.photo_sha256 = b.sha256 "
    "  AND n.state NOT IN ('expired', 'revoked')) "
    "AND NOT EXISTS (SELECT 1 FROM sightings s WHERE s.photo_sha256 = b.sha256 "
    "  AND s.accepted_at_ms >= ?2) "
    "ORDER BY b.sha256";

// ---- SAR ------------------------------------------------------------------------------------

ojson profile_json(SQLite::Database& db, const ProfileRow& row) {
  ojson p;
  p["profile_id"] = row.profile_id;
  p["name"] = row.name;
  p["aliases"] = load_aliases(db, row.profile_id);
  p["description"] = row.description;
  p["violent"] = row.violent;
  p["weapons"] = row.weapons;
  p["merged_into"] = row.merged_into ? ojson(*row.merged_into) : ojson(nullptr);
  p["created_at"] = forms::format_rfc3339_ms(row.created_at_ms);
  p["created_by"] = row.created_by;
  p["updated_at"] = forms::format_rfc3339_ms(row.updated_at_ms);
  ojson photos = ojson::array();
  SQLite::Statement select(db,
                           "SELECT sha256, added_at_ms, added_by FROM profile_photos "
                           "WHERE profile_id = ? ORDER BY added_at_ms, sha256");
  select.bind(1, row.profile_id);
  while (select.executeStep()) {
    photos.push_back({{"sha256", select.getColumn(0).getString()},
                      {"added_at", forms::format_rfc3339_ms(select.getColumn(1).getInt64())},
                      {"added_by", select.getColumn(2).getString()}});
  }
  p["photos"] = std::move(photos);
  return p;
}

ojson optional_time(const SQLite::Column& column) {
  if (column.isNull()) return nullptr;
  return forms::format_rfc3339_ms(column.getInt64());
}

}  // namespace

// ---- incident forms -------------------------------------------------------------------------

InsertResult insert_form(SQLite::Database& db, const forms::IncidentForm& form,
                         const Identity& reporter, std::int64_t now_ms) {
  InsertResult result;
  Savepoint savepoint(db);

  if (auto stored = load_form(db, form.form_id)) {
    if (stored->reporter_id != reporter.id) {
      result.error = "form_id: already used by another reporter; choose a new form id";
      return result;
    }
    if (!same_content(stored->form, form)) {
      result.error =
          "form_id: already used for a different form (a retry must send the same form)";
      return result;
    }
    result.outcome = InsertOutcome::duplicate;
    result.confirmation = stored->confirmation;
    return result;
  }

  std::vector<std::int64_t> profiles;
  for (std::size_t i = 0; i < form.profile_ids.size(); ++i) {
    auto resolved = resolve_profile(db, form.profile_ids[i]);
    if (!resolved) {
      result.error = "profile_ids[" + std::to_string(i) + "]: no profile " +
                     std::to_string(form.profile_ids[i]);
      return result;
    }
    if (std::find(profiles.begin(), profiles.end(), *resolved) == profiles.end()) {
      profiles.push_back(*resolved);
    }
  }
  for (std::size_t i = 0; i < form.still_sha256s.size(); ++i) {
    if (!blob_exists(db, form.still_sha256s[i])) {
      result.error = "stills[" + std::to_string(i) + "]: image not uploaded (upload it first)";
      return result;
    }
  }

  SQLite::Statement insert(
      db,
      "INSERT INTO incident_forms (form_id, reporter_id, reporter_role, reporter_member, town, "
      "premises, occurred_at_ms, category, description, goods, value_pence, police_ref, "
      "unknown_offenders, received_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  insert.bind(1, form.form_id);
  insert.bind(2, reporter.id);
  insert.bind(3, role_name(reporter));
  insert.bind(4, reporter.member);
  insert.bind(5, form.town);
  insert.bind(6, form.premises);
  insert.bind(7, form.occurred_at_ms);
  insert.bind(8, std::string(forms::to_string(form.category)));
  insert.bind(9, form.description);
  insert.bind(10, form.goods);
  insert.bind(11, form.value_pence);
  insert.bind(12, form.police_ref);
  insert.bind(13, dump(ojson(form.unknown_offenders)));
  insert.bind(14, now_ms);
  insert.exec();

  SQLite::Statement still(db,
                          "INSERT INTO form_stills (form_id, sha256, position) VALUES (?, ?, ?)");
  for (std::size_t i = 0; i < form.still_sha256s.size(); ++i) {
    still.reset();
    still.bind(1, form.form_id);
    still.bind(2, form.still_sha256s[i]);
    still.bind(3, static_cast<std::int64_t>(i));
    still.exec();
  }
  for (auto profile_id : profiles) insert_link(db, form.form_id, profile_id, reporter, now_ms);

  audit_row(db, reporter, now_ms, "create", "form", form.form_id, "filed");
  savepoint.commit();
  result.outcome = InsertOutcome::inserted;
  result.confirmation = confirmation_of(form.form_id, now_ms);
  return result;
}

Result<StoredForm> get_form(SQLite::Database& db, const std::string& form_id,
                            const Identity& actor, std::int64_t now_ms) {
  if (actor.role == Role::hub) {
    return fail_with<StoredForm>(Code::refused, "the hub does not read incident forms");
  }
  Savepoint savepoint(db);
  auto stored = load_form(db, form_id);
  if (!stored) return fail_with<StoredForm>(Code::not_found, "no form " + form_id);
  if (auto access = may_read_form(actor, *stored); !access.ok()) {
    return fail_with<StoredForm>(access.code, access.error);
  }
  audit_row(db, actor, now_ms, "read", "form", form_id, "full");
  savepoint.commit();
  return success(std::move(*stored));
}

Result<std::vector<FormSummary>> list_forms(SQLite::Database& db, const FormFilter& filter,
                                            const Identity& actor, std::int64_t now_ms) {
  using List = std::vector<FormSummary>;
  std::optional<std::string> town = filter.town;
  std::optional<std::string> member;
  switch (actor.role) {
    case Role::coordinator:
      break;
    case Role::police:
    case Role::cctv:
      if (!actor.all_towns()) {
        if (town && *town != actor.town) {
          return fail_with<List>(Code::refused, role_name(actor) + " of " + actor.town +
                                                    " may list only forms of " + actor.town);
        }
        town = actor.town;
      }
      break;
    case Role::shop:
      if (town && *town != actor.town) {
        return fail_with<List>(Code::refused, "a shop may list only its own town's forms");
      }
      town = actor.town;
      member = actor.member;
      break;
    case Role::hub:
      return fail_with<List>(Code::refused, "the hub does not read incident forms");
  }

  // The statement is put together from fixed fragments only; every value is bound.
  std::string sql =
      "SELECT form_id, occurred_at_ms, received_at_ms, town, premises, category, "
      "reporter_member, reviewed_at_ms IS NOT NULL FROM incident_forms WHERE 1";
  if (town) sql += " AND town = :town";
  if (member) sql += " AND reporter_member = :member";
  if (filter.since_ms) sql += " AND occurred_at_ms >= :since";
  if (filter.until_ms) sql += " AND occurred_at_ms < :until";
  if (filter.category) sql += " AND category = :category";
  if (filter.unreviewed_only) sql += " AND reviewed_at_ms IS NULL";
  sql += " ORDER BY occurred_at_ms DESC, form_id LIMIT :limit";

  Savepoint savepoint(db);
  SQLite::Statement select(db, sql);
  if (town) select.bind(":town", *town);
  if (member) select.bind(":member", *member);
  if (filter.since_ms) select.bind(":since", *filter.since_ms);
  if (filter.until_ms) select.bind(":until", *filter.until_ms);
  if (filter.category) select.bind(":category", std::string(forms::to_string(*filter.category)));
  select.bind(":limit", as_sql_limit(filter.limit));

  List out;
  while (select.executeStep()) {
    FormSummary s;
    s.form_id = select.getColumn(0).getString();
    s.occurred_at_ms = select.getColumn(1).getInt64();
    s.received_at_ms = select.getColumn(2).getInt64();
    s.town = select.getColumn(3).getString();
    s.premises = select.getColumn(4).getString();
    s.category = stored_category(select.getColumn(5).getString());
    s.reporter_member = select.getColumn(6).getString();
    s.reviewed = select.getColumn(7).getInt() != 0;
    out.push_back(std::move(s));
  }

  std::string detail = "listed " + std::to_string(out.size()) + " form summaries";
  if (town) detail += "; town " + *town;
  if (filter.category) detail += "; category " + std::string(forms::to_string(*filter.category));
  if (filter.since_ms) detail += "; since " + std::to_string(*filter.since_ms);
  if (filter.until_ms) detail += "; until " + std::to_string(*filter.until_ms);
  if (filter.unreviewed_only) detail += "; unreviewed only";
  audit_row(db, actor, now_ms, "read", "form", "list", detail);
  savepoint.commit();
  return success(std::move(out));
}

Status mark_reviewed(SQLite::Database& db, const std::string& form_id, const Identity& actor,
                     std::int64_t now_ms) {
  if (auto access = coordinators_only(actor, "review incident forms"); !access.ok()) {
    return access;
  }
  Savepoint savepoint(db);
  if (!form_exists(db, form_id)) return fail(Code::not_found, "no form " + form_id);
  SQLite::Statement update(db,
                           "UPDATE incident_forms SET reviewed_at_ms = ?, reviewed_by = ? "
                           "WHERE form_id = ? AND reviewed_at_ms IS NULL");
  update.bind(1, now_ms);
  update.bind(2, actor.id);
  update.bind(3, form_id);
  if (update.exec() == 1) audit_row(db, actor, now_ms, "update", "form", form_id, "reviewed");
  savepoint.commit();
  return {};
}

// ---- offender profiles ----------------------------------------------------------------------

Result<std::int64_t> create_profile(SQLite::Database& db, const ProfileInput& input,
                                    const Identity& actor, std::int64_t now_ms) {
  if (auto access = coordinators_only(actor, "create offender profiles"); !access.ok()) {
    return fail_with<std::int64_t>(access.code, access.error);
  }
  if (auto error = check_profile_input(input)) {
    return fail_with<std::int64_t>(Code::invalid, *error);
  }
  Savepoint savepoint(db);
  const auto id = insert_profile(db, input, actor, now_ms);
  savepoint.commit();
  return success(id);
}

Result<std::int64_t> create_profile_from_form(SQLite::Database& db, const std::string& form_id,
                                              const ProfileInput& input, const Identity& actor,
                                              std::int64_t now_ms) {
  if (auto access = coordinators_only(actor, "create offender profiles"); !access.ok()) {
    return fail_with<std::int64_t>(access.code, access.error);
  }
  if (auto error = check_profile_input(input)) {
    return fail_with<std::int64_t>(Code::invalid, *error);
  }
  Savepoint savepoint(db);
  if (!form_exists(db, form_id)) {
    return fail_with<std::int64_t>(Code::not_found, "no form " + form_id);
  }
  const auto id = insert_profile(db, input, actor, now_ms);
  insert_link(db, form_id, id, actor, now_ms);
  audit_row(db, actor, now_ms, "link", "profile", std::to_string(id), "form " + form_id);
  savepoint.commit();
  return success(id);
}

Status edit_profile(SQLite::Database& db, std::int64_t profile_id, const ProfileEdit& edit,
                    const Identity& actor, std::int64_t now_ms) {
  if (auto access = coordinators_only(actor, "edit offender profiles"); !access.ok()) {
    return access;
  }
  Savepoint savepoint(db);
  std::optional<ProfileRow> row;
  if (auto live = live_profile(db, profile_id, &row); !live.ok()) return live;

  ProfileInput next{row->name, load_aliases(db, profile_id), row->description, row->violent,
                    row->weapons};
  std::vector<std::string> changed;
  if (edit.name) {
    next.name = *edit.name;
    changed.emplace_back("name");
  }
  if (edit.aliases) {
    next.aliases = *edit.aliases;
    changed.emplace_back("aliases");
  }
  if (edit.description) {
    next.description = *edit.description;
    changed.emplace_back("description");
  }
  if (edit.violent) {
    next.violent = *edit.violent;
    changed.emplace_back(*edit.violent ? "violent=1" : "violent=0");
  }
  if (edit.weapons) {
    next.weapons = *edit.weapons;
    changed.emplace_back(*edit.weapons ? "weapons=1" : "weapons=0");
  }
  if (changed.empty()) return fail(Code::invalid, "nothing to change");
  if (auto error = check_profile_input(next)) return fail(Code::invalid, *error);

  SQLite::Statement update(db,
                           "UPDATE profiles SET name = ?, description = ?, violent = ?, "
                           "weapons = ?, updated_at_ms = ? WHERE profile_id = ?");
  update.bind(1, next.name);
  update.bind(2, next.description);
  update.bind(3, next.violent ? 1 : 0);
  update.bind(4, next.weapons ? 1 : 0);
  update.bind(5, now_ms);
  update.bind(6, profile_id);
  update.exec();
  if (edit.aliases) replace_aliases(db, profile_id, next.aliases);

  std::string detail = "changed";
  for (std::size_t i = 0; i < changed.size(); ++i) detail += (i == 0 ? " " : ", ") + changed[i];
  audit_row(db, actor, now_ms, "update", "profile", std::to_string(profile_id), detail);
  savepoint.commit();
  return {};
}

Status link_form(SQLite::Database& db, const std::string& form_id, std::int64_t profile_id,
                 const Identity& actor, std::int64_t now_ms) {
  if (auto access = coordinators_only(actor, "link forms to profiles"); !access.ok()) {
    return access;
  }
  Savepoint savepoint(db);
  if (!form_exists(db, form_id)) return fail(Code::not_found, "no form " + form_id);
  if (auto live = live_profile(db, profile_id); !live.ok()) return live;
  SQLite::Statement insert(db,
                           "INSERT INTO form_profiles (form_id, profile_id, linked_at_ms, "
                           "linked_by) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING");
  insert.bind(1, form_id);
  insert.bind(2, profile_id);
  insert.bind(3, now_ms);
  insert.bind(4, actor.id);
  if (insert.exec() == 0) {
    return fail(Code::invalid, "form " + form_id + " is already linked to profile " +
                                   std::to_string(profile_id));
  }
  touch_profile(db, profile_id, now_ms);
  audit_row(db, actor, now_ms, "link", "profile", std::to_string(profile_id), "form " + form_id);
  savepoint.commit();
  return {};
}

Status unlink_form(SQLite::Database& db, const std::string& form_id, std::int64_t profile_id,
                   const Identity& actor, std::int64_t now_ms) {
  if (auto access = coordinators_only(actor, "unlink forms from profiles"); !access.ok()) {
    return access;
  }
  Savepoint savepoint(db);
  SQLite::Statement remove(db, "DELETE FROM form_profiles WHERE form_id = ? AND profile_id = ?");
  remove.bind(1, form_id);
  remove.bind(2, profile_id);
  if (remove.exec() == 0) {
    return fail(Code::invalid,
                "form " + form_id + " is not linked to profile " + std::to_string(profile_id));
  }
  touch_profile(db, profile_id, now_ms);
  audit_row(db, actor, now_ms, "unlink", "profile", std::to_string(profile_id),
            "form " + form_id);
  savepoint.commit();
  return {};
}

Status add_profile_photo(SQLite::Database& db, std::int64_t profile_id, const std::string& sha256,
                         const Identity& actor, std::int64_t now_ms) {
  if (auto access = coordinators_only(actor, "add profile photos"); !access.ok()) return access;
  if (!valid_sha256(sha256)) {
    return fail(Code::invalid, "sha256: must be 64 lower-case hex digits");
  }
  Savepoint savepoint(db);
  if (auto live = live_profile(db, profile_id); !live.ok()) return live;
  if (!blob_exists(db, sha256)) {
    return fail(Code::invalid, "sha256: image not uploaded (upload it first)");
  }
  SQLite::Statement insert(db,
                           "INSERT INTO profile_photos (profile_id, sha256, added_at_ms, "
                           "added_by) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING");
  insert.bind(1, profile_id);
  insert.bind(2, sha256);
  insert.bind(3, now_ms);
  insert.bind(4, actor.id);
  if (insert.exec() == 0) return fail(Code::invalid, "the profile already has this photo");
  touch_profile(db, profile_id, now_ms);
  audit_row(db, actor, now_ms, "update", "profile", std::to_string(profile_id),
            "photo added " + sha256);
  savepoint.commit();
  return {};
}

Status remove_profile_photo(SQLite::Database& db, std::int64_t profile_id,
                            const std::string& sha256, const Identity& actor,
                            std::int64_t now_ms) {
  if (auto access = coordinators_only(actor, "remove profile photos"); !access.ok()) {
    return access;
  }
  Savepoint savepoint(db);
  SQLite::Statement remove(db, "DELETE FROM profile_photos WHERE profile_id = ? AND sha256 = ?");
  remove.bind(1, profile_id);
  remove.bind(2, sha256);
  if (remove.exec() == 0) return fail(Code::invalid, "the profile has no such photo");
  touch_profile(db, profile_id, now_ms);
  audit_row(db, actor, now_ms, "update", "profile", std::to_string(profile_id),
            "photo removed " + sha256);
  savepoint.commit();
  return {};
}

Status merge_profiles(SQLite::Database& db, std::int64_t from, std::int64_t into,
                      const Identity& actor, std::int64_t now_ms) {
  if (auto access = coordinators_only(actor, "merge offender profiles"); !access.ok()) {
    return access;
  }
  if (from == into) return fail(Code::invalid, "a profile cannot be merged into itself");
  Savepoint savepoint(db);
  std::optional<ProfileRow> from_row;
  std::optional<ProfileRow> into_row;
  if (auto live = live_profile(db, from, &from_row); !live.ok()) return live;
  if (auto live = live_profile(db, into, &into_row); !live.ok()) return live;

  // Links keep who linked them and when; a form linked to both stays linked once.
  SQLite::Statement move_links(
      db,
      "INSERT INTO form_profiles (form_id, profile_id, linked_at_ms, linked_by) "
      "SELECT form_id, ?2, linked_at_ms, linked_by FROM form_profiles WHERE profile_id = ?1 "
      "ON CONFLICT DO NOTHING");
  SQLite::Statement drop_links(db, "DELETE FROM form_profiles WHERE profile_id = ?1");
  SQLite::Statement move_aliases(
      db,
      "INSERT INTO profile_aliases (profile_id, alias) "
      "SELECT ?2, alias FROM profile_aliases WHERE profile_id = ?1 AND alias <> ?3 "
      "UNION SELECT ?2, ?4 WHERE ?4 <> ?3 "
      "ON CONFLICT DO NOTHING");
  SQLite::Statement drop_aliases(db, "DELETE FROM profile_aliases WHERE profile_id = ?1");
  SQLite::Statement move_photos(
      db,
      "INSERT INTO profile_photos (profile_id, sha256, added_at_ms, added_by) "
      "SELECT ?2, sha256, added_at_ms, added_by FROM profile_photos WHERE profile_id = ?1 "
      "ON CONFLICT DO NOTHING");
  SQLite::Statement drop_photos(db, "DELETE FROM profile_photos WHERE profile_id = ?1");
  SQLite::Statement move_notices(db, "UPDATE notices SET profile_id = ?2 WHERE profile_id = ?1");

  move_aliases.bind(3, into_row->name);
  move_aliases.bind(4, from_row->name);
  for (SQLite::Statement* statement : {&move_links, &drop_links, &move_aliases, &drop_aliases,
                                       &move_photos, &drop_photos, &move_notices}) {
    statement->bind(1, from);
    if (statement->getBindParameterCount() >= 2) statement->bind(2, into);
    statement->exec();
  }

  SQLite::Statement flags(db,
                          "UPDATE profiles SET violent = max(violent, ?1), "
                          "weapons = max(weapons, ?2), updated_at_ms = ?3 WHERE profile_id = ?4");
  flags.bind(1, from_row->violent ? 1 : 0);
  flags.bind(2, from_row->weapons ? 1 : 0);
  flags.bind(3, now_ms);
  flags.bind(4, into);
  flags.exec();
  SQLite::Statement mark(db,
                         "UPDATE profiles SET merged_into = ?, updated_at_ms = ? "
                         "WHERE profile_id = ?");
  mark.bind(1, into);
  mark.bind(2, now_ms);
  mark.bind(3, from);
  mark.exec();

  audit_row(db, actor, now_ms, "merge", "profile", std::to_string(from),
            "merged into " + std::to_string(into));
  audit_row(db, actor, now_ms, "merge", "profile", std::to_string(into),
            "merged from " + std::to_string(from));
  savepoint.commit();
  return {};
}

Result<Profile> get_profile(SQLite::Database& db, std::int64_t profile_id, const Identity& actor,
                            std::int64_t now_ms) {
  bool summary = false;
  switch (actor.role) {
    case Role::coordinator:
      break;
    case Role::police:
    case Role::cctv:
      summary = true;
      break;
    case Role::shop:
      return fail_with<Profile>(Code::refused, "a shop may not read offender profiles");
    case Role::hub:
      return fail_with<Profile>(Code::refused, "the hub does not read offender profiles");
  }

  Savepoint savepoint(db);
  auto row = load_profile_row(db, profile_id);
  if (!row) return fail_with<Profile>(Code::not_found, "no profile " + std::to_string(profile_id));

  Profile p;
  p.profile_id = row->profile_id;
  p.name = row->name;
  p.aliases = load_aliases(db, profile_id);
  p.description = row->description;
  p.violent = row->violent;
  p.weapons = row->weapons;
  p.merged_into = row->merged_into;
  p.summary = summary;

  SQLite::Statement seen(db,
                         "SELECT min(f.occurred_at_ms), max(f.occurred_at_ms) "
                         "FROM form_profiles fp JOIN incident_forms f ON f.form_id = fp.form_id "
                         "WHERE fp.profile_id = ?");
  seen.bind(1, profile_id);
  if (seen.executeStep()) {
    if (!summary) p.first_seen_ms = optional_int(seen.getColumn(0));
    p.last_seen_ms = optional_int(seen.getColumn(1));
  }
  SQLite::Statement towns(db,
                          "SELECT DISTINCT f.town FROM form_profiles fp "
                          "JOIN incident_forms f ON f.form_id = fp.form_id "
                          "WHERE fp.profile_id = ? ORDER BY f.town");
  towns.bind(1, profile_id);
  while (towns.executeStep()) p.towns.push_back(towns.getColumn(0).getString());
  SQLite::Statement photos(db,
                           "SELECT sha256 FROM profile_photos WHERE profile_id = ? "
                           "ORDER BY added_at_ms, sha256");
  photos.bind(1, profile_id);
  while (photos.executeStep()) p.photo_sha256s.push_back(photos.getColumn(0).getString());

  if (!summary) {
    p.created_at_ms = row->created_at_ms;
    p.created_by = row->created_by;
    p.updated_at_ms = row->updated_at_ms;
    SQLite::Statement merged(
        db, "SELECT profile_id FROM profiles WHERE merged_into = ? ORDER BY profile_id");
    merged.bind(1, profile_id);
    while (merged.executeStep()) p.merged_from.push_back(merged.getColumn(0).getInt64());

    SQLite::Statement incidents(
        db,
        "SELECT f.form_id, f.occurred_at_ms, f.town, f.category, f.reporter_member "
        "FROM form_profiles fp JOIN incident_forms f ON f.form_id = fp.form_id "
        "WHERE fp.profile_id = ? ORDER BY f.occurred_at_ms, f.form_id");
    incidents.bind(1, profile_id);
    while (incidents.executeStep()) {
      LinkedIncident i;
      i.form_id = incidents.getColumn(0).getString();
      i.occurred_at_ms = incidents.getColumn(1).getInt64();
      i.town = incidents.getColumn(2).getString();
      i.category = stored_category(incidents.getColumn(3).getString());
      i.reporter_member = incidents.getColumn(4).getString();
      p.incidents.push_back(std::move(i));
    }
    SQLite::Statement notices(db,
                              "SELECT notice_id, state, served_at_ms, expires_at_ms FROM notices "
                              "WHERE profile_id = ? ORDER BY notice_id");
    notices.bind(1, profile_id);
    while (notices.executeStep()) {
      NoticeBrief n;
      n.notice_id = notices.getColumn(0).getInt64();
      n.state = notices.getColumn(1).getString();
      n.served_at_ms = optional_int(notices.getColumn(2));
      n.expires_at_ms = optional_int(notices.getColumn(3));
      p.notices.push_back(std::move(n));
    }
  }

  audit_row(db, actor, now_ms, "read", "profile", std::to_string(profile_id),
            summary ? "summary" : "full");
  savepoint.commit();
  return success(std::move(p));
}

Result<std::vector<ProfileListItem>> list_profiles(SQLite::Database& db,
                                                   const ProfileFilter& filter,
                                                   const Identity& actor, std::int64_t now_ms) {
  using List = std::vector<ProfileListItem>;
  if (actor.role == Role::shop) {
    return fail_with<List>(Code::refused, "a shop may not read offender profiles");
  }
  if (actor.role == Role::hub) {
    return fail_with<List>(Code::refused, "the hub does not read offender profiles");
  }

  Savepoint savepoint(db);
  SQLite::Statement select(
      db,
      "SELECT p.profile_id, p.name, p.violent, p.weapons, p.merged_into, "
      "  (SELECT json_group_array(a.alias) FROM profile_aliases a "
      "    WHERE a.profile_id = p.profile_id), "
      "  (SELECT max(f.occurred_at_ms) FROM form_profiles fp "
      "    JOIN incident_forms f ON f.form_id = fp.form_id WHERE fp.profile_id = p.profile_id), "
      "  (SELECT json_group_array(DISTINCT f.town) FROM form_profiles fp "
      "    JOIN incident_forms f ON f.form_id = fp.form_id WHERE fp.profile_id = p.profile_id) "
      "FROM profiles p "
      "WHERE (?1 OR p.merged_into IS NULL) "
      "  AND (?2 IS NULL OR instr(lower(p.name), lower(?2)) > 0 "
      "       OR EXISTS (SELECT 1 FROM profile_aliases a WHERE a.profile_id = p.profile_id "
      "                  AND instr(lower(a.alias), lower(?2)) > 0)) "
      "ORDER BY p.profile_id LIMIT ?3");
  select.bind(1, filter.include_merged ? 1 : 0);
  if (filter.text) {
    select.bind(2, *filter.text);
  } else {
    select.bind(2);
  }
  select.bind(3, as_sql_limit(filter.limit));

  List out;
  while (select.executeStep()) {
    ProfileListItem item;
    item.profile_id = select.getColumn(0).getInt64();
    item.name = select.getColumn(1).getString();
    item.violent = select.getColumn(2).getInt() != 0;
    item.weapons = select.getColumn(3).getInt() != 0;
    item.merged_into = optional_int(select.getColumn(4));
    item.aliases = sorted_distinct(json_strings(select.getColumn(5).getString()));
    item.last_seen_ms = optional_int(select.getColumn(6));
    item.towns = sorted_distinct(json_strings(select.getColumn(7).getString()));
    out.push_back(std::move(item));
  }
  // The search text may be a name: it is not written to the audit log.
  std::string detail = "listed " + std::to_string(out.size()) + " profiles";
  if (filter.text) detail += "; text search";
  audit_row(db, actor, now_ms, "read", "profile", "list", detail);
  savepoint.commit();
  return success(std::move(out));
}

// ---- prolific offenders and exclusion candidates --------------------------------------------

Result<std::vector<ProlificEntry>> prolific(SQLite::Database& db, const RankingOptions& options,
                                            const Identity& actor, std::int64_t now_ms) {
  using List = std::vector<ProlificEntry>;
  if (auto access = coordinators_only(actor, "rank prolific offenders"); !access.ok()) {
    return fail_with<List>(access.code, access.error);
  }
  Savepoint savepoint(db);
  SQLite::Statement select(db, std::string(kRankingSelect) + "GROUP BY p.profile_id " +
                                   kRankingOrder);
  select.bind(1, now_ms - options.window_ms);
  select.bind(2, as_sql_limit(options.limit));
  auto out = read_ranking(select);
  audit_row(db, actor, now_ms, "read", "profile", "prolific",
            "ranked " + std::to_string(out.size()) + " profiles");
  savepoint.commit();
  return success(std::move(out));
}

Result<std::vector<ProlificEntry>> exclusion_candidates(SQLite::Database& db,
                                                        const CandidateOptions& options,
                                                        const Identity& actor,
                                                        std::int64_t now_ms) {
  using List = std::vector<ProlificEntry>;
  if (auto access = coordinators_only(actor, "list exclusion candidates"); !access.ok()) {
    return fail_with<List>(access.code, access.error);
  }
  Savepoint savepoint(db);
  SQLite::Statement select(db, std::string(kRankingSelect) + kCandidateFilter + kRankingOrder);
  select.bind(1, now_ms - options.window_ms);
  select.bind(2, as_sql_limit(options.limit));
  select.bind(3, options.min_incidents);
  select.bind(4, options.min_members);
  auto out = read_ranking(select);
  audit_row(db, actor, now_ms, "read", "profile", "candidates",
            "listed " + std::to_string(out.size()) + " candidates (>= " +
                std::to_string(options.min_incidents) + " incidents at >= " +
                std::to_string(options.min_members) + " members)");
  savepoint.commit();
  return success(std::move(out));
}

// ---- retention ------------------------------------------------------------------------------

Result<PurgeReport> purge(SQLite::Database& db, std::int64_t now_ms,
                          const RetentionOptions& options, bool dry_run, const Identity& actor) {
  if (actor.role != Role::hub && actor.role != Role::coordinator) {
    return fail_with<PurgeReport>(Code::refused, "only a coordinator or the hub may purge");
  }
  const std::int64_t cutoff = now_ms - options.forms_and_profiles_ms;
  PurgeReport report;
  report.dry_run = dry_run;

  Savepoint savepoint(db);
  db.exec(kPurgeTables);

  // 1. Decide everything first, from the database as it is.
  {
    SQLite::Statement select(db, kSelectPurgeNotices);
    select.bind(1, now_ms - options.ended_notices_ms);
    select.exec();
  }
  {
    SQLite::Statement select(db, "SELECT notice_id FROM temp.purge_notices ORDER BY notice_id");
    while (select.executeStep()) report.notices.push_back(select.getColumn(0).getInt64());
  }
  {
    SQLite::Statement select(db, kSelectPurgeForms);
    select.bind(1, cutoff);
    select.exec();
  }
  {
    SQLite::Statement select(db, kSelectPurgeProfiles);
    select.bind(1, cutoff);
    select.exec();
  }
  {
    SQLite::Statement select(db, "SELECT form_id FROM temp.purge_forms ORDER BY form_id");
    while (select.executeStep()) report.forms.push_back(select.getColumn(0).getString());
  }
  {
    SQLite::Statement select(db,
                             "SELECT profile_id FROM temp.purge_profiles ORDER BY profile_id");
    while (select.executeStep()) report.profiles.push_back(select.getColumn(0).getInt64());
  }
  {
    SQLite::Statement select(db,
                             "SELECT notice_id, photo_sha256 FROM notices "
                             "WHERE state IN ('expired', 'revoked') AND photo_sha256 IS NOT NULL "
                             "ORDER BY notice_id");
    while (select.executeStep()) {
      report.notice_photos.push_back(
          NoticePhoto{select.getColumn(0).getInt64(), select.getColumn(1).getString()});
    }
  }
  {
    SQLite::Statement select(db, kSelectPurgeBlobs);
    select.bind(1, now_ms - options.unreferenced_blob_grace_ms);
    select.bind(2, cutoff);
    while (select.executeStep()) report.blobs.push_back(select.getColumn(0).getString());
  }
  {
    // Sightings are kept as long as forms: they may describe a person.
    SQLite::Statement select(
        db, "SELECT sighting_id FROM sightings WHERE accepted_at_ms < ? ORDER BY sighting_id");
    select.bind(1, cutoff);
    while (select.executeStep()) report.sightings.push_back(select.getColumn(0).getString());
  }

  if (dry_run) {
    // The savepoint's destructor rolls back the scratch tables: nothing changes, nothing is
    // audited.
    return success(std::move(report));
  }

  // 2. Remove it. Stills, links and notice citations of a form go with it (ON DELETE CASCADE),
  // and aliases and photos with a profile. All profiles of a merge tree go in one statement so
  // that merged_into never points at a removed row when the statement ends.
  db.exec("DELETE FROM notices WHERE notice_id IN (SELECT notice_id FROM temp.purge_notices)");
  db.exec("DELETE FROM incident_forms WHERE form_id IN (SELECT form_id FROM temp.purge_forms)");
  db.exec(
      "DELETE FROM profiles WHERE profile_id IN (SELECT profile_id FROM temp.purge_profiles)");
  {
    SQLite::Statement remove(db, "DELETE FROM sightings WHERE accepted_at_ms < ?");
    remove.bind(1, cutoff);
    remove.exec();
  }
  {
    SQLite::Statement unlink(db,
                             "UPDATE notices SET photo_sha256 = NULL WHERE notice_id = ? "
                             "AND state IN ('expired', 'revoked')");
    for (const auto& photo : report.notice_photos) {
      unlink.reset();
      unlink.bind(1, photo.notice_id);
      unlink.exec();
    }
  }
  {
    SQLite::Statement remove(db, "DELETE FROM blobs WHERE sha256 = ?");
    for (const auto& sha : report.blobs) {
      remove.reset();
      remove.bind(1, sha);
      remove.exec();
    }
  }
  db.exec(kDropPurgeTables);

  for (auto notice_id : report.notices) {
    audit_row(db, actor, now_ms, "purge", "notice", std::to_string(notice_id),
              "ended notice's record retention ended");
  }
  for (const auto& form_id : report.forms) {
    audit_row(db, actor, now_ms, "purge", "form", form_id, "retention period ended");
  }
  for (auto profile_id : report.profiles) {
    audit_row(db, actor, now_ms, "purge", "profile", std::to_string(profile_id),
              "retention period ended");
  }
  for (const auto& photo : report.notice_photos) {
    audit_row(db, actor, now_ms, "purge", "photo", photo.sha256,
              "unlinked from notice " + std::to_string(photo.notice_id) +
                  " (expired or revoked)");
  }
  for (const auto& sha : report.blobs) {
    audit_row(db, actor, now_ms, "purge", "photo", sha, "image deleted: no longer referenced");
  }
  if (!report.sightings.empty()) {
    audit_row(db, actor, now_ms, "purge", "sighting", std::to_string(report.sightings.size()),
              "sightings past the retention period deleted");
  }
  savepoint.commit();
  return success(std::move(report));
}

// ---- subject access -------------------------------------------------------------------------

Result<SarExport> gather_sar(SQLite::Database& db, std::int64_t profile_id, const Identity& actor,
                             std::int64_t now_ms) {
  if (auto access = coordinators_only(actor, "export subject access data"); !access.ok()) {
    return fail_with<SarExport>(access.code, access.error);
  }
  Savepoint savepoint(db);
  const auto root = resolve_profile(db, profile_id);
  if (!root) {
    return fail_with<SarExport>(Code::not_found, "no profile " + std::to_string(profile_id));
  }

  // The person: the live profile and every profile merged into it, at any depth.
  std::vector<std::int64_t> tree;
  {
    SQLite::Statement select(db,
                             "WITH RECURSIVE tree(id) AS (SELECT ?1 UNION ALL "
                             "SELECT p.profile_id FROM profiles p JOIN tree ON p.merged_into = "
                             "tree.id) SELECT id FROM tree ORDER BY id");
    select.bind(1, *root);
    while (select.executeStep()) tree.push_back(select.getColumn(0).getInt64());
  }
  json tree_ids = json::array();
  json tree_id_texts = json::array();
  for (auto id : tree) {
    tree_ids.push_back(id);
    tree_id_texts.push_back(std::to_string(id));
  }
  const std::string tree_json = tree_ids.dump();

  ojson doc;
  doc["export"] = {{"kind", "subject access request"},
                   {"profile_id", *root},
                   {"requested_profile_id", profile_id},
                   {"generated_at", forms::format_rfc3339_ms(now_ms)},
                   {"generated_by", actor.id}};

  std::set<std::string> photo_set;
  std::map<std::string, std::set<std::string>> photo_sources;

  ojson merged = ojson::array();
  for (auto id : tree) {
    auto row = load_profile_row(db, id);
    if (!row) continue;
    auto p = profile_json(db, *row);
    for (const auto& photo : p["photos"]) {
      const auto sha = photo["sha256"].get<std::string>();
      photo_set.insert(sha);
      photo_sources[sha].insert("profile photo");
    }
    if (id == *root) {
      doc["profile"] = std::move(p);
    } else {
      merged.push_back(std::move(p));
    }
  }
  doc["merged_profiles"] = std::move(merged);

  // Sightings that named the person.
  {
    ojson sightings = ojson::array();
    SQLite::Statement select(
        db,
        "SELECT sighting_id, device_id, sender_role, sender_member, town, text, location, "
        "heading, photo_sha256, possible_breach, notice_id, seen_at_ms, accepted_at_ms "
        "FROM sightings WHERE profile_id IN (SELECT value FROM json_each(?1)) "
        "ORDER BY accepted_at_ms, sighting_id");
    select.bind(1, tree_json);
    while (select.executeStep()) {
      ojson x;
      x["sighting_id"] = select.getColumn(0).getString();
      x["reported_by"] = select.getColumn(1).getString();
      x["reporter_role"] = select.getColumn(2).getString();
      x["reporter_member"] = select.getColumn(3).getString();
      x["town"] = select.getColumn(4).getString();
      x["text"] = select.getColumn(5).getString();
      x["location"] = select.getColumn(6).getString();
      x["heading"] = select.getColumn(7).getString();
      if (select.getColumn(8).isNull()) {
        x["photo_sha256"] = nullptr;
      } else {
        const auto sha = select.getColumn(8).getString();
        x["photo_sha256"] = sha;
        photo_set.insert(sha);
        photo_sources[sha].insert("sighting photo");
      }
      x["possible_breach"] = select.getColumn(9).getInt() != 0;
      x["notice_id"] =
          select.getColumn(10).isNull() ? ojson(nullptr) : ojson(select.getColumn(10).getInt64());
      x["seen_at"] = forms::format_rfc3339_ms(select.getColumn(11).getInt64());
      x["accepted_at"] = forms::format_rfc3339_ms(select.getColumn(12).getInt64());
      sightings.push_back(std::move(x));
    }
    doc["sightings"] = std::move(sightings);
  }

  // Notices of the person, with every transition and the incidents each cited.
  std::vector<std::int64_t> notice_ids;
  std::set<std::string> form_ids;
  ojson notices = ojson::array();
  {
    SQLite::Statement select(
        db,
        "SELECT notice_id, profile_id, state, conditions, towns, photo_sha256, proposed_by, "
        "proposed_at_ms, approved_by, approved_at_ms, served_at_ms, expires_at_ms, "
        "review_due_at_ms, ended_at_ms, updated_at_ms FROM notices "
        "WHERE profile_id IN (SELECT value FROM json_each(?1)) ORDER BY notice_id");
    select.bind(1, tree_json);
    SQLite::Statement events(db,
                             "SELECT from_state, to_state, by_id, at_ms, reason FROM "
                             "notice_events WHERE notice_id = ? ORDER BY id");
    SQLite::Statement cited(
        db, "SELECT form_id FROM notice_incidents WHERE notice_id = ? ORDER BY form_id");
    while (select.executeStep()) {
      ojson n;
      const auto notice_id = select.getColumn(0).getInt64();
      notice_ids.push_back(notice_id);
      n["notice_id"] = notice_id;
      n["profile_id"] = select.getColumn(1).getInt64();
      n["state"] = select.getColumn(2).getString();
      n["conditions"] = select.getColumn(3).getString();
      n["towns"] = select.getColumn(4).getString();
      if (select.getColumn(5).isNull()) {
        n["photo_sha256"] = nullptr;
      } else {
        const auto sha = select.getColumn(5).getString();
        n["photo_sha256"] = sha;
        photo_set.insert(sha);
        photo_sources[sha].insert("notice photo");
      }
      n["proposed_by"] = select.getColumn(6).getString();
      n["proposed_at"] = optional_time(select.getColumn(7));
      n["approved_by"] =
          select.getColumn(8).isNull() ? ojson(nullptr) : ojson(select.getColumn(8).getString());
      n["approved_at"] = optional_time(select.getColumn(9));
      n["served_at"] = optional_time(select.getColumn(10));
      n["expires_at"] = optional_time(select.getColumn(11));
      n["review_due_at"] = optional_time(select.getColumn(12));
      n["ended_at"] = optional_time(select.getColumn(13));
      n["updated_at"] = optional_time(select.getColumn(14));

      ojson history = ojson::array();
      events.reset();
      events.bind(1, notice_id);
      while (events.executeStep()) {
        history.push_back(
            {{"from", events.getColumn(0).isNull() ? ojson(nullptr)
                                                   : ojson(events.getColumn(0).getString())},
             {"to", events.getColumn(1).getString()},
             {"by", events.getColumn(2).getString()},
             {"at", forms::format_rfc3339_ms(events.getColumn(3).getInt64())},
             {"reason", events.getColumn(4).getString()}});
      }
      n["events"] = std::move(history);
      ojson cites = ojson::array();
      cited.reset();
      cited.bind(1, notice_id);
      while (cited.executeStep()) {
        const auto form_id = cited.getColumn(0).getString();
        cites.push_back(form_id);
        form_ids.insert(form_id);
      }
      n["cited_incidents"] = std::move(cites);
      notices.push_back(std::move(n));
    }
  }

  // Incidents: every form linked to the person, and every form a notice of theirs cited.
  {
    SQLite::Statement select(db,
                             "SELECT DISTINCT form_id FROM form_profiles "
                             "WHERE profile_id IN (SELECT value FROM json_each(?1))");
    select.bind(1, tree_json);
    while (select.executeStep()) form_ids.insert(select.getColumn(0).getString());
  }
  ojson incidents = ojson::array();
  std::vector<std::pair<std::int64_t, ojson>> ordered;
  {
    SQLite::Statement links(db,
                            "SELECT profile_id, linked_at_ms, linked_by FROM form_profiles "
                            "WHERE form_id = ? ORDER BY profile_id");
    for (const auto& form_id : form_ids) {
      auto stored = load_form(db, form_id);
      if (!stored) continue;
      auto f = ojson::parse(forms::form_to_json(stored->form));
      f["reporter_id"] = stored->reporter_id;
      f["reporter_role"] = stored->reporter_role;
      f["reporter_member"] = stored->reporter_member;
      f["received_at"] = forms::format_rfc3339_ms(stored->received_at_ms);
      f["reviewed_at"] =
          stored->reviewed_at_ms ? ojson(forms::format_rfc3339_ms(*stored->reviewed_at_ms))
                                 : ojson(nullptr);
      f["reviewed_by"] = stored->reviewed_by ? ojson(*stored->reviewed_by) : ojson(nullptr);
      f["confirmation"] = stored->confirmation;
      ojson link_rows = ojson::array();
      links.reset();
      links.bind(1, form_id);
      while (links.executeStep()) {
        link_rows.push_back(
            {{"profile_id", links.getColumn(0).getInt64()},
             {"linked_at", forms::format_rfc3339_ms(links.getColumn(1).getInt64())},
             {"linked_by", links.getColumn(2).getString()}});
      }
      f["links"] = std::move(link_rows);
      for (const auto& sha : stored->form.still_sha256s) {
        photo_set.insert(sha);
        photo_sources[sha].insert("form still");
      }
      ordered.emplace_back(stored->form.occurred_at_ms, std::move(f));
    }
  }
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& entry : ordered) incidents.push_back(std::move(entry.second));
  doc["incidents"] = std::move(incidents);
  doc["notices"] = std::move(notices);

  ojson photos = ojson::array();
  {
    SQLite::Statement blob(db, "SELECT mime, size, stored_at_ms FROM blobs WHERE sha256 = ?");
    for (const auto& sha : photo_set) {
      ojson photo;
      photo["sha256"] = sha;
      blob.reset();
      blob.bind(1, sha);
      if (blob.executeStep()) {
        photo["mime"] = blob.getColumn(0).getString();
        photo["size"] = blob.getColumn(1).getInt64();
        photo["stored_at"] = forms::format_rfc3339_ms(blob.getColumn(2).getInt64());
      }
      photo["held_as"] = photo_sources[sha];
      photos.push_back(std::move(photo));
    }
  }
  doc["photos"] = std::move(photos);

  // Who read or changed any of it, and when.
  json form_list = json::array();
  for (const auto& form_id : form_ids) form_list.push_back(form_id);
  json photo_list = json::array();
  for (const auto& sha : photo_set) photo_list.push_back(sha);
  json notice_list = json::array();
  for (auto id : notice_ids) notice_list.push_back(std::to_string(id));
  ojson access_log = ojson::array();
  {
    SQLite::Statement select(
        db,
        "SELECT seq, at_ms, actor_id, actor_role, action, object_type, object_id, detail "
        "FROM audit_log WHERE "
        "  (object_type = 'profile' AND object_id IN (SELECT value FROM json_each(?1))) "
        "  OR (object_type = 'form' AND object_id IN (SELECT value FROM json_each(?2))) "
        "  OR (object_type = 'photo' AND object_id IN (SELECT value FROM json_each(?3))) "
        "  OR (object_type = 'notice' AND object_id IN (SELECT value FROM json_each(?4))) "
        "ORDER BY seq");
    select.bind(1, tree_id_texts.dump());
    select.bind(2, form_list.dump());
    select.bind(3, photo_list.dump());
    select.bind(4, notice_list.dump());
    while (select.executeStep()) {
      access_log.push_back({{"seq", select.getColumn(0).getInt64()},
                            {"at", forms::format_rfc3339_ms(select.getColumn(1).getInt64())},
                            {"actor_id", select.getColumn(2).getString()},
                            {"actor_role", select.getColumn(3).getString()},
                            {"action", select.getColumn(4).getString()},
                            {"object_type", select.getColumn(5).getString()},
                            {"object_id", select.getColumn(6).getString()},
                            {"detail", select.getColumn(7).getString()}});
    }
  }
  const auto access_rows = access_log.size();
  doc["access_log"] = std::move(access_log);

  SarExport out;
  out.profile_id = *root;
  out.json = dump(doc, 2);
  out.photo_sha256s.assign(photo_set.begin(), photo_set.end());

  audit_row(db, actor, now_ms, "export", "profile", std::to_string(*root),
            "subject access export: " + std::to_string(ordered.size()) + " incidents, " +
                std::to_string(out.photo_sha256s.size()) + " photos, " +
                std::to_string(access_rows) + " audit rows");
  savepoint.commit();
  return success(std::move(out));
}

}  // namespace saferlink::server::intel
