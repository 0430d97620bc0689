#include "client/coord_cli.hpp"

#include "client/commands.hpp"
#include "client/sar.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <iostream>
#include <memory>
#include <optional>
#include <vector>

namespace saferlink::client {

namespace {

// Flag storage shared by every coord subcommand; each subcommand reads the fields it defined.
struct Flags {
  bool json = false;
  std::string id;          // positional: form id, profile id, notice id
  std::string second_id;   // positional: the other side of link/unlink/merge
  std::optional<std::string> town, category, state, name, description, outcome, object_type,
      object_id, from_form, since, until, out_dir;
  std::vector<std::string> aliases, incidents;
  std::optional<bool> violent, weapons;
  std::optional<long> limit, min_incidents, min_members, profile;
  bool unreviewed = false;
  bool dry_run = false;
  bool now = false;
  std::string reason, conditions, towns = "all";
};

template <class T>
void put(nlohmann::json& j, const char* key, const std::optional<T>& value) {
  if (value) j[key] = *value;
}

// Parses a numeric id argument, or throws CLI::ValidationError naming it.
long number(const std::string& text, const char* what) {
  try {
    std::size_t used = 0;
    const long n = std::stol(text, &used);
    if (used == text.size() && n > 0) return n;
  } catch (const std::exception&) {
  }
  throw CLI::ValidationError(what, "must be a positive number, got '" + text + "'");
}

}  // namespace

void add_coord_commands(CLI::App& app, const ClientOptions& options,
                        std::function<int()>* chosen) {
  auto f = std::make_shared<Flags>();
  auto* coord = app.add_subcommand("coord", "the intelligence store (coordinators; some reads "
                                            "for police and CCTV)");
  coord->require_subcommand(1);
  coord->add_flag("--json", f->json, "one JSON object per line");

  // Registers `cmd` to send `op` with the arguments `args()` builds.
  auto bind = [&options, chosen, f](CLI::App* cmd, std::string op,
                                    std::function<nlohmann::json()> args) {
    cmd->add_flag("--json", f->json, "one JSON object per line");
    cmd->callback([&options, chosen, f, op = std::move(op), args = std::move(args)] {
      const std::string body = args().dump();
      *chosen = [&options, f, op, body] {
        return run_query(options, op, body, f->json, std::cout, std::cerr);
      };
    });
  };

  // incidents
  auto* incidents = coord->add_subcommand("incidents", "incident information forms");
  incidents->require_subcommand(1);
  auto* inc_list = incidents->add_subcommand("list", "list forms (newest first)");
  inc_list->add_option("--town", f->town, "only this town");
  inc_list->add_option("--category", f->category, "only this category");
  inc_list->add_option("--since", f->since, "from this time (Unix ms)");
  inc_list->add_option("--until", f->until, "up to this time (Unix ms)");
  inc_list->add_flag("--unreviewed", f->unreviewed, "only forms not yet reviewed");
  inc_list->add_option("--limit", f->limit, "at most this many");
  bind(inc_list, "incidents.list", [f] {
    nlohmann::json j = nlohmann::json::object();
    put(j, "town", f->town);
    put(j, "category", f->category);
    if (f->since) j["since_ms"] = number(*f->since, "--since");
    if (f->until) j["until_ms"] = number(*f->until, "--until");
    if (f->unreviewed) j["unreviewed"] = true;
    put(j, "limit", f->limit);
    return j;
  });
  auto* inc_show = incidents->add_subcommand("show", "one form in full");
  inc_show->add_option("FORM_ID", f->id)->required();
  bind(inc_show, "incidents.show", [f] { return nlohmann::json{{"form_id", f->id}}; });
  auto* inc_review = incidents->add_subcommand("review", "mark a form reviewed");
  inc_review->add_option("FORM_ID", f->id)->required();
  bind(inc_review, "incidents.review", [f] { return nlohmann::json{{"form_id", f->id}}; });

  // profiles
  auto* profiles = coord->add_subcommand("profiles", "offender profiles");
  profiles->require_subcommand(1);
  auto* prof_list = profiles->add_subcommand("list", "list profiles");
  prof_list->add_option("--limit", f->limit, "at most this many");
  bind(prof_list, "profiles.list", [f] {
    nlohmann::json j = nlohmann::json::object();
    put(j, "limit", f->limit);
    return j;
  });
  auto* prof_show = profiles->add_subcommand("show", "one profile (the read is audited)");
  prof_show->add_option("PROFILE_ID", f->id)->required();
  bind(prof_show, "profiles.show",
       [f] { return nlohmann::json{{"profile_id", number(f->id, "PROFILE_ID")}}; });
  auto profile_fields = [f](CLI::App* cmd) {
    cmd->add_option("--name", f->name, "name the offender is known by");
    cmd->add_option("--alias", f->aliases, "another name (repeatable)");
    cmd->add_option("--description", f->description, "physical description only");
    cmd->add_option("--violent", f->violent, "true or false");
    cmd->add_option("--weapons", f->weapons, "true or false");
  };
  auto profile_json = [f](nlohmann::json j) {
    put(j, "name", f->name);
    if (!f->aliases.empty()) j["aliases"] = f->aliases;
    put(j, "description", f->description);
    put(j, "violent", f->violent);
    put(j, "weapons", f->weapons);
    return j;
  };
  auto* prof_create = profiles->add_subcommand("create", "a new profile");
  profile_fields(prof_create);
  prof_create->add_option("--from-form", f->from_form, "link this form to the new profile");
  bind(prof_create, "profiles.create", [f, profile_json] {
    nlohmann::json j = profile_json(nlohmann::json::object());
    put(j, "from_form", f->from_form);
    return j;
  });
  auto* prof_edit = profiles->add_subcommand("edit", "change names, description or flags");
  prof_edit->add_option("PROFILE_ID", f->id)->required();
  profile_fields(prof_edit);
  bind(prof_edit, "profiles.edit", [f, profile_json] {
    return profile_json(nlohmann::json{{"profile_id", number(f->id, "PROFILE_ID")}});
  });
  for (const char* verb : {"link", "unlink"}) {
    auto* cmd = profiles->add_subcommand(verb, std::string(verb) + " a form and a profile");
    cmd->add_option("PROFILE_ID", f->id)->required();
    cmd->add_option("FORM_ID", f->second_id)->required();
    bind(cmd, std::string("profiles.") + verb, [f] {
      return nlohmann::json{{"profile_id", number(f->id, "PROFILE_ID")}, {"form_id", f->second_id}};
    });
  }
  struct PhotoVerb {
    const char* command;
    const char* op;
    const char* help;
  };
  for (const PhotoVerb verb : {PhotoVerb{"photo-add", "profiles.photo_add",
                                         "add a photo (upload it first: saferlink upload FILE)"},
                               PhotoVerb{"photo-remove", "profiles.photo_remove",
                                         "remove a photo from the profile"}}) {
    auto* cmd = profiles->add_subcommand(verb.command, verb.help);
    cmd->add_option("PROFILE_ID", f->id)->required();
    cmd->add_option("SHA256", f->second_id, "the stored image's SHA-256")->required();
    bind(cmd, verb.op, [f] {
      return nlohmann::json{{"profile_id", number(f->id, "PROFILE_ID")}, {"sha256", f->second_id}};
    });
  }
  auto* prof_merge = profiles->add_subcommand("merge", "merge one profile into another");
  prof_merge->add_option("FROM_ID", f->id)->required();
  prof_merge->add_option("INTO_ID", f->second_id)->required();
  bind(prof_merge, "profiles.merge", [f] {
    return nlohmann::json{{"from", number(f->id, "FROM_ID")},
                          {"into", number(f->second_id, "INTO_ID")}};
  });

  // ranking
  auto* prolific = coord->add_subcommand("prolific", "most prolific offenders, last 12 months");
  prolific->add_option("--limit", f->limit, "at most this many");
  bind(prolific, "prolific", [f] {
    nlohmann::json j = nlohmann::json::object();
    put(j, "limit", f->limit);
    return j;
  });
  auto* candidates = coord->add_subcommand("candidates", "candidates for an exclusion notice");
  candidates->add_option("--min-incidents", f->min_incidents, "default 3 in 12 months");
  candidates->add_option("--min-members", f->min_members, "default 2 distinct members");
  bind(candidates, "candidates", [f] {
    nlohmann::json j = nlohmann::json::object();
    put(j, "min_incidents", f->min_incidents);
    put(j, "min_members", f->min_members);
    return j;
  });

  // notices
  auto* notice = coord->add_subcommand("notice", "the Exclusion Notice Scheme");
  notice->require_subcommand(1);
  auto* propose = notice->add_subcommand("propose", "propose a notice, citing incidents");
  propose->add_option("--profile", f->profile, "profile id")->required();
  propose->add_option("--incident", f->incidents, "cited form id (repeatable)")->required();
  propose->add_option("--conditions", f->conditions, "the notice's conditions")->required();
  propose->add_option("--towns", f->towns, "all, or a comma-separated list")->capture_default_str();
  propose->add_option("--reason", f->reason, "why")->required();
  propose->add_option("--photo", f->object_id, "SHA-256 of the gallery photo (uploaded first)");
  bind(propose, "notice.propose", [f] {
    nlohmann::json j{{"profile_id", *f->profile}, {"incidents", f->incidents},
                     {"conditions", f->conditions}, {"towns", f->towns},
                     {"reason", f->reason}};
    put(j, "photo_sha256", f->object_id);
    return j;
  });
  for (const char* verb : {"approve", "serve", "dispute", "revoke"}) {
    auto* cmd = notice->add_subcommand(verb, std::string(verb) + " a notice");
    cmd->add_option("NOTICE_ID", f->id)->required();
    cmd->add_option("--reason", f->reason, "why (recorded)")->required();
    bind(cmd, std::string("notice.") + verb, [f] {
      return nlohmann::json{{"notice_id", number(f->id, "NOTICE_ID")}, {"reason", f->reason}};
    });
  }
  auto* resolve = notice->add_subcommand("resolve", "end a dispute");
  resolve->add_option("NOTICE_ID", f->id)->required();
  resolve->add_option("--outcome", f->outcome, "active (appeal dismissed) or revoked")
      ->required()
      ->check(CLI::IsMember({"active", "revoked"}));
  resolve->add_option("--reason", f->reason, "why (recorded)")->required();
  bind(resolve, "notice.resolve", [f] {
    return nlohmann::json{{"notice_id", number(f->id, "NOTICE_ID")},
                          {"outcome", *f->outcome},
                          {"reason", f->reason}};
  });
  auto* notice_list = notice->add_subcommand("list", "notices, optionally by state");
  notice_list->add_option("--state", f->state, "proposed, approved, active, disputed, expired, revoked");
  bind(notice_list, "notice.list", [f] {
    nlohmann::json j = nlohmann::json::object();
    put(j, "state", f->state);
    return j;
  });
  auto* notice_show = notice->add_subcommand("show", "one notice with its history");
  notice_show->add_option("NOTICE_ID", f->id)->required();
  bind(notice_show, "notice.show",
       [f] { return nlohmann::json{{"notice_id", number(f->id, "NOTICE_ID")}}; });

  // audit
  auto* audit = coord->add_subcommand("audit", "the hash-chained audit log");
  audit->require_subcommand(1);
  auto* verify = audit->add_subcommand("verify", "check the chain; names the first broken row");
  verify->add_flag("--json", f->json, "the result as one JSON object");
  verify->callback([&options, chosen, f] {
    *chosen = [&options, f] { return run_audit_verify(options, f->json, std::cout, std::cerr); };
  });
  auto* show = audit->add_subcommand("show", "audit rows");
  show->add_option("--object-type", f->object_type, "form, profile, photo, notice");
  show->add_option("--object-id", f->object_id, "the object's id");
  show->add_option("--limit", f->limit, "at most this many");
  bind(show, "audit.show", [f] {
    nlohmann::json j = nlohmann::json::object();
    put(j, "object_type", f->object_type);
    put(j, "object_id", f->object_id);
    put(j, "limit", f->limit);
    return j;
  });

  // subject access request
  auto* sar = coord->add_subcommand("sar", "export everything held about one profile");
  sar->add_option("PROFILE_ID", f->id)->required();
  sar->add_option("--out", f->out_dir, "directory to write the export into")->required();
  sar->callback([&options, chosen, f] {
    const long id = number(f->id, "PROFILE_ID");
    *chosen = [&options, f, id] {
      return run_sar(options, id, *f->out_dir, std::cout, std::cerr);
    };
  });

  // retention
  auto* purge = coord->add_subcommand("purge", "apply the retention periods");
  auto* dry = purge->add_flag("--dry-run", f->dry_run, "say what would go, change nothing");
  auto* now = purge->add_flag("--now", f->now, "purge now");
  purge->add_flag("--json", f->json, "one JSON object per line");
  dry->excludes(now);
  purge->callback([&options, chosen, f] {
    if (!f->dry_run && !f->now) throw CLI::ValidationError("purge", "give --dry-run or --now");
    const std::string body = nlohmann::json{{"dry_run", f->dry_run}}.dump();
    *chosen = [&options, f, body] {
      return run_query(options, "purge", body, f->json, std::cout, std::cerr);
    };
  });
}

}  // namespace saferlink::client
