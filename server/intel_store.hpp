// The intelligence store: incident forms, offender profiles, the prolific-offender ranking,
// retention purges and subject access exports, as plain functions of a database handle.
//
// Thread contract: like every store function (server/store.hpp) these run on the store thread,
// inside a Store job, or directly on a test's database. Each function that changes more than
// one row, or reads and audits, runs inside its own SAVEPOINT, so it is atomic on its own and
// nests inside the Store's batch transaction: the audit row (server/audit.hpp) of a read or a
// change commits with it or not at all. Every statement is prepared; no SQL is assembled from
// input.
//
// Access is decided here from the actor's certificate identity (core/identity.hpp), deny by
// default:
//
//   what                          shop                 police / cctv          coordinator
//   insert_form                   own town             own town (or any       any town
//                                                      when "all")
//   get_form                      forms its own        forms of their town    all
//                                 member filed         (all for "all")
//   list_forms (summaries)        forms its own        forms of their town    all
//                                 member filed, in     (all for "all")
//                                 its own town
//   get_profile / list_profiles   refused              summary (no incidents, full
//                                                      no notices)
//   everything else               refused              refused                allowed
//   (review, profile changes,
//   ranking, candidates, SAR)
//
// purge() accepts the hub (scheduled) or a coordinator (on demand).
//
// Special-category data: profiles have no field for ethnicity, religion, health or any other
// special-category data, and nothing here adds one. The free-text fields (a profile's
// description, a form's description and unknown-offender descriptions) are the only place such
// data could be written. That is accepted: keeping it out of them is the coordinators' duty,
// and whatever is written there is covered by retention and the subject access export. Audit
// rows never carry names or free text (the log outlives every retention period): ids only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/identity.hpp"
#include "core/forms.hpp"

namespace SQLite {
class Database;
}

