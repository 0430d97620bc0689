#include "server/alert_tracker.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace saferlink::server {
namespace {

using namespace std::chrono_literals;
using State = AlertTracker::State;
using StatusResult = AlertTracker::StatusResult;
using CancelResult = AlertTracker::CancelResult;
using TimePoint = AlertTracker::TimePoint;

Identity make(std::string id, Role role, std::string town) {
  Identity identity;
  identity.id = std::move(id);
  identity.role = role;
  identity.town = std::move(town);
  return identity;
}

const Identity kSender = make("shop-chatham-01", Role::shop, "chatham");
const Identity kNeighbour = make("shop-chatham-02", Role::shop, "chatham");
const Identity kStroodShop = make("shop-strood-01", Role::shop, "strood");
const Identity kChathamPolice = make("police-chatham-01", Role::police, "chatham");
const Identity kStroodPolice = make("police-strood-01", Role::police, "strood");
const Identity kCctv = make("cctv-01", Role::cctv, "all");
const Identity kCoordinator = make("coord-01", Role::coordinator, "all");

constexpr const char* kAlert = "shop-chatham-01:7";

// A tracker with the spec's defaults and one Chatham alert accepted at t0. The clock is injected:
// each call is given t0 plus however much time the test lets pass.
struct Fixture {
  AlertTracker::Options options{15s, 30s, 12h};
  AlertTracker tracker{options};
  const TimePoint t0 = TimePoint{} + 1h;

  Fixture() { REQUIRE(tracker.add(kAlert, kSender, t0)); }

  const AlertTracker::Tracked& alert() const {
    const auto* tracked = tracker.find(kAlert);
    REQUIRE(tracked != nullptr);
    return *tracked;
  }
};

bool same(const std::vector<AlertTracker::Escalation>& got,
          const std::vector<std::pair<std::string, std::uint32_t>>& want) {
  if (got.size() != want.size()) return false;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i].alert_id != want[i].first || got[i].round != want[i].second) return false;
  }
  return true;
}

// --- tracking ---------------------------------------------------------------------------

TEST_CASE("an added alert starts open, unescalated and due one interval after acceptance") {
  Fixture f;
  const auto& a = f.alert();
  CHECK(a.alert_id == kAlert);
  CHECK(a.sender.id == kSender.id);
  CHECK(a.accepted_at == f.t0);
  CHECK(a.state == State::open);
  CHECK(a.escalation_round == 0);
  CHECK(a.next_escalation == f.t0 + 15s);
  CHECK_FALSE(a.acknowledged_by.has_value());
  CHECK(f.tracker.size() == 1);
}

TEST_CASE("adding an alert id that is already tracked is refused and changes nothing") {
  Fixture f;
  CHECK_FALSE(f.tracker.add(kAlert, kNeighbour, f.t0 + 5s));
  CHECK(f.alert().sender.id == kSender.id);
  CHECK(f.alert().accepted_at == f.t0);
  CHECK(f.tracker.size() == 1);
}

TEST_CASE("an unknown alert id is not found") {
  Fixture f;
  CHECK(f.tracker.find("shop-chatham-01:8") == nullptr);
}

TEST_CASE("recipients noted in several rounds accumulate, notes for unknown alerts are ignored") {
  Fixture f;
  f.tracker.note_recipients(kAlert, {"cctv-01", "police-chatham-01"});
  f.tracker.note_recipients(kAlert, {"cctv-01", "coord-01"});
  f.tracker.note_recipients("nobody:1", {"cctv-02"});
  CHECK(f.alert().recipients == std::set<std::string>{"cctv-01", "police-chatham-01", "coord-01"});
  CHECK(f.tracker.size() == 1);
}

TEST_CASE("a tracker refuses a zero escalation interval") {
  CHECK_THROWS_AS(AlertTracker(AlertTracker::Options{0ms, 30s, 12h}), std::invalid_argument);
}

// --- escalation -------------------------------------------------------------------------

TEST_CASE("an open alert does not escalate before the escalation interval") {
  Fixture f;
  CHECK(f.tracker.due(f.t0).empty());
  CHECK(f.tracker.due(f.t0 + 14999ms).empty());
  CHECK(f.alert().escalation_round == 0);
  CHECK(f.alert().next_escalation == f.t0 + 15s);
}

TEST_CASE("an open alert escalates exactly at the interval with round 1, and at twice it with "
          "round 2") {
  Fixture f;
  CHECK(same(f.tracker.due(f.t0 + 15s), {{kAlert, 1}}));
  CHECK(f.alert().escalation_round == 1);
  CHECK(f.alert().next_escalation == f.t0 + 30s);
  CHECK(f.tracker.due(f.t0 + 15s).empty());  // the same instant again: nothing new
  CHECK(f.tracker.due(f.t0 + 29999ms).empty());
  CHECK(same(f.tracker.due(f.t0 + 30s), {{kAlert, 2}}));
  CHECK(f.alert().next_escalation == f.t0 + 45s);
  CHECK(f.alert().state == State::open);
}

