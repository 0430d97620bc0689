#include "server/queries.hpp"

#include "core/base64.hpp"

#include "server/audit.hpp"
#include "server/gallery_store.hpp"
#include "server/notice_store.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>

namespace saferlink::server::queries {

namespace {

using json = nlohmann::json;

// --- arguments --------------------------------------------------------------------------------

[[noreturn]] void invalid(const std::string& why) { throw QueryError(v1::INVALID, why); }

const json* arg(const json& args, const char* key) {
  auto it = args.find(key);
  return it == args.end() || it->is_null() ? nullptr : &*it;
}

std::string need_string(const json& args, const char* key) {
  const json* v = arg(args, key);
  if (v == nullptr) invalid(std::string(key) + ": required");
  if (!v->is_string()) invalid(std::string(key) + ": expected a string");
  return v->get<std::string>();
}

std::optional<std::string> opt_string(const json& args, const char* key) {
  const json* v = arg(args, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) invalid(std::string(key) + ": expected a string");
  return v->get<std::string>();
}

std::optional<std::int64_t> opt_int(const json& args, const char* key) {
  const json* v = arg(args, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number_integer()) invalid(std::string(key) + ": expected a whole number");
  return v->get<std::int64_t>();
}

std::int64_t need_int(const json& args, const char* key) {
  auto v = opt_int(args, key);
  if (!v) invalid(std::string(key) + ": required");
  return *v;
}

std::optional<bool> opt_bool(const json& args, const char* key) {
  const json* v = arg(args, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) invalid(std::string(key) + ": expected true or false");
  return v->get<bool>();
}

std::optional<std::vector<std::string>> opt_strings(const json& args, const char* key) {
  const json* v = arg(args, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_array()) invalid(std::string(key) + ": expected a list of strings");
  std::vector<std::string> out;
  for (const auto& item : *v) {
    if (!item.is_string()) invalid(std::string(key) + ": expected a list of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

std::size_t limit_of(const json& args, std::size_t fallback) {
  auto v = opt_int(args, "limit");
  if (!v) return fallback;
  if (*v <= 0) invalid("limit: must be positive");
  return static_cast<std::size_t>(std::min<std::int64_t>(*v, intel::kMaxListLimit));
}

// --- results ----------------------------------------------------------------------------------

v1::ErrorCode code_of(intel::Code code) {
  switch (code) {
    case intel::Code::refused: return v1::NOT_ALLOWED;
    case intel::Code::not_found: return v1::INVALID;
    default: return v1::INVALID;
  }
}

void check(const intel::Status& status) {
  if (!status.ok()) throw QueryError(code_of(status.code), status.error);
}

// Takes the result by value and returns the value by value: `const auto& x = value(f())`
// must not bind to a part of a destroyed temporary.
template <class T>
T value(intel::Result<T> result) {
  check(result.status);
  return std::move(*result.value);
}

void check(const notices::Outcome& outcome) {
  if (outcome.ok) return;
  throw QueryError(outcome.refused == notices::Refusal::not_allowed ? v1::NOT_ALLOWED : v1::INVALID,
                   outcome.refusal);
}

template <class T>
void put(json& j, const char* key, const std::optional<T>& v) {
  j[key] = v ? json(*v) : json(nullptr);
}

json to_json(const forms::IncidentForm& f) { return json::parse(forms::form_to_json(f)); }

json to_json(const intel::FormSummary& s) {
  return {{"form_id", s.form_id},
          {"occurred_at_ms", s.occurred_at_ms},
          {"received_at_ms", s.received_at_ms},
          {"town", s.town},
          {"premises", s.premises},
          {"category", std::string(forms::to_string(s.category))},
          {"reporter_member", s.reporter_member},
          {"reviewed", s.reviewed}};
}

json to_json(const intel::StoredForm& s) {
  json j = to_json(s.form);
  j["reporter_id"] = s.reporter_id;
  j["reporter_role"] = s.reporter_role;
  j["reporter_member"] = s.reporter_member;
  j["received_at_ms"] = s.received_at_ms;
  put(j, "reviewed_at_ms", s.reviewed_at_ms);
  put(j, "reviewed_by", s.reviewed_by);
  j["confirmation"] = s.confirmation;
  return j;
}

json to_json(const intel::Profile& p) {
  json j = {{"profile_id", p.profile_id},   {"name", p.name},
            {"aliases", p.aliases},         {"description", p.description},
            {"violent", p.violent},         {"weapons", p.weapons},
            {"towns", p.towns},             {"photos", p.photo_sha256s},
            {"summary", p.summary}};
  put(j, "last_seen_ms", p.last_seen_ms);
  if (p.summary) return j;
  put(j, "merged_into", p.merged_into);
  j["merged_from"] = p.merged_from;
  put(j, "first_seen_ms", p.first_seen_ms);
  json incidents = json::array();
  for (const auto& i : p.incidents) {
    incidents.push_back({{"form_id", i.form_id},
                         {"occurred_at_ms", i.occurred_at_ms},
                         {"town", i.town},
                         {"category", std::string(forms::to_string(i.category))},
                         {"reporter_member", i.reporter_member}});
  }
  j["incidents"] = incidents;
  json notice_list = json::array();
  for (const auto& n : p.notices) {
    json b = {{"notice_id", n.notice_id}, {"state", n.state}};
    put(b, "served_at_ms", n.served_at_ms);
    put(b, "expires_at_ms", n.expires_at_ms);
    notice_list.push_back(b);
  }
  j["notices"] = notice_list;
  j["created_at_ms"] = p.created_at_ms;
  j["created_by"] = p.created_by;
  j["updated_at_ms"] = p.updated_at_ms;
  return j;
}

json to_json(const intel::ProfileListItem& p) {
  json j = {{"profile_id", p.profile_id}, {"name", p.name},       {"aliases", p.aliases},
            {"violent", p.violent},       {"weapons", p.weapons}, {"towns", p.towns}};
  put(j, "merged_into", p.merged_into);
  put(j, "last_seen_ms", p.last_seen_ms);
  return j;
}

json to_json(const intel::ProlificEntry& e) {
  return {{"profile_id", e.profile_id},
          {"name", e.name},
          {"violent", e.violent},
          {"weapons", e.weapons},
          {"incidents", e.incidents},
          {"violent_incidents", e.violent_incidents},
          {"members", e.members},
          {"last_seen_ms", e.last_seen_ms},
          {"score", e.score}};
}

json to_json(const notices::Notice& n) {
  json j = {{"notice_id", n.id},
            {"profile_id", n.profile_id},
            {"state", std::string(notices::to_string(n.state))},
            {"conditions", n.conditions},
            {"towns", n.towns},
            {"proposed_by", n.proposed_by},
            {"proposed_at_ms", n.proposed_at_ms},
            {"cited_forms", n.cited_forms},
            {"updated_at_ms", n.updated_at_ms}};
  put(j, "photo_sha256", n.photo_sha256);
  put(j, "approved_by", n.approved_by);
  put(j, "approved_at_ms", n.approved_at_ms);
  put(j, "served_at_ms", n.served_at_ms);
  put(j, "expires_at_ms", n.expires_at_ms);
  put(j, "review_due_at_ms", n.review_due_at_ms);
  put(j, "review_reminded_at_ms", n.review_reminded_at_ms);
  put(j, "ended_at_ms", n.ended_at_ms);
  return j;
}

json to_json(const notices::Event& e) {
  json j = {{"to", std::string(notices::to_string(e.to))},
            {"by_id", e.by_id},
            {"at_ms", e.at_ms},
            {"reason", e.reason}};
  j["from"] = e.from ? json(std::string(notices::to_string(*e.from))) : json(nullptr);
  return j;
}

json to_json(const audit::Row& r) {
  return {{"seq", r.seq},
          {"at_ms", r.entry.at_ms},
          {"actor_id", r.entry.actor_id},
          {"actor_role", r.entry.actor_role},
          {"action", r.entry.action},
          {"object_type", r.entry.object_type},
          {"object_id", r.entry.object_id},
          {"detail", r.entry.detail},
          {"hash", r.hash}};
}

template <class T>
json array_of(const std::vector<T>& items) {
  json out = json::array();
  for (const auto& item : items) out.push_back(to_json(item));
  return out;
}

json notice_json(SQLite::Database& db, std::int64_t id) {
  auto notice = notice_store::load(db, id);
  if (!notice) invalid("notice " + std::to_string(id) + " does not exist");
  json j = to_json(*notice);
  j["events"] = array_of(notice_store::events(db, id));
  // Which handsets were sent the entry and, once it has left the gallery, which of them have
  // confirmed deleting it (entry and photo) and which have not yet.
  const bool in_gallery = notices::in_gallery(notice->state);
  json holding = json::array();
  json pending = json::array();
  json confirmed = json::array();
  for (const auto& h : gallery::holders(db, id)) {
    if (h.removed_at_ms) {
      confirmed.push_back(json{{"device_id", h.device_id}, {"at_ms", *h.removed_at_ms}});
    } else if (in_gallery) {
      holding.push_back(h.device_id);
    } else {
      pending.push_back(h.device_id);
    }
  }
  j["gallery_handsets"] = {{"holding", holding},
                           {"deletion_not_confirmed", pending},
                           {"deletion_confirmed", confirmed}};
  return j;
}

Answer of(json j) { return Answer{j.dump(), {}}; }


// One piece of a held image. Only coordinators read any image; police and CCTV read the
// photos of profiles (which their summaries name). The first piece's read is audited.
constexpr std::int64_t kPhotoPiece = 256 * 1024;

Answer photo_piece(SQLite::Database& db, const json& a, const Context& c) {
  const std::string sha = need_string(a, "sha256");
  const std::int64_t offset = opt_int(a, "offset").value_or(0);
  if (sha.size() != 64 || sha.find_first_not_of("0123456789abcdef") != std::string::npos) {
    invalid("sha256: expected 64 lower-case hex digits");
  }
  if (offset < 0) invalid("offset: must not be negative");
  SQLite::Statement held(db, "SELECT mime, size FROM blobs WHERE sha256 = ?");
  held.bind(1, sha);
  if (!held.executeStep()) invalid("no image " + sha);
  const std::string mime = held.getColumn(0).getString();
  const std::int64_t size = held.getColumn(1).getInt64();
  if (c.actor.role != Role::coordinator) {
    // Everyone may see the photo of an active notice (the gallery); police and CCTV also the
    // photos of profiles, which their summaries name.
    SQLite::Statement gallery(
        db, "SELECT 1 FROM notices WHERE photo_sha256 = ? AND state = 'active' LIMIT 1");
    gallery.bind(1, sha);
    bool allowed = gallery.executeStep();
    if (!allowed && c.actor.role != Role::shop) {
      SQLite::Statement profile_photo(db,
                                      "SELECT 1 FROM profile_photos WHERE sha256 = ? LIMIT 1");
      profile_photo.bind(1, sha);
      allowed = profile_photo.executeStep();
    }
    if (!allowed) throw QueryError(v1::NOT_ALLOWED, "you may not read this image");
  }
  if (offset > size) invalid("offset: beyond the image's " + std::to_string(size) + " bytes");
  std::ifstream in(c.blob_root / sha.substr(0, 2) / sha, std::ios::binary);
  if (!in) invalid("image " + sha + " is recorded but its file is missing");
  const std::int64_t length = std::min(kPhotoPiece, size - offset);
  std::string bytes(static_cast<std::size_t>(length), '\0');
  in.seekg(offset);
  in.read(bytes.data(), length);
  if (in.gcount() != length) invalid("image " + sha + ": its file is shorter than recorded");
  if (offset == 0) {
    audit::append(db, {c.now_ms, c.actor.id, std::string(to_string(c.actor.role)), "read",
                       "photo", sha, ""});
  }
  return of({{"sha256", sha},
             {"mime", mime},
             {"size", size},
             {"offset", offset},
             {"data_b64", base64_encode(bytes)},
             {"done", offset + length >= size}});
}

// The exclusion gallery as a person of `actor`'s town sees it: active notices that apply in
// that town (or everywhere), with what a member needs — name, photo, conditions, expiry — and
// nothing of the incident history.
Answer gallery(SQLite::Database& db, const json&, const Context& c) {
  SQLite::Statement select(
      db,
      "SELECT n.notice_id, n.profile_id, p.name, n.conditions, n.towns, n.expires_at_ms, "
      "n.photo_sha256 FROM notices n JOIN profiles p ON p.profile_id = n.profile_id "
      "WHERE n.state = 'active' ORDER BY n.notice_id");
  json out = json::array();
  while (select.executeStep()) {
    const auto towns = notices::split_towns(select.getColumn(4).getString());
    const bool applies = c.actor.all_towns() ||
                         std::find(towns.begin(), towns.end(), "all") != towns.end() ||
                         std::find(towns.begin(), towns.end(), c.actor.town) != towns.end();
    if (!applies) continue;
    json entry = {{"notice_id", select.getColumn(0).getInt64()},
                  {"profile_id", select.getColumn(1).getInt64()},
                  {"name", select.getColumn(2).getString()},
                  {"conditions", select.getColumn(3).getString()},
                  {"towns", towns},
                  {"expires_at_ms", select.getColumn(5).getInt64()}};
    entry["photo_sha256"] = select.getColumn(6).isNull() ? json(nullptr)
                                                         : json(select.getColumn(6).getString());
    out.push_back(std::move(entry));
  }
  audit::append(db, {c.now_ms, c.actor.id, std::string(to_string(c.actor.role)), "read",
                     "gallery", c.actor.town, std::to_string(out.size()) + " entries"});
  return of(out);
}

// --- ops --------------------------------------------------------------------------------------

using Handler = std::function<Answer(SQLite::Database&, const json&, const Context&)>;

struct Op {
  std::vector<Role> roles;
  Handler handler;
};


const std::vector<Role> kCoordinator{Role::coordinator};
const std::vector<Role> kResponders{Role::police, Role::cctv, Role::coordinator};
const std::vector<Role> kPeople{Role::shop, Role::police, Role::cctv, Role::coordinator};

Answer notice_transition(SQLite::Database& db, const json& args, const Context& c,
                         notices::Action action) {
  const std::int64_t id = need_int(args, "notice_id");
  const auto outcome = notice_store::apply(db, id, action, c.actor, c.now_ms,
                                           need_string(args, "reason"), c.notice_options);
  check(outcome);
  Answer answer = of(notice_json(db, id));
  if (notices::photo_must_be_purged(outcome.next.state) && outcome.next.photo_sha256) {
    // The photo of a revoked notice goes at once: the purge unlinks it and lists the image
    // for deletion unless something else still uses it.
    const auto& report = value(intel::purge(db, c.now_ms, c.retention, false, c.actor));
    answer.delete_blobs = report.blobs;
  }
  return answer;
}

const std::map<std::string, Op>& table() {
  static const std::map<std::string, Op> ops{
      {"incidents.list",
       {kPeople,
        [](SQLite::Database& db, const json& a, const Context& c) {
          intel::FormFilter filter;
          filter.town = opt_string(a, "town");
          filter.since_ms = opt_int(a, "since_ms");
          filter.until_ms = opt_int(a, "until_ms");
          if (auto category = opt_string(a, "category")) {
            filter.category = forms::parse_category(*category);
            if (!filter.category) invalid("category: unknown '" + *category + "'");
          }
          filter.unreviewed_only = opt_bool(a, "unreviewed").value_or(false);
          filter.limit = limit_of(a, 100);
          return of(array_of(value(intel::list_forms(db, filter, c.actor, c.now_ms))));
        }}},
      {"incidents.show",
       {kPeople,
        [](SQLite::Database& db, const json& a, const Context& c) {
          return of(to_json(value(intel::get_form(db, need_string(a, "form_id"), c.actor,
                                                  c.now_ms))));
        }}},
      {"incidents.review",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          const auto id = need_string(a, "form_id");
          check(intel::mark_reviewed(db, id, c.actor, c.now_ms));
          return of({{"form_id", id}, {"reviewed", true}});
        }}},
      {"profiles.list",
       {kResponders,
        [](SQLite::Database& db, const json& a, const Context& c) {
          intel::ProfileFilter filter;
          filter.text = opt_string(a, "text");
          filter.include_merged = opt_bool(a, "include_merged").value_or(false);
          filter.limit = limit_of(a, 100);
          return of(array_of(value(intel::list_profiles(db, filter, c.actor, c.now_ms))));
        }}},
      {"profiles.show",
       {kResponders,
        [](SQLite::Database& db, const json& a, const Context& c) {
          return of(to_json(
              value(intel::get_profile(db, need_int(a, "profile_id"), c.actor, c.now_ms))));
        }}},
      {"profiles.create",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          intel::ProfileInput input;
          input.name = need_string(a, "name");
          input.aliases = opt_strings(a, "aliases").value_or(std::vector<std::string>{});
          input.description = opt_string(a, "description").value_or("");
          input.violent = opt_bool(a, "violent").value_or(false);
          input.weapons = opt_bool(a, "weapons").value_or(false);
          auto from_form = opt_string(a, "from_form");
          const std::int64_t id =
              from_form ? value(intel::create_profile_from_form(db, *from_form, input, c.actor,
                                                                 c.now_ms))
                        : value(intel::create_profile(db, input, c.actor, c.now_ms));
          return of(to_json(value(intel::get_profile(db, id, c.actor, c.now_ms))));
        }}},
      {"profiles.edit",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          const std::int64_t id = need_int(a, "profile_id");
          intel::ProfileEdit edit;
          edit.name = opt_string(a, "name");
          edit.aliases = opt_strings(a, "aliases");
          edit.description = opt_string(a, "description");
          edit.violent = opt_bool(a, "violent");
          edit.weapons = opt_bool(a, "weapons");
          check(intel::edit_profile(db, id, edit, c.actor, c.now_ms));
          return of(to_json(value(intel::get_profile(db, id, c.actor, c.now_ms))));
        }}},
      {"profiles.link",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          check(intel::link_form(db, need_string(a, "form_id"), need_int(a, "profile_id"),
                                 c.actor, c.now_ms));
          return of({{"linked", true}});
        }}},
      {"profiles.unlink",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          check(intel::unlink_form(db, need_string(a, "form_id"), need_int(a, "profile_id"),
                                   c.actor, c.now_ms));
          return of({{"unlinked", true}});
        }}},
      {"profiles.merge",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          const std::int64_t into = need_int(a, "into");
          check(intel::merge_profiles(db, need_int(a, "from"), into, c.actor, c.now_ms));
          return of(to_json(value(intel::get_profile(db, into, c.actor, c.now_ms))));
        }}},
      {"profiles.photo_add",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          const std::int64_t id = need_int(a, "profile_id");
          check(intel::add_profile_photo(db, id, need_string(a, "sha256"), c.actor, c.now_ms));
          return of(to_json(value(intel::get_profile(db, id, c.actor, c.now_ms))));
        }}},
      {"profiles.photo_remove",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          const std::int64_t id = need_int(a, "profile_id");
          check(intel::remove_profile_photo(db, id, need_string(a, "sha256"), c.actor, c.now_ms));
          return of(to_json(value(intel::get_profile(db, id, c.actor, c.now_ms))));
        }}},
      {"prolific",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          intel::RankingOptions options;
          options.limit = limit_of(a, options.limit);
          return of(array_of(value(intel::prolific(db, options, c.actor, c.now_ms))));
        }}},
      {"candidates",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          intel::CandidateOptions options = c.candidates;
          if (auto n = opt_int(a, "min_incidents")) options.min_incidents = *n;
          if (auto n = opt_int(a, "min_members")) options.min_members = *n;
          options.limit = limit_of(a, options.limit);
          return of(array_of(value(intel::exclusion_candidates(db, options, c.actor, c.now_ms))));
        }}},
      {"notice.propose",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          notices::Proposal proposal;
          proposal.profile_id = need_int(a, "profile_id");
          proposal.conditions = need_string(a, "conditions");
          proposal.towns = notices::split_towns(opt_string(a, "towns").value_or("all"));
          proposal.photo_sha256 = opt_string(a, "photo_sha256");
          proposal.cited_forms =
              opt_strings(a, "incidents").value_or(std::vector<std::string>{});
          auto outcome = notice_store::create(db, proposal, c.actor, c.now_ms,
                                              need_string(a, "reason"), c.notice_options);
          check(outcome);
          return of(notice_json(db, outcome.next.id));
        }}},
      {"notice.approve",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          return notice_transition(db, a, c, notices::Action::approve);
        }}},
      {"notice.serve",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          return notice_transition(db, a, c, notices::Action::serve);
        }}},
      {"notice.dispute",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          return notice_transition(db, a, c, notices::Action::dispute);
        }}},
      {"notice.revoke",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          return notice_transition(db, a, c, notices::Action::revoke);
        }}},
      {"notice.resolve",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          const std::string outcome = need_string(a, "outcome");
          if (outcome != "active" && outcome != "revoked") {
            invalid("outcome: must be active or revoked");
          }
          return notice_transition(db, a, c,
                                   outcome == "active" ? notices::Action::resolve_active
                                                       : notices::Action::resolve_revoked);
        }}},
      {"notice.list",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context&) {
          notice_store::Filter filter;
          if (auto state = opt_string(a, "state")) {
            filter.state = notices::parse_state(*state);
            if (!filter.state) invalid("state: unknown '" + *state + "'");
          }
          filter.profile_id = opt_int(a, "profile_id");
          filter.limit = limit_of(a, filter.limit);
          return of(array_of(notice_store::list(db, filter)));
        }}},
      {"notice.show",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context&) {
          return of(notice_json(db, need_int(a, "notice_id")));
        }}},
      {"audit.verify",
       {kCoordinator,
        [](SQLite::Database& db, const json&, const Context& c) {
          const auto v = audit::verify(db);
          audit::append(db, {c.now_ms, c.actor.id, std::string(to_string(c.actor.role)), "read",
                             "audit", "chain", v.ok ? "verified" : v.reason});
          json j = {{"ok", v.ok}, {"rows", v.rows}, {"reason", v.reason}};
          put(j, "first_bad_seq", v.first_bad);
          // A chain cannot show rows cut off its end: the last link is printed so that an
          // operator can record it elsewhere and compare next time.
          SQLite::Statement tail(db, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1");
          const bool any = tail.executeStep();
          j["last_seq"] = any ? tail.getColumn(0).getInt64() : 0;
          j["last_hash"] = any ? tail.getColumn(1).getString() : "";
          return of(j);
        }}},
      {"audit.show",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context&) {
          audit::Filter filter;
          filter.object_type = opt_string(a, "object_type");
          filter.object_id = opt_string(a, "object_id");
          filter.actor_id = opt_string(a, "actor_id");
          filter.after_seq = opt_int(a, "after_seq").value_or(0);
          filter.limit = limit_of(a, 1000);
          return of(array_of(audit::list(db, filter)));
        }}},
      {"purge",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          const bool dry_run = opt_bool(a, "dry_run").value_or(true);
          const auto& report = value(intel::purge(db, c.now_ms, c.retention, dry_run, c.actor));
          json photos = json::array();
          for (const auto& p : report.notice_photos) {
            photos.push_back({{"notice_id", p.notice_id}, {"sha256", p.sha256}});
          }
          Answer answer = of({{"dry_run", report.dry_run},
                              {"forms", report.forms},
                              {"profiles", report.profiles},
                              {"notice_photos", photos},
                              {"blobs", report.blobs},
                              {"sightings", report.sightings},
                              {"notices", report.notices}});
          if (!dry_run) answer.delete_blobs = report.blobs;
          return answer;
        }}},
      {"photos.get", {kPeople, photo_piece}},
      {"gallery", {kPeople, gallery}},
      {"sar",
       {kCoordinator,
        [](SQLite::Database& db, const json& a, const Context& c) {
          const auto& sar = value(intel::gather_sar(db, need_int(a, "profile_id"), c.actor,
                                                    c.now_ms));
          return of({{"profile_id", sar.profile_id},
                     {"export", json::parse(sar.json)},
                     {"photos", sar.photo_sha256s}});
        }}},
  };
  return ops;
}

}  // namespace

Answer run(SQLite::Database& db, const std::string& op, const std::string& args_json,
           const Context& context) {
  const auto& ops = table();
  auto it = ops.find(op);
  if (it == ops.end()) throw QueryError(v1::INVALID, "unknown op '" + op + "'");
  const auto& roles = it->second.roles;
  if (std::find(roles.begin(), roles.end(), context.actor.role) == roles.end()) {
    throw QueryError(v1::NOT_ALLOWED,
                     "role " + std::string(to_string(context.actor.role)) + " may not " + op);
  }
  json args = json::object();
  if (!args_json.empty()) {
    args = json::parse(args_json, nullptr, false);
    if (args.is_discarded() || !args.is_object()) {
      throw QueryError(v1::INVALID, "args_json: not a JSON object");
    }
  }
  return it->second.handler(db, args, context);
}

const std::vector<OpInfo>& ops() {
  static const std::vector<OpInfo> list = [] {
    std::vector<OpInfo> out;
    for (const auto& [name, op] : table()) out.push_back({name.c_str(), op.roles});
    return out;
  }();
  return list;
}

}  // namespace saferlink::server::queries
