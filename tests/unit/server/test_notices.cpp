#include "server/notices.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/identity.hpp"

namespace {

namespace n = saferlink::server::notices;
using n::Action;
using n::Notice;
using n::Refusal;
using n::State;
using saferlink::Identity;
using saferlink::Role;

constexpr std::int64_t kDay = 24LL * 60 * 60 * 1000;
constexpr std::int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z: proposed
constexpr std::int64_t kServed = kT0 + 10 * kDay;
constexpr std::int64_t kExpires = kServed + 365 * kDay;
constexpr std::int64_t kReview = kServed + 182 * kDay;

const std::vector<State> kStates = {State::proposed, State::approved, State::active,
                                    State::disputed, State::expired,  State::revoked};
const std::vector<Action> kActions = {Action::approve,        Action::serve,
                                      Action::dispute,        Action::resolve_active,
                                      Action::resolve_revoked, Action::revoke,
                                      Action::expire};

Identity person(const std::string& id, Role role) {
  Identity who;
  who.id = id;
  who.role = role;
  who.town = "chatham";
  who.member = "Safer Medway";
  return who;
}

const Identity kProposer = person("coord-a", Role::coordinator);
const Identity kApprover = person("coord-b", Role::coordinator);
const Identity kOther = person("coord-c", Role::coordinator);
const Identity kHub = person("hub", Role::hub);

n::Proposal proposal() {
  n::Proposal p;
  p.profile_id = 7;
  p.conditions = "Not to enter any member premises in Chatham or Strood.";
  p.towns = {"chatham", "strood"};
  p.photo_sha256 = std::string(64, 'a');
  p.cited_forms = {"F-1", "F-2", "F-3"};
  return p;
}

// Notice 12 in `state`, as the lifecycle would have left it.
Notice notice_in(State state) {
  Notice x;
  x.id = 12;
  x.profile_id = 7;
  x.state = state;
  x.conditions = "Not to enter any member premises.";
  x.towns = {"all"};
  x.proposed_by = kProposer.id;
  x.proposed_at_ms = kT0;
  x.updated_at_ms = kT0;
  x.cited_forms = {"F-1"};
  if (state == State::proposed) return x;
  x.approved_by = kApprover.id;
  x.approved_at_ms = kT0 + kDay;
  if (state == State::approved) return x;
  if (state == State::revoked) {
    x.ended_at_ms = kT0 + 2 * kDay;
    return x;
  }
  x.served_at_ms = kServed;
  x.expires_at_ms = kExpires;
  x.review_due_at_ms = kReview;
  if (state == State::expired) x.ended_at_ms = kExpires;
  return x;
}

// Who asks for `action` in the table: the hub expires, a coordinator other than the proposer
// does the rest.
const Identity& actor_for(Action action) { return action == Action::expire ? kHub : kOther; }

// When the table asks: at the end of the term for expire, well inside it otherwise.
std::int64_t time_for(Action action) { return action == Action::expire ? kExpires : kServed + kDay; }

}  // namespace

TEST_CASE("every action from every state is allowed or refused as the lifecycle says") {
  // The legal transitions and where they lead; everything else is refused as illegal.
  const std::map<std::pair<State, Action>, State> legal = {
      {{State::proposed, Action::approve}, State::approved},
      {{State::proposed, Action::revoke}, State::revoked},
      {{State::approved, Action::serve}, State::active},
      {{State::approved, Action::revoke}, State::revoked},
      {{State::active, Action::dispute}, State::disputed},
      {{State::active, Action::revoke}, State::revoked},
      {{State::active, Action::expire}, State::expired},
      {{State::disputed, Action::resolve_active}, State::active},
      {{State::disputed, Action::resolve_revoked}, State::revoked},
      {{State::disputed, Action::revoke}, State::revoked},
      {{State::disputed, Action::expire}, State::expired},
  };
  int allowed = 0;
  int refused = 0;
  for (State from : kStates) {
    for (Action action : kActions) {
      INFO(n::to_string(action), " from ", n::to_string(from));
      const Notice current = notice_in(from);
      const std::int64_t now = time_for(action);
      const auto out = n::apply(current, action, actor_for(action), now, "board decision");
      const auto it = legal.find({from, action});
      if (it != legal.end()) {
        ++allowed;
        REQUIRE(out.ok);
        CHECK(out.refused == Refusal::none);
        CHECK(out.next.state == it->second);
        CHECK(out.next.id == 12);
        CHECK(out.next.updated_at_ms == now);
        CHECK(out.event.notice_id == 12);
        CHECK(out.event.from == from);
        CHECK(out.event.to == it->second);
        CHECK(out.event.by_id == actor_for(action).id);
        CHECK(out.event.at_ms == now);
        CHECK(out.event.reason == "board decision");
        if (it->second == State::revoked || it->second == State::expired) {
          CHECK(out.next.ended_at_ms == now);
        } else {
          CHECK(out.next.ended_at_ms == current.ended_at_ms);
        }
        // Nothing else about the notice changes behind the caller's back.
        CHECK(out.next.profile_id == current.profile_id);
        CHECK(out.next.conditions == current.conditions);
        CHECK(out.next.cited_forms == current.cited_forms);
        CHECK(out.next.proposed_by == current.proposed_by);
      } else {
        ++refused;
        CHECK_FALSE(out.ok);
        CHECK(out.refused == Refusal::illegal);
        CHECK(out.refusal.rfind("notice 12 is ", 0) == 0);
        CHECK(out.refusal.find(std::string(n::to_string(from))) != std::string::npos);
      }
    }
  }
  CHECK(allowed == 11);
  CHECK(refused == 6 * 7 - 11);
}