TEST_CASE("a late call after three and a half intervals collapses into one escalation with "
          "round 3") {
  Fixture f;
  CHECK(same(f.tracker.due(f.t0 + 52500ms), {{kAlert, 3}}));
  CHECK(f.alert().escalation_round == 3);
  CHECK(f.alert().next_escalation == f.t0 + 60s);
  CHECK(f.tracker.due(f.t0 + 59999ms).empty());
  CHECK(same(f.tracker.due(f.t0 + 60s), {{kAlert, 4}}));
}

TEST_CASE("a late call after one escalation counts only the intervals missed since") {
  Fixture f;
  CHECK(same(f.tracker.due(f.t0 + 15s), {{kAlert, 1}}));
  CHECK(same(f.tracker.due(f.t0 + 61s), {{kAlert, 4}}));  // due at 30, 45, 60
  CHECK(f.alert().next_escalation == f.t0 + 75s);
}

TEST_CASE("every open alert due at the same call escalates, each with its own round") {
  Fixture f;
  REQUIRE(f.tracker.add("shop-chatham-02:1", kNeighbour, f.t0 + 10s));
  REQUIRE(f.tracker.add("shop-strood-01:1", kStroodShop, f.t0 + 40s));
  CHECK(same(f.tracker.due(f.t0 + 31s), {{"shop-chatham-01:7", 2}, {"shop-chatham-02:1", 1}}));
  CHECK(f.tracker.find("shop-strood-01:1")->escalation_round == 0);
}

TEST_CASE("a responder's acknowledgement stops escalation") {
  for (const Identity& responder : {kCctv, kChathamPolice}) {
    Fixture f;
    INFO("responder ", responder.id);
    CHECK(f.tracker.on_status(kAlert, responder, v1::ACKNOWLEDGED, f.t0 + 3s) ==
          StatusResult::first_ack);
    CHECK(f.alert().state == State::acknowledged);
    CHECK(f.alert().acknowledged_by == responder.id);
    CHECK(f.tracker.due(f.t0 + 15s).empty());
    CHECK(f.tracker.due(f.t0 + 10min).empty());
    CHECK(f.alert().escalation_round == 0);
    CHECK_FALSE(f.tracker.next_deadline().has_value());
  }
}

TEST_CASE("police en route, on scene or resolved count as the first acknowledgement") {
  for (const auto status : {v1::EN_ROUTE, v1::ON_SCENE, v1::RESOLVED}) {
    Fixture f;
    INFO("status ", static_cast<int>(status));
    CHECK(f.tracker.on_status(kAlert, kChathamPolice, status, f.t0 + 1s) ==
          StatusResult::first_ack);
    CHECK(f.alert().state == State::acknowledged);
  }
}

TEST_CASE("only the first responder acknowledgement is first_ack, later ones are recorded") {
  Fixture f;
  CHECK(f.tracker.on_status(kAlert, kCctv, v1::ACKNOWLEDGED, f.t0 + 1s) == StatusResult::first_ack);
  CHECK(f.tracker.on_status(kAlert, kChathamPolice, v1::ACKNOWLEDGED, f.t0 + 2s) ==
        StatusResult::recorded);
  CHECK(f.tracker.on_status(kAlert, kChathamPolice, v1::EN_ROUTE, f.t0 + 3s) ==
        StatusResult::recorded);
  CHECK(f.tracker.on_status(kAlert, kCctv, v1::ACKNOWLEDGED, f.t0 + 4s) == StatusResult::recorded);
  CHECK(f.alert().acknowledged_by == kCctv.id);
}

TEST_CASE("a neighbouring shop's acknowledgement does not stop escalation") {
  Fixture f;
  CHECK(f.tracker.on_status(kAlert, kNeighbour, v1::ACKNOWLEDGED, f.t0 + 1s) ==
        StatusResult::recorded);
  CHECK(f.alert().state == State::open);
  CHECK_FALSE(f.alert().acknowledged_by.has_value());
  CHECK(same(f.tracker.due(f.t0 + 15s), {{kAlert, 1}}));
}

TEST_CASE("a responder's device saying delivered does not stop escalation") {
  Fixture f;
  CHECK(f.tracker.on_status(kAlert, kCctv, v1::DELIVERED, f.t0 + 1s) == StatusResult::recorded);
  CHECK(f.tracker.on_status(kAlert, kChathamPolice, v1::DELIVERED, f.t0 + 1s) ==
        StatusResult::recorded);
  CHECK(f.alert().state == State::open);
  CHECK(same(f.tracker.due(f.t0 + 15s), {{kAlert, 1}}));
}