namespace saferlink::server::intel {

// ---- outcomes -------------------------------------------------------------------------------

enum class Code {
  ok,
  not_found,  // no such form / profile
  refused,    // the actor's role or town may not do this
  invalid,    // the request breaks a rule (merge into itself, name too long, ...)
  conflict,   // a form_id already used for a different form
};

struct Status {
  Code code = Code::ok;
  std::string error;  // empty when ok; otherwise one line for the person who asked
  bool ok() const { return code == Code::ok; }
};

template <class T>
struct Result {
  Status status;
  std::optional<T> value;  // present exactly when status.ok()
  bool ok() const { return status.ok(); }
};

// ---- incident forms -------------------------------------------------------------------------

enum class InsertOutcome { inserted, duplicate, refused };

struct InsertResult {
  InsertOutcome outcome = InsertOutcome::refused;
  std::string confirmation;  // inserted and duplicate: "F-<form_id>@<received_at_ms>"
  std::string error;         // refused: why
};

// Stores a form filed by `reporter` (call forms::validate first). A form_id seen before, from
// the same reporter with the same content, is a retry: answered `duplicate` with the very
// confirmation of the first filing and stored nothing. The same form_id with other content, or
// from another reporter, is refused. Linked profile ids must exist (a merged profile is
// followed to the one it was merged into); stills must already be uploaded (in `blobs`).
// Audited as "create form".
InsertResult insert_form(SQLite::Database& db, const forms::IncidentForm& form,
                         const Identity& reporter, std::int64_t now_ms);

// A form as stored: form.profile_ids are its current links (coordinators may have changed
// them since filing).
struct StoredForm {
  forms::IncidentForm form;
  std::string reporter_id;
  std::string reporter_role;
  std::string reporter_member;
  std::int64_t received_at_ms = 0;
  std::optional<std::int64_t> reviewed_at_ms;
  std::optional<std::string> reviewed_by;
  std::string confirmation;
};

// One form in full, if `actor` may read it (see the table above). Audited as "read form".
Result<StoredForm> get_form(SQLite::Database& db, const std::string& form_id,
                            const Identity& actor, std::int64_t now_ms);

struct FormFilter {
  std::optional<std::string> town;
  std::optional<std::int64_t> since_ms;  // occurred_at_ms >= since_ms
  std::optional<std::int64_t> until_ms;  // occurred_at_ms <  until_ms
  std::optional<forms::Category> category;
  bool unreviewed_only = false;
  std::size_t limit = 100;  // capped at kMaxListLimit
};

inline constexpr std::size_t kMaxListLimit = 10000;

struct FormSummary {
  std::string form_id;
  std::int64_t occurred_at_ms = 0;
  std::int64_t received_at_ms = 0;
  std::string town;
  std::string premises;
  forms::Category category = forms::Category::other;
  std::string reporter_member;
  bool reviewed = false;
};

// Summaries, newest incident first, of the forms `actor` may see that match `filter`. Asking
// explicitly for a town one may not see is refused; otherwise the list is narrowed to what the
// actor may see. Audited as one "read form list" row (the filter and the count).
Result<std::vector<FormSummary>> list_forms(SQLite::Database& db, const FormFilter& filter,
                                            const Identity& actor, std::int64_t now_ms);

// Marks a form reviewed (coordinators). Reviewing a reviewed form is ok and changes nothing.
Status mark_reviewed(SQLite::Database& db, const std::string& form_id, const Identity& actor,
                     std::int64_t now_ms);

// ---- offender profiles ----------------------------------------------------------------------

inline constexpr std::size_t kNameMax = 200;
inline constexpr std::size_t kAliasMax = 200;
inline constexpr std::size_t kAliasesMax = 20;
inline constexpr std::size_t kProfileDescriptionMax = 4000;

// What a coordinator writes about a person. Deliberately no field for special-category data.
struct ProfileInput {
  std::string name;                  // 1..200 bytes, one line
  std::vector<std::string> aliases;  // ≤ 20, each 1..200 bytes, one line, distinct
  std::string description;           // physical description, ≤ 4000 bytes
  bool violent = false;
  bool weapons = false;
};

// A partial edit: what is present replaces the stored value (aliases as a whole set).
struct ProfileEdit {
  std::optional<std::string> name;
  std::optional<std::vector<std::string>> aliases;
  std::optional<std::string> description;
  std::optional<bool> violent;
  std::optional<bool> weapons;
};

Result<std::int64_t> create_profile(SQLite::Database& db, const ProfileInput& input,
                                    const Identity& actor, std::int64_t now_ms);
// Creates a profile and links `form_id` to it, in one step.
Result<std::int64_t> create_profile_from_form(SQLite::Database& db, const std::string& form_id,
                                              const ProfileInput& input, const Identity& actor,
                                              std::int64_t now_ms);
Status edit_profile(SQLite::Database& db, std::int64_t profile_id, const ProfileEdit& edit,
                    const Identity& actor, std::int64_t now_ms);

// Links or unlinks a form and a profile. Linking an already linked pair, or unlinking an
// unlinked one, is refused as invalid so that a script notices a wrong id. A merged profile
// cannot be linked (link the profile it was merged into).
Status link_form(SQLite::Database& db, const std::string& form_id, std::int64_t profile_id,
                 const Identity& actor, std::int64_t now_ms);
Status unlink_form(SQLite::Database& db, const std::string& form_id, std::int64_t profile_id,
                   const Identity& actor, std::int64_t now_ms);

// Adds / removes a photo (an uploaded blob) of a profile.
Status add_profile_photo(SQLite::Database& db, std::int64_t profile_id, const std::string& sha256,
                         const Identity& actor, std::int64_t now_ms);
Status remove_profile_photo(SQLite::Database& db, std::int64_t profile_id,
                            const std::string& sha256, const Identity& actor,
                            std::int64_t now_ms);

// Merges profile `from` into `into` (the same person recorded twice): form links, aliases
// (and from's name, as an alias), photos and notices move to `into`; `into` takes the union of
// the violent/weapons flags; `from` stays as history with merged_into = into. Refused: merging
// a profile into itself, or either side already merged.
Status merge_profiles(SQLite::Database& db, std::int64_t from, std::int64_t into,
                      const Identity& actor, std::int64_t now_ms);

struct LinkedIncident {
  std::string form_id;
  std::int64_t occurred_at_ms = 0;
  std::string town;
  forms::Category category = forms::Category::other;
  std::string reporter_member;
};

struct NoticeBrief {
  std::int64_t notice_id = 0;
  std::string state;
  std::optional<std::int64_t> served_at_ms;
  std::optional<std::int64_t> expires_at_ms;
};

struct Profile {
  std::int64_t profile_id = 0;
  std::string name;
  std::vector<std::string> aliases;
  std::string description;
  bool violent = false;
  bool weapons = false;
  std::vector<std::string> towns;  // distinct towns of linked forms, sorted
  std::optional<std::int64_t> last_seen_ms;
  std::vector<std::string> photo_sha256s;
  std::optional<std::int64_t> merged_into;  // set when this profile was merged into another
  bool summary = false;                     // true: the fields below were withheld
  // Only in the full view (coordinators); empty / unset in a summary:
  std::vector<std::int64_t> merged_from;  // profiles merged directly into this one
  std::optional<std::int64_t> first_seen_ms;
  std::vector<LinkedIncident> incidents;  // oldest first
  std::vector<NoticeBrief> notices;
  std::int64_t created_at_ms = 0;
  std::string created_by;
  std::int64_t updated_at_ms = 0;
};

// A profile: in full for coordinators, as a summary for police and CCTV, refused for shops.
// Audited as "read profile" ("full" or "summary").
Result<Profile> get_profile(SQLite::Database& db, std::int64_t profile_id, const Identity& actor,
                            std::int64_t now_ms);

struct ProfileFilter {
  std::optional<std::string> text;  // case-insensitive (ASCII) substring of name or an alias
  bool include_merged = false;
  std::size_t limit = 100;  // capped at kMaxListLimit
};

struct ProfileListItem {
  std::int64_t profile_id = 0;
  std::string name;
  std::vector<std::string> aliases;
  bool violent = false;
  bool weapons = false;
  std::optional<std::int64_t> merged_into;
  std::optional<std::int64_t> last_seen_ms;
  std::vector<std::string> towns;
};

// Profiles by id, for coordinators, police and CCTV. Audited as one "read profile list" row.
Result<std::vector<ProfileListItem>> list_profiles(SQLite::Database& db,
                                                   const ProfileFilter& filter,
                                                   const Identity& actor, std::int64_t now_ms);

// ---- prolific offenders and exclusion candidates --------------------------------------------
//
// Over the linked incidents of each profile that is not merged, with occurred_at_ms >= now -
// window_ms:
//   incidents         linked forms in the window
//   violent_incidents those of category violence_or_threats
//   members           distinct reporter_member among them
//   score             (incidents + 2 × violent_incidents) × (1.5 if flagged violent or weapons)
//                     i.e. a violence_or_threats incident counts three times, and a profile
//                     flagged as violent or carrying weapons ranks half as high again.
// Ranked by score, then incidents, members, last seen (latest first), profile id. One
// aggregate query over incident_forms (occurred_at index) joined to form_profiles.

inline constexpr std::int64_t kDayMs = 86'400'000;

struct RankingOptions {
  std::int64_t window_ms = 365 * kDayMs;
  std::size_t limit = 50;  // capped at kMaxListLimit
};

struct CandidateOptions {
  std::int64_t window_ms = 365 * kDayMs;
  std::int64_t min_incidents = 3;
  std::int64_t min_members = 2;
  std::size_t limit = 100;  // capped at kMaxListLimit
};

struct ProlificEntry {
  std::int64_t profile_id = 0;
  std::string name;
  bool violent = false;
  bool weapons = false;
  std::int64_t incidents = 0;
  std::int64_t violent_incidents = 0;
  std::int64_t members = 0;
  std::int64_t last_seen_ms = 0;
  double score = 0;
};

// Coordinators only. Audited as one "read profile list" row.
Result<std::vector<ProlificEntry>> prolific(SQLite::Database& db, const RankingOptions& options,
                                            const Identity& actor, std::int64_t now_ms);

// Profiles meeting both thresholds that have no notice proposed, approved, active or disputed,
// in ranking order. Coordinators only. Audited as one "read profile list" row.
Result<std::vector<ProlificEntry>> exclusion_candidates(SQLite::Database& db,
                                                        const CandidateOptions& options,
                                                        const Identity& actor,
                                                        std::int64_t now_ms);

// ---- retention ------------------------------------------------------------------------------
//
// What a purge removes (all decided before anything is removed, so a dry run reports exactly
// what the real run would do):
//   forms     received_at_ms older than forms_and_profiles_ms, unless the form is linked to a
//             profile with an active or disputed notice, or cited by such a notice. Their
//             stills and links go with them.
//   profiles  not merged, updated_at_ms older than forms_and_profiles_ms, no notice record of
//             any state (a notice's record outlives its photo and has its own retention; it
//             would otherwise go with the profile), and no linked form that stays. Profiles
//             merged into a purged profile go with it (history of the same person).
//   notice photos  every expired or revoked notice still holding a photo: notices.photo_sha256
//             is set to NULL.
//   blobs     images no form still, profile photo or notice references any more (after the
//             above), stored more than unreferenced_blob_grace_ms ago (so that a still uploaded
//             just before its form is not taken). Their rows are deleted; the caller deletes
//             the files after the commit. An image of an expired notice that is also a
//             profile photo or a form still stays until those go.
// Each removal is audited ("purge", by the actor); a dry run changes nothing, audit included.

struct RetentionOptions {
  std::int64_t forms_and_profiles_ms = 730 * kDayMs;
  std::int64_t unreferenced_blob_grace_ms = 1 * kDayMs;
  // An expired or revoked notice's record (its photo is gone already) is kept this long after
  // it ended, for the audit trail, then purged with its history.
  std::int64_t ended_notices_ms = 730 * kDayMs;
};

struct NoticePhoto {
  std::int64_t notice_id = 0;
  std::string sha256;
};

struct PurgeReport {
  bool dry_run = false;
  std::vector<std::string> forms;             // form ids, sorted
  std::vector<std::int64_t> profiles;         // profile ids, sorted (merged ones included)
  std::vector<NoticePhoto> notice_photos;     // photos unlinked from expired/revoked notices
  std::vector<std::string> blobs;             // sha256 of blob rows deleted: delete the files
  std::vector<std::string> sightings;         // sighting ids past the retention period
  std::vector<std::int64_t> notices;          // ended notices past their record retention
};

// The hub (scheduled) or a coordinator (on demand).
Result<PurgeReport> purge(SQLite::Database& db, std::int64_t now_ms,
                          const RetentionOptions& options, bool dry_run, const Identity& actor);

// ---- subject access ---------------------------------------------------------------------------

struct SarExport {
  std::int64_t profile_id = 0;             // the profile exported (after following merges)
  std::string json;                        // everything held, pretty-printed JSON
  std::vector<std::string> photo_sha256s;  // images to copy beside it (sorted, distinct)
};

// Everything held about one person (coordinators only): the profile and every profile merged
// into it, its linked forms in full, its notices with their events and cited forms, every image
// (profile photos, notice photos, stills of linked forms) and the audit rows about any of
// these (who read or changed what, when). A merged profile's id exports the profile it was
// merged into. Reporter ids and member names are included as held; redaction of third parties
// before disclosure is the coordinator's. The export is audited ("export profile").
Result<SarExport> gather_sar(SQLite::Database& db, std::int64_t profile_id, const Identity& actor,
                             std::int64_t now_ms);

}  // namespace saferlink::server::intel