TEST_CASE("illegal transitions are refused with a reason naming the state and what is needed") {
  auto refusal = [](State from, Action action) {
    return n::apply(notice_in(from), action, actor_for(action), time_for(action), "because")
        .refusal;
  };
  CHECK(refusal(State::proposed, Action::serve) ==
        "notice 12 is proposed; only an approved notice can be served");
  CHECK(refusal(State::approved, Action::approve) ==
        "notice 12 is approved; only a proposed notice can be approved");
  CHECK(refusal(State::approved, Action::dispute) ==
        "notice 12 is approved; only an active notice can be disputed");
  CHECK(refusal(State::active, Action::resolve_active) ==
        "notice 12 is active; only a disputed notice can be resolved");
  CHECK(refusal(State::proposed, Action::expire) ==
        "notice 12 is proposed; only an active or disputed notice can expire");
  CHECK(refusal(State::revoked, Action::revoke) ==
        "notice 12 is already revoked; nothing leaves that state");
  CHECK(refusal(State::revoked, Action::serve) ==
        "notice 12 is revoked; a revoked notice cannot be revived (propose a new one)");
}

TEST_CASE("an expired notice cannot be revived by serve, resolve, approve or dispute") {
  for (Action action : {Action::serve, Action::resolve_active, Action::resolve_revoked,
                        Action::approve, Action::dispute}) {
    INFO(n::to_string(action));
    const auto out = n::apply(notice_in(State::expired), action, kOther, kExpires + kDay, "again");
    CHECK_FALSE(out.ok);
    CHECK(out.refused == Refusal::illegal);
    CHECK(out.refusal ==
          "notice 12 is expired; an expired notice cannot be revived (propose a new one)");
  }
  const auto again = n::apply(notice_in(State::expired), Action::expire, kHub, kExpires + kDay, "");
  CHECK_FALSE(again.ok);
  CHECK(again.refusal == "notice 12 is already expired; nothing leaves that state");
  const auto revoke =
      n::apply(notice_in(State::expired), Action::revoke, kOther, kExpires + kDay, "late");
  CHECK_FALSE(revoke.ok);
  CHECK(revoke.refused == Refusal::illegal);
}

TEST_CASE("the proposer cannot approve their own notice, a second coordinator can") {
  const Notice proposed = notice_in(State::proposed);
  const auto own = n::apply(proposed, Action::approve, kProposer, kT0 + kDay, "looks right");
  CHECK_FALSE(own.ok);
  CHECK(own.refused == Refusal::not_allowed);
  CHECK(own.refusal.rfind("the proposer cannot approve their own notice", 0) == 0);

  const auto second = n::apply(proposed, Action::approve, kApprover, kT0 + kDay, "agreed");
  REQUIRE(second.ok);
  CHECK(second.next.state == State::approved);
  CHECK(second.next.approved_by == kApprover.id);
  CHECK(second.next.approved_at_ms == kT0 + kDay);
}

TEST_CASE("the proposer may serve, dispute and revoke, only approval needs a second person") {
  const auto served =
      n::apply(notice_in(State::approved), Action::serve, kProposer, kServed, "served in person");
  CHECK(served.ok);
  const auto revoked =
      n::apply(notice_in(State::proposed), Action::revoke, kProposer, kT0 + kDay, "withdrawn");
  CHECK(revoked.ok);
}