TEST_CASE("a Strood police acknowledgement of a Chatham alert is refused before escalation but "
          "allowed after it") {
  Fixture f;
  CHECK(f.tracker.on_status(kAlert, kStroodPolice, v1::ACKNOWLEDGED, f.t0 + 1s) ==
        StatusResult::not_a_recipient);
  CHECK(f.alert().state == State::open);
  REQUIRE(same(f.tracker.due(f.t0 + 15s), {{kAlert, 1}}));
  CHECK(f.tracker.on_status(kAlert, kStroodPolice, v1::ACKNOWLEDGED, f.t0 + 16s) ==
        StatusResult::first_ack);
  CHECK(f.alert().acknowledged_by == kStroodPolice.id);
}

TEST_CASE("a coordinator acknowledgement is refused before escalation and stops it after") {
  Fixture f;
  CHECK(f.tracker.on_status(kAlert, kCoordinator, v1::ACKNOWLEDGED, f.t0 + 1s) ==
        StatusResult::not_a_recipient);
  CHECK(f.alert().state == State::open);
  REQUIRE(same(f.tracker.due(f.t0 + 15s), {{kAlert, 1}}));
  CHECK(f.tracker.on_status(kAlert, kCoordinator, v1::ACKNOWLEDGED, f.t0 + 16s) ==
        StatusResult::first_ack);
  CHECK(f.tracker.due(f.t0 + 30s).empty());
}

TEST_CASE("a neighbouring shop that got the alert stays a recipient after escalation") {
  Fixture f;
  REQUIRE(same(f.tracker.due(f.t0 + 15s), {{kAlert, 1}}));
  CHECK(f.tracker.on_status(kAlert, kNeighbour, v1::DELIVERED, f.t0 + 16s) ==
        StatusResult::recorded);
}

TEST_CASE("a Strood shop and the sender itself are never recipients of a Chatham alert") {
  Fixture f;
  CHECK(f.tracker.on_status(kAlert, kStroodShop, v1::DELIVERED, f.t0 + 1s) ==
        StatusResult::not_a_recipient);
  CHECK(f.tracker.on_status(kAlert, kSender, v1::ACKNOWLEDGED, f.t0 + 1s) ==
        StatusResult::not_a_recipient);
  REQUIRE(same(f.tracker.due(f.t0 + 15s), {{kAlert, 1}}));
  CHECK(f.tracker.on_status(kAlert, kStroodShop, v1::DELIVERED, f.t0 + 16s) ==
        StatusResult::not_a_recipient);
  CHECK(f.tracker.on_status(kAlert, kSender, v1::ACKNOWLEDGED, f.t0 + 16s) ==
        StatusResult::not_a_recipient);
  CHECK(f.alert().state == State::open);
}

TEST_CASE("a status for an unknown alert is unknown_alert") {
  Fixture f;
  CHECK(f.tracker.on_status("shop-chatham-01:8", kCctv, v1::ACKNOWLEDGED, f.t0) ==
        StatusResult::unknown_alert);
}

// --- cancel -----------------------------------------------------------------------------

TEST_CASE("the sender may cancel inside the cancel window, up to its last instant") {
  SUBCASE("early") {
    Fixture f;
    CHECK(f.tracker.on_cancel(kAlert, kSender, f.t0 + 2s) == CancelResult::cancelled);
    CHECK(f.alert().state == State::cancelled);
  }
  SUBCASE("exactly at the end of the window") {
    Fixture f;
    CHECK(f.tracker.on_cancel(kAlert, kSender, f.t0 + 30s) == CancelResult::cancelled);
    CHECK(f.alert().state == State::cancelled);
  }
}

TEST_CASE("a cancel after the cancel window is too_late and leaves the alert as it was") {
  Fixture f;
  CHECK(f.tracker.on_cancel(kAlert, kSender, f.t0 + 30001ms) == CancelResult::too_late);
  CHECK(f.alert().state == State::open);
}

TEST_CASE("only the sender may cancel, not a neighbour nor a responder") {
  Fixture f;
  CHECK(f.tracker.on_cancel(kAlert, kNeighbour, f.t0 + 1s) == CancelResult::not_sender);
  CHECK(f.tracker.on_cancel(kAlert, kCctv, f.t0 + 1s) == CancelResult::not_sender);
  CHECK(f.alert().state == State::open);
}

TEST_CASE("a second cancel is already_cancelled") {
  Fixture f;
  REQUIRE(f.tracker.on_cancel(kAlert, kSender, f.t0 + 1s) == CancelResult::cancelled);
  CHECK(f.tracker.on_cancel(kAlert, kSender, f.t0 + 2s) == CancelResult::already_cancelled);
  CHECK(f.alert().state == State::cancelled);
}

TEST_CASE("a cancel of an unknown alert is unknown_alert") {
  Fixture f;
  CHECK(f.tracker.on_cancel("shop-chatham-01:8", kSender, f.t0) == CancelResult::unknown_alert);
}

