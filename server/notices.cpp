#include "server/notices.hpp"

#include <time.h>  // gmtime_r

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <utility>

#include "core/towns.hpp"

namespace saferlink::server::notices {
namespace {

constexpr std::string_view kWhitespace = " \t\r\n\v\f";

bool blank(std::string_view text) { return text.find_first_not_of(kWhitespace) == text.npos; }

std::string notice_name(const Notice& n) { return "notice " + std::to_string(n.id); }

// The verb a person would use ("a reason is required to resolve notice 12").
std::string_view verb(Action action) {
  return action == Action::resolve_active || action == Action::resolve_revoked
             ? "resolve"
             : to_string(action);
}

// "approve" -> "approved", as a sentence needs it ("only a proposed notice can be approved").
std::string_view past_tense(Action action) {
  switch (action) {
    case Action::approve: return "approved";
    case Action::serve: return "served";
    case Action::dispute: return "disputed";
    case Action::resolve_active:
    case Action::resolve_revoked: return "resolved";
    case Action::revoke: return "revoked";
    case Action::expire: return "expired";
  }
  return "changed";
}

// The state an action starts from ("only an approved notice can be served"), for the actions
// that have exactly one.
std::optional<State> only_from(Action action) {
  switch (action) {
    case Action::approve: return State::proposed;
    case Action::serve: return State::approved;
    case Action::dispute: return State::active;
    case Action::resolve_active:
    case Action::resolve_revoked: return State::disputed;
    case Action::revoke:
    case Action::expire: return std::nullopt;
  }
  return std::nullopt;
}

std::string_view article(State state) {
  return state == State::approved || state == State::active || state == State::expired
             ? "an"
             : "a";
}

Outcome refuse(Refusal why, std::string text) {
  Outcome out;
  out.ok = false;
  out.refused = why;
  out.refusal = std::move(text);
  return out;
}

// Checks the state allows `action`; returns the refusal text, or empty when it does.
std::string illegal_from(const Notice& n, Action action) {
  const std::string is = notice_name(n) + " is " + std::string(to_string(n.state));
  if (is_final(n.state)) {
    if (action == Action::revoke || action == Action::expire) {
      return notice_name(n) + " is already " + std::string(to_string(n.state)) +
             "; nothing leaves that state";
    }
    return is + "; " + std::string(article(n.state)) + " " + std::string(to_string(n.state)) +
           " notice cannot be revived (propose a new one)";
  }
  switch (action) {
    case Action::revoke:
      return {};  // every state that is not final
    case Action::expire:
      if (n.state == State::active || n.state == State::disputed) return {};
      return is + "; only an active or disputed notice can expire";
    default: {
      const State from = *only_from(action);
      if (n.state == from) return {};
      return is + "; only " + std::string(article(from)) + " " + std::string(to_string(from)) +
             " notice can be " + std::string(past_tense(action));
    }
  }
}

}  // namespace

std::string_view to_string(State state) {
  switch (state) {
    case State::proposed: return "proposed";
    case State::approved: return "approved";
    case State::active: return "active";
    case State::disputed: return "disputed";
    case State::expired: return "expired";
    case State::revoked: return "revoked";
  }
  return "unknown";
}

std::optional<State> parse_state(std::string_view text) {
  for (State s : {State::proposed, State::approved, State::active, State::disputed,
                  State::expired, State::revoked}) {
    if (text == to_string(s)) return s;
  }
  return std::nullopt;
}

std::string_view to_string(Action action) {
  switch (action) {
    case Action::approve: return "approve";
    case Action::serve: return "serve";
    case Action::dispute: return "dispute";
    case Action::resolve_active: return "resolve-active";
    case Action::resolve_revoked: return "resolve-revoked";
    case Action::revoke: return "revoke";
    case Action::expire: return "expire";
  }
  return "unknown";
}

std::optional<Action> parse_action(std::string_view text) {
  for (Action a : {Action::approve, Action::serve, Action::dispute, Action::resolve_active,
                   Action::resolve_revoked, Action::revoke, Action::expire}) {
    if (text == to_string(a)) return a;
  }
  return std::nullopt;
}

Outcome propose(const Proposal& proposal, const Identity& by, std::int64_t now_ms,
                std::string_view reason, const Options& options) {
  if (by.role != Role::coordinator) {
    return refuse(Refusal::not_allowed, "only a coordinator may propose a notice; " + by.id +
                                            " is " + std::string(to_string(by.role)));
  }
  if (blank(reason)) return refuse(Refusal::invalid, "a proposal needs a reason");
  if (reason.size() > kMaxReasonBytes) {
    return refuse(Refusal::invalid,
                  "the reason is longer than " + std::to_string(kMaxReasonBytes) + " bytes");
  }
  if (blank(proposal.conditions)) {
    return refuse(Refusal::invalid, "a proposal needs the conditions of the notice");
  }
  if (proposal.conditions.size() > kMaxConditionsBytes) {
    return refuse(Refusal::invalid, "the conditions are longer than " +
                                        std::to_string(kMaxConditionsBytes) + " bytes");
  }
  if (proposal.profile_id <= 0) {
    return refuse(Refusal::invalid, "a proposal needs the offender profile it concerns");
  }

  std::vector<std::string> forms;
  for (const std::string& form : proposal.cited_forms) {
    if (blank(form)) return refuse(Refusal::invalid, "a cited incident form id is empty");
    if (std::find(forms.begin(), forms.end(), form) == forms.end()) forms.push_back(form);
  }
  if (forms.empty()) {
    return refuse(Refusal::invalid, "a proposal must cite at least one incident form");
  }
  if (forms.size() > kMaxCitedForms) {
    return refuse(Refusal::invalid, "a proposal may cite at most " +
                                        std::to_string(kMaxCitedForms) + " incident forms");
  }

  const std::vector<std::string>& known = options.towns.empty() ? default_towns() : options.towns;
  if (proposal.towns.empty()) {
    return refuse(Refusal::invalid, "a proposal needs the towns it applies in (or \"all\")");
  }
  for (std::size_t i = 0; i < proposal.towns.size(); ++i) {
    const std::string& town = proposal.towns[i];
    if (town == kAllTowns) {
      if (proposal.towns.size() != 1) {
        return refuse(Refusal::invalid, "\"all\" towns cannot be combined with named towns");
      }
      continue;
    }
    if (!known_town(known, town)) {
      return refuse(Refusal::invalid, "unknown town \"" + town + "\"");
    }
    if (std::find(proposal.towns.begin(), proposal.towns.begin() + static_cast<long>(i), town) !=
        proposal.towns.begin() + static_cast<long>(i)) {
      return refuse(Refusal::invalid, "town \"" + town + "\" is named twice");
    }
  }
  if (proposal.photo_sha256 && (proposal.photo_sha256->size() != 64 ||
                                proposal.photo_sha256->find_first_not_of("0123456789abcdef") !=
                                    std::string::npos)) {
    return refuse(Refusal::invalid, "the photo must be named by 64 lower-case hex digits");
  }

  Outcome out;
  out.ok = true;
  Notice& n = out.next;
  n.profile_id = proposal.profile_id;
  n.state = State::proposed;
  n.conditions = proposal.conditions;
  n.towns = proposal.towns;
  n.photo_sha256 = proposal.photo_sha256;
  n.proposed_by = by.id;
  n.proposed_at_ms = now_ms;
  n.updated_at_ms = now_ms;
  n.cited_forms = std::move(forms);
  out.event = Event{0, std::nullopt, State::proposed, by.id, now_ms, std::string(reason)};
  return out;
}

Outcome apply(const Notice& current, Action action, const Identity& by, std::int64_t now_ms,
              std::string_view reason, const Options& options) {
  if (options.validity.count() <= 0 || options.review_after.count() <= 0) {
    throw std::invalid_argument("notice validity and review period must be positive");
  }

  // Who may ask: the hub alone expires (at the end of the term); coordinators do the rest.
  if (action == Action::expire) {
    if (by.role != Role::hub) {
      return refuse(Refusal::not_allowed,
                    "only the hub expires a notice, at the end of its term; " + by.id + " is " +
                        std::string(to_string(by.role)) + " (a coordinator may revoke it)");
    }
  } else if (by.role != Role::coordinator) {
    return refuse(Refusal::not_allowed, "only a coordinator may " +
                                            std::string(verb(action)) + " a notice; " +
                                            by.id + " is " + std::string(to_string(by.role)));
  }

  std::string why(reason);
  if (action == Action::expire && blank(why)) why = "expired";
  if (blank(why)) {
    return refuse(Refusal::invalid, "a reason is required to " + std::string(verb(action)) +
                                        " " + notice_name(current));
  }
  if (why.size() > kMaxReasonBytes) {
    return refuse(Refusal::invalid,
                  "the reason is longer than " + std::to_string(kMaxReasonBytes) + " bytes");
  }

  if (std::string text = illegal_from(current, action); !text.empty()) {
    return refuse(Refusal::illegal, std::move(text));
  }

  const bool past_term = current.expires_at_ms && now_ms >= *current.expires_at_ms;
  switch (action) {
    case Action::approve:
      if (by.id == current.proposed_by) {
        return refuse(Refusal::not_allowed,
                      "the proposer cannot approve their own notice; " + notice_name(current) +
                          " needs a second coordinator (two-person rule)");
      }
      break;
    case Action::dispute:
    case Action::resolve_active:
      if (past_term) {
        return refuse(Refusal::illegal, notice_name(current) + " reached the end of its term at " +
                                            format_time(*current.expires_at_ms) +
                                            "; it can only expire or be revoked");
      }
      break;
    case Action::expire:
      if (!current.expires_at_ms) {
        // An active notice always has an expiry; a row without one is corrupt.
        throw std::logic_error(notice_name(current) + " is " +
                               std::string(to_string(current.state)) + " but has no expires_at");
      }
      if (!past_term) {
        return refuse(Refusal::illegal, notice_name(current) + " runs until " +
                                            format_time(*current.expires_at_ms) +
                                            "; it cannot expire before then");
      }
      break;
    default:
      break;
  }

  Outcome out;
  out.ok = true;
  out.next = current;
  Notice& n = out.next;
  n.updated_at_ms = now_ms;
  switch (action) {
    case Action::approve:
      n.state = State::approved;
      n.approved_by = by.id;
      n.approved_at_ms = now_ms;
      break;
    case Action::serve:
      n.state = State::active;
      n.served_at_ms = now_ms;
      n.expires_at_ms = now_ms + options.validity.count();
      n.review_due_at_ms = now_ms + options.review_after.count();
      break;
    case Action::dispute:
      n.state = State::disputed;
      break;
    case Action::resolve_active:
      n.state = State::active;  // same served_at, expires_at and review_due_at
      break;
    case Action::resolve_revoked:
    case Action::revoke:
      n.state = State::revoked;
      n.ended_at_ms = now_ms;
      break;
    case Action::expire:
      n.state = State::expired;
      n.ended_at_ms = now_ms;
      break;
  }
  out.event = Event{current.id, current.state, n.state, by.id, now_ms, std::move(why)};
  return out;
}

Due due(const std::vector<Notice>& notices, std::int64_t now_ms) {
  Due out;
  for (const Notice& n : notices) {
    const bool live = n.state == State::active || n.state == State::disputed;
    if (live && n.expires_at_ms && *n.expires_at_ms <= now_ms) {
      out.expire.push_back(n.id);
      continue;
    }
    if (n.state == State::active && n.review_due_at_ms && *n.review_due_at_ms <= now_ms &&
        !n.review_reminded_at_ms) {
      out.review.push_back(n.id);
    }
  }
  return out;
}

Notice reminded(Notice notice, std::int64_t now_ms) {
  notice.review_reminded_at_ms = now_ms;
  notice.updated_at_ms = now_ms;
  return notice;
}

bool in_gallery(State state) { return state == State::active; }

bool photo_must_be_purged(State state) {
  return state == State::expired || state == State::revoked;
}

bool is_final(State state) { return state == State::expired || state == State::revoked; }

std::string join_towns(const std::vector<std::string>& towns) {
  std::string out;
  for (const std::string& town : towns) {
    if (!out.empty()) out += ',';
    out += town;
  }
  return out;
}

std::vector<std::string> split_towns(std::string_view stored) {
  std::vector<std::string> out;
  while (!stored.empty()) {
    const std::size_t comma = stored.find(',');
    out.emplace_back(stored.substr(0, comma));
    if (comma == stored.npos) break;
    stored.remove_prefix(comma + 1);
  }
  return out;
}

std::string format_time(std::int64_t ms) {
  // Floor division, so times before 1970 format correctly too.
  std::int64_t seconds = ms / 1000;
  if (ms % 1000 < 0) --seconds;
  const time_t t = static_cast<time_t>(seconds);
  tm parts{};
  if (gmtime_r(&t, &parts) == nullptr) return std::to_string(ms) + " ms";
  char text[80];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02dZ", parts.tm_year + 1900,
                parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec);
  return text;
}

}  // namespace saferlink::server::notices