TEST_CASE("only a coordinator may change a notice, and only the hub expires one") {
  for (Role role : {Role::shop, Role::police, Role::cctv, Role::hub}) {
    const Identity who = person("someone", role);
    for (State from : kStates) {
      for (Action action : kActions) {
        if (action == Action::expire) continue;
        INFO(saferlink::to_string(role), " ", n::to_string(action), " from ",
             n::to_string(from));
        const auto out = n::apply(notice_in(from), action, who, kServed + kDay, "because");
        CHECK_FALSE(out.ok);
        CHECK(out.refused == Refusal::not_allowed);
        CHECK(out.refusal.rfind("only a coordinator may ", 0) == 0);
      }
    }
  }
  for (Role role : {Role::shop, Role::police, Role::cctv, Role::coordinator}) {
    INFO(saferlink::to_string(role));
    const auto out =
        n::apply(notice_in(State::active), Action::expire, person("x", role), kExpires, "");
    CHECK_FALSE(out.ok);
    CHECK(out.refused == Refusal::not_allowed);
    CHECK(out.refusal.rfind("only the hub expires a notice", 0) == 0);
  }
}

TEST_CASE("a transition needs a non-blank reason") {
  for (State from : kStates) {
    for (Action action : kActions) {
      if (action == Action::expire) continue;
      for (const char* blank : {"", "   ", "\t\n"}) {
        INFO(n::to_string(action), " from ", n::to_string(from));
        const auto out = n::apply(notice_in(from), action, kOther, kServed + kDay, blank);
        CHECK_FALSE(out.ok);
        CHECK(out.refused == Refusal::invalid);
        CHECK(out.refusal.rfind("a reason is required to ", 0) == 0);
      }
    }
  }
  const auto long_reason = n::apply(notice_in(State::proposed), Action::approve, kApprover, kT0,
                                    std::string(n::kMaxReasonBytes + 1, 'r'));
  CHECK_FALSE(long_reason.ok);
  CHECK(long_reason.refused == Refusal::invalid);
  CHECK(n::apply(notice_in(State::proposed), Action::approve, kApprover, kT0,
                 std::string(n::kMaxReasonBytes, 'r'))
            .ok);
}

TEST_CASE("the hub's expiry records \"expired\" unless given a reason") {
  const auto plain = n::apply(notice_in(State::active), Action::expire, kHub, kExpires, "");
  REQUIRE(plain.ok);
  CHECK(plain.event.reason == "expired");
  CHECK(plain.event.by_id == "hub");
  const auto told =
      n::apply(notice_in(State::active), Action::expire, kHub, kExpires, "term ended");
  REQUIRE(told.ok);
  CHECK(told.event.reason == "term ended");
}

TEST_CASE("serving at T sets the term: expiry at T+365 days, review due at T+182 days") {
  const auto out =
      n::apply(notice_in(State::approved), Action::serve, kOther, kServed, "served at the door");
  REQUIRE(out.ok);
  CHECK(out.next.state == State::active);
  CHECK(out.next.served_at_ms == kServed);
  CHECK(out.next.expires_at_ms == kServed + 365 * kDay);
  CHECK(out.next.review_due_at_ms == kServed + 182 * kDay);
  CHECK_FALSE(out.next.review_reminded_at_ms.has_value());
  CHECK_FALSE(out.next.ended_at_ms.has_value());
}

TEST_CASE("the term and the review period are configurable") {
  n::Options options;
  options.validity = std::chrono::days(30);
  options.review_after = std::chrono::days(10);
  const auto out =
      n::apply(notice_in(State::approved), Action::serve, kOther, kServed, "served", options);
  REQUIRE(out.ok);
  CHECK(out.next.expires_at_ms == kServed + 30 * kDay);
  CHECK(out.next.review_due_at_ms == kServed + 10 * kDay);

  n::Options broken;
  broken.validity = std::chrono::milliseconds(0);
  CHECK_THROWS_AS(
      n::apply(notice_in(State::approved), Action::serve, kOther, kServed, "served", broken),
      std::invalid_argument);
}