TEST_CASE("an acknowledged alert may still be cancelled by its sender within the window") {
  Fixture f;
  REQUIRE(f.tracker.on_status(kAlert, kCctv, v1::ACKNOWLEDGED, f.t0 + 1s) ==
          StatusResult::first_ack);
  CHECK(f.tracker.on_cancel(kAlert, kSender, f.t0 + 5s) == CancelResult::cancelled);
  CHECK(f.alert().state == State::cancelled);
}

TEST_CASE("a cancelled alert never escalates and has no deadline") {
  Fixture f;
  REQUIRE(f.tracker.on_cancel(kAlert, kSender, f.t0 + 1s) == CancelResult::cancelled);
  CHECK(f.tracker.due(f.t0 + 15s).empty());
  CHECK(f.tracker.due(f.t0 + 1h).empty());
  CHECK(f.alert().escalation_round == 0);
  CHECK_FALSE(f.tracker.next_deadline().has_value());
}

TEST_CASE("statuses on a cancelled alert are recorded without changing its state") {
  Fixture f;
  REQUIRE(f.tracker.on_cancel(kAlert, kSender, f.t0 + 1s) == CancelResult::cancelled);
  CHECK(f.tracker.on_status(kAlert, kCctv, v1::ACKNOWLEDGED, f.t0 + 2s) == StatusResult::recorded);
  CHECK(f.alert().state == State::cancelled);
  CHECK_FALSE(f.alert().acknowledged_by.has_value());
}

// --- deadlines and pruning ----------------------------------------------------------------

TEST_CASE("next_deadline is the earliest escalation among open alerts") {
  AlertTracker tracker(AlertTracker::Options{15s, 30s, 12h});
  const TimePoint t0 = TimePoint{} + 1h;
  CHECK_FALSE(tracker.next_deadline().has_value());

  REQUIRE(tracker.add("a:1", kSender, t0));
  REQUIRE(tracker.add("b:1", kNeighbour, t0 + 5s));
  CHECK(tracker.next_deadline() == t0 + 15s);

  REQUIRE(same(tracker.due(t0 + 15s), {{"a:1", 1}}));
  CHECK(tracker.next_deadline() == t0 + 20s);  // b first, then a again at 30 s

  REQUIRE(tracker.on_status("b:1", kCctv, v1::ACKNOWLEDGED, t0 + 16s) == StatusResult::first_ack);
  CHECK(tracker.next_deadline() == t0 + 30s);

  REQUIRE(tracker.on_cancel("a:1", kSender, t0 + 17s) == CancelResult::cancelled);
  CHECK_FALSE(tracker.next_deadline().has_value());
}

TEST_CASE("prune forgets alerts accepted more than retain ago, whatever their state") {
  AlertTracker tracker(AlertTracker::Options{15s, 30s, 12h});
  const TimePoint t0 = TimePoint{} + 1h;
  REQUIRE(tracker.add("old-open:1", kSender, t0));
  REQUIRE(tracker.add("old-cancelled:1", kSender, t0));
  REQUIRE(tracker.on_cancel("old-cancelled:1", kSender, t0 + 1s) == CancelResult::cancelled);
  REQUIRE(tracker.add("young:1", kSender, t0 + 1h));

  tracker.prune(t0 + 12h);  // exactly retain old: kept
  CHECK(tracker.size() == 3);

  tracker.prune(t0 + 12h + 1ms);
  CHECK(tracker.size() == 1);
  CHECK(tracker.find("old-open:1") == nullptr);
  CHECK(tracker.find("old-cancelled:1") == nullptr);
  CHECK(tracker.find("young:1") != nullptr);
  CHECK(tracker.on_status("old-open:1", kCctv, v1::ACKNOWLEDGED, t0 + 13h) ==
        StatusResult::unknown_alert);
}

}  // namespace
}  // namespace saferlink::server

namespace saferlink::server {
namespace {

TEST_CASE("an expired open alert stops escalating and has no deadline") {
  Fixture f;
  CHECK(f.tracker.expire(kAlert));
  CHECK(f.alert().state == State::expired);
  CHECK_FALSE(f.tracker.next_deadline().has_value());
  CHECK(f.tracker.due(f.t0 + 60s).empty());
  CHECK_FALSE(f.tracker.expire(kAlert));  // only an open alert expires
}

TEST_CASE("an acknowledged alert is not marked expired") {
  Fixture f;
  REQUIRE(f.tracker.on_status(kAlert, kCctv, v1::ACKNOWLEDGED, f.t0 + 1s) ==
          StatusResult::first_ack);
  CHECK_FALSE(f.tracker.expire(kAlert));
  CHECK(f.alert().state == State::acknowledged);
}

}  // namespace
}  // namespace saferlink::server