TEST_CASE("a served notice expires exactly at the end of its term, not a millisecond before") {
  const Notice active =
      n::apply(notice_in(State::approved), Action::serve, kOther, kServed, "served").next;
  const Notice quiet = n::reminded(active, kReview);  // its review is not what we look at here

  const auto before = n::due({quiet}, kExpires - 1);
  CHECK(before.expire.empty());
  CHECK(before.review.empty());
  const auto early = n::apply(quiet, Action::expire, kHub, kExpires - 1, "");
  CHECK_FALSE(early.ok);
  CHECK(early.refused == Refusal::illegal);
  CHECK(early.refusal == "notice 12 runs until 2027-01-11T00:00:00Z; it cannot expire before then");

  const auto at = n::due({quiet}, kExpires);
  CHECK(at.expire == std::vector<std::int64_t>{12});
  CHECK(at.review.empty());
  const auto expired = n::apply(quiet, Action::expire, kHub, kExpires, "");
  REQUIRE(expired.ok);
  CHECK(expired.next.state == State::expired);
  CHECK(expired.next.ended_at_ms == kExpires);
  CHECK(n::due({expired.next}, kExpires + 100 * kDay).expire.empty());
}

TEST_CASE("a review reminder falls due 182 days after service, once") {
  const Notice active =
      n::apply(notice_in(State::approved), Action::serve, kOther, kServed, "served").next;
  CHECK(n::due({active}, kReview - 1).review.empty());
  const auto at = n::due({active}, kReview);
  CHECK(at.review == std::vector<std::int64_t>{12});
  CHECK(at.expire.empty());
  CHECK(n::due({active}, kReview + 30 * kDay).review == std::vector<std::int64_t>{12});

  const Notice done = n::reminded(active, kReview + 5);
  CHECK(done.review_reminded_at_ms == kReview + 5);
  CHECK(done.updated_at_ms == kReview + 5);
  CHECK(done.state == State::active);
  CHECK(n::due({done}, kReview + 5).review.empty());
  CHECK(n::due({done}, kExpires - 1).review.empty());
}

TEST_CASE("due lists no review for a notice that is due to expire, nor for a disputed one") {
  const Notice active = notice_in(State::active);  // never reminded
  const auto late = n::due({active}, kExpires + kDay);
  CHECK(late.expire == std::vector<std::int64_t>{12});
  CHECK(late.review.empty());

  const auto disputed = n::due({notice_in(State::disputed)}, kReview + kDay);
  CHECK(disputed.review.empty());
  CHECK(disputed.expire.empty());
}

TEST_CASE("due lists expiries and reviews across several notices in the order given") {
  Notice a = notice_in(State::active);
  a.id = 1;
  Notice b = notice_in(State::disputed);
  b.id = 2;
  Notice c = notice_in(State::active);
  c.id = 3;
  c.expires_at_ms = kExpires + 50 * kDay;
  Notice d = notice_in(State::expired);
  d.id = 4;
  Notice e = notice_in(State::revoked);
  e.id = 5;
  Notice f = notice_in(State::proposed);
  f.id = 6;
  const auto due = n::due({a, b, c, d, e, f}, kExpires);
  CHECK(due.expire == std::vector<std::int64_t>{1, 2});
  CHECK(due.review == std::vector<std::int64_t>{3});
}

TEST_CASE("a disputed notice resolved back to active keeps its term and review") {
  Notice active = notice_in(State::active);
  active.review_reminded_at_ms = kReview + 1;
  const auto disputed = n::apply(active, Action::dispute, kOther, kReview + kDay, "appeal lodged");
  REQUIRE(disputed.ok);
  CHECK(disputed.next.state == State::disputed);
  CHECK(disputed.next.expires_at_ms == kExpires);

  const auto back =
      n::apply(disputed.next, Action::resolve_active, kApprover, kReview + 20 * kDay,
               "appeal dismissed by the board");
  REQUIRE(back.ok);
  CHECK(back.next.state == State::active);
  CHECK(back.next.served_at_ms == kServed);
  CHECK(back.next.expires_at_ms == kExpires);
  CHECK(back.next.review_due_at_ms == kReview);
  CHECK(back.next.review_reminded_at_ms == kReview + 1);
  CHECK(back.event.from == State::disputed);
  CHECK(back.event.to == State::active);
}

TEST_CASE("an appeal upheld revokes a disputed notice") {
  const auto out = n::apply(notice_in(State::disputed), Action::resolve_revoked, kOther,
                            kServed + 40 * kDay, "appeal upheld: mistaken identity");
  REQUIRE(out.ok);
  CHECK(out.next.state == State::revoked);
  CHECK(out.next.ended_at_ms == kServed + 40 * kDay);
  CHECK(out.event.reason == "appeal upheld: mistaken identity");
}

TEST_CASE("a disputed notice expires at the end of its term like an active one") {
  const Notice disputed = notice_in(State::disputed);
  CHECK(n::due({disputed}, kExpires - 1).expire.empty());
  CHECK(n::due({disputed}, kExpires).expire == std::vector<std::int64_t>{12});
  const auto out = n::apply(disputed, Action::expire, kHub, kExpires, "");
  REQUIRE(out.ok);
  CHECK(out.next.state == State::expired);
  CHECK(out.event.from == State::disputed);
}

TEST_CASE("a notice past its term cannot be disputed or resolved back to active") {
  const auto dispute =
      n::apply(notice_in(State::active), Action::dispute, kOther, kExpires, "appeal");
  CHECK_FALSE(dispute.ok);
  CHECK(dispute.refused == Refusal::illegal);
  CHECK(dispute.refusal ==
        "notice 12 reached the end of its term at 2027-01-11T00:00:00Z; it can only expire or "
        "be revoked");
  const auto resolve = n::apply(notice_in(State::disputed), Action::resolve_active, kOther,
                                kExpires + 1, "dismissed");
  CHECK_FALSE(resolve.ok);
  CHECK(resolve.refused == Refusal::illegal);
  // It may still be revoked, or resolved as revoked.
  CHECK(n::apply(notice_in(State::disputed), Action::resolve_revoked, kOther, kExpires + 1,
                 "upheld")
            .ok);
  CHECK(n::apply(notice_in(State::active), Action::revoke, kOther, kExpires, "board").ok);
}

TEST_CASE("a coordinator's proposal becomes a proposed notice citing its forms") {
  const auto out = n::propose(proposal(), kProposer, kT0, "five thefts at three members");
  REQUIRE(out.ok);
  const Notice& x = out.next;
  CHECK(x.id == 0);
  CHECK(x.profile_id == 7);
  CHECK(x.state == State::proposed);
  CHECK(x.conditions == proposal().conditions);
  CHECK(x.towns == std::vector<std::string>{"chatham", "strood"});
  CHECK(x.photo_sha256 == std::string(64, 'a'));
  CHECK(x.proposed_by == "coord-a");
  CHECK(x.proposed_at_ms == kT0);
  CHECK(x.updated_at_ms == kT0);
  CHECK(x.cited_forms == std::vector<std::string>{"F-1", "F-2", "F-3"});
  CHECK_FALSE(x.approved_by.has_value());
  CHECK_FALSE(x.served_at_ms.has_value());
  CHECK_FALSE(x.expires_at_ms.has_value());
  CHECK(out.event.notice_id == 0);
  CHECK_FALSE(out.event.from.has_value());
  CHECK(out.event.to == State::proposed);
  CHECK(out.event.by_id == "coord-a");
  CHECK(out.event.at_ms == kT0);
  CHECK(out.event.reason == "five thefts at three members");
}

TEST_CASE("a form cited twice in a proposal is cited once") {
  n::Proposal p = proposal();
  p.cited_forms = {"F-2", "F-1", "F-2"};
  const auto out = n::propose(p, kProposer, kT0, "prolific");
  REQUIRE(out.ok);
  CHECK(out.next.cited_forms == std::vector<std::string>{"F-2", "F-1"});
}

TEST_CASE("a proposal is refused without a coordinator, reason, conditions, forms or towns") {
  struct Case {
    const char* what;
    n::Proposal proposal;
    Identity by;
    std::string reason;
    Refusal refused;
    std::string refusal;
  };
  auto with = [](auto change) {
    n::Proposal p = proposal();
    change(p);
    return p;
  };
  const std::vector<Case> cases = {
      {"shop", proposal(), person("shop-1", Role::shop), "r", Refusal::not_allowed,
       "only a coordinator may propose a notice; shop-1 is shop"},
      {"police", proposal(), person("pc-1", Role::police), "r", Refusal::not_allowed,
       "only a coordinator may propose a notice; pc-1 is police"},
      {"blank reason", proposal(), kProposer, "  ", Refusal::invalid,
       "a proposal needs a reason"},
      {"no conditions", with([](n::Proposal& p) { p.conditions = " \n"; }), kProposer, "r",
       Refusal::invalid, "a proposal needs the conditions of the notice"},
      {"long conditions",
       with([](n::Proposal& p) { p.conditions.assign(n::kMaxConditionsBytes + 1, 'c'); }),
       kProposer, "r", Refusal::invalid, "the conditions are longer than 4000 bytes"},
      {"no profile", with([](n::Proposal& p) { p.profile_id = 0; }), kProposer, "r",
       Refusal::invalid, "a proposal needs the offender profile it concerns"},
      {"no forms", with([](n::Proposal& p) { p.cited_forms.clear(); }), kProposer, "r",
       Refusal::invalid, "a proposal must cite at least one incident form"},
      {"blank form", with([](n::Proposal& p) { p.cited_forms.push_back(""); }), kProposer, "r",
       Refusal::invalid, "a cited incident form id is empty"},
      {"no towns", with([](n::Proposal& p) { p.towns.clear(); }), kProposer, "r",
       Refusal::invalid, "a proposal needs the towns it applies in (or \"all\")"},
      {"unknown town", with([](n::Proposal& p) { p.towns = {"chatham", "lagos"}; }), kProposer,
       "r", Refusal::invalid, "unknown town \"lagos\""},
      {"town twice", with([](n::Proposal& p) { p.towns = {"strood", "strood"}; }), kProposer,
       "r", Refusal::invalid, "town \"strood\" is named twice"},
      {"all and more", with([](n::Proposal& p) { p.towns = {"all", "strood"}; }), kProposer, "r",
       Refusal::invalid, "\"all\" towns cannot be combined with named towns"},
      {"bad photo", with([](n::Proposal& p) { p.photo_sha256 = std::string(64, 'A'); }),
       kProposer, "r", Refusal::invalid, "the photo must be named by 64 lower-case hex digits"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const auto out = n::propose(c.proposal, c.by, kT0, c.reason);
    CHECK_FALSE(out.ok);
    CHECK(out.refused == c.refused);
    CHECK(out.refusal == c.refusal);
  }
}

TEST_CASE("a proposal may apply in all towns, or in towns the hub is configured with") {
  n::Proposal all = proposal();
  all.towns = {"all"};
  CHECK(n::propose(all, kProposer, kT0, "r").ok);

  n::Proposal elsewhere = proposal();
  elsewhere.towns = {"lagos"};
  n::Options options;
  options.towns = {"lagos", "ibadan"};
  CHECK(n::propose(elsewhere, kProposer, kT0, "r", options).ok);
  CHECK_FALSE(n::propose(elsewhere, kProposer, kT0, "r").ok);

  n::Proposal no_photo = proposal();
  no_photo.photo_sha256.reset();
  CHECK(n::propose(no_photo, kProposer, kT0, "r").ok);
}

TEST_CASE("only an active notice is in the gallery, expired and revoked photos are purged") {
  const std::map<State, std::pair<bool, bool>> want = {
      {State::proposed, {false, false}}, {State::approved, {false, false}},
      {State::active, {true, false}},    {State::disputed, {false, false}},
      {State::expired, {false, true}},   {State::revoked, {false, true}},
  };
  for (const auto& [state, expected] : want) {
    INFO(n::to_string(state));
    CHECK(n::in_gallery(state) == expected.first);
    CHECK(n::photo_must_be_purged(state) == expected.second);
    CHECK(n::is_final(state) == expected.second);
  }
}

TEST_CASE("states and actions round-trip through their names, unknown names are refused") {
  for (State s : kStates) CHECK(n::parse_state(n::to_string(s)) == s);
  for (Action a : kActions) CHECK(n::parse_action(n::to_string(a)) == a);
  CHECK(n::to_string(State::disputed) == "disputed");
  CHECK(n::to_string(Action::resolve_active) == "resolve-active");
  CHECK_FALSE(n::parse_state("Active").has_value());
  CHECK_FALSE(n::parse_state("").has_value());
  CHECK_FALSE(n::parse_action("resolve").has_value());
}

TEST_CASE("towns are stored comma-separated and read back the same") {
  const std::vector<std::string> towns = {"chatham", "strood", "rainham"};
  CHECK(n::join_towns(towns) == "chatham,strood,rainham");
  CHECK(n::split_towns("chatham,strood,rainham") == towns);
  CHECK(n::split_towns(n::join_towns({"all"})) == std::vector<std::string>{"all"});
  CHECK(n::split_towns("").empty());
}

TEST_CASE("times in refusals are UTC to the second") {
  CHECK(n::format_time(kT0) == "2026-01-01T00:00:00Z");
  CHECK(n::format_time(kT0 + 1999) == "2026-01-01T00:00:01Z");
  CHECK(n::format_time(-1) == "1969-12-31T23:59:59Z");
}
