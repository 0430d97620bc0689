#include "server/routing.hpp"

#include <doctest/doctest.h>

#include <iterator>
#include <string>
#include <utility>

namespace saferlink::server {
namespace {

Identity make(std::string id, Role role, std::string town) {
  Identity identity;
  identity.id = std::move(id);
  identity.role = role;
  identity.town = std::move(town);
  identity.member = "member of " + identity.id;
  return identity;
}

const Identity kChathamShop = make("shop-chatham-01", Role::shop, "chatham");

constexpr Role kAllRoles[] = {Role::shop, Role::police, Role::cctv, Role::coordinator, Role::hub};

// --- panic recipients ---------------------------------------------------------------------

TEST_CASE("a Chatham shop's panic reaches Chatham police but not Strood police") {
  const auto chatham_police = make("police-chatham-01", Role::police, "chatham");
  const auto strood_police = make("police-strood-01", Role::police, "strood");
  CHECK(receives_panic(kChathamShop, chatham_police, false));
  CHECK_FALSE(receives_panic(kChathamShop, strood_police, false));
}

TEST_CASE("a Chatham shop's panic reaches every other Chatham shop but no Strood shop") {
  CHECK(receives_panic(kChathamShop, make("shop-chatham-02", Role::shop, "chatham"), false));
  CHECK_FALSE(receives_panic(kChathamShop, make("shop-strood-01", Role::shop, "strood"), false));
}

TEST_CASE("every CCTV operator hears a panic from any town") {
  CHECK(receives_panic(kChathamShop, make("cctv-01", Role::cctv, "all"), false));
  CHECK(receives_panic(kChathamShop, make("cctv-02", Role::cctv, "strood"), false));
}

TEST_CASE("a coordinator hears a panic only once it is escalated") {
  const auto coordinator = make("coord-01", Role::coordinator, "all");
  CHECK_FALSE(receives_panic(kChathamShop, coordinator, false));
  CHECK(receives_panic(kChathamShop, coordinator, true));
}

TEST_CASE("an escalated panic reaches Strood police but no longer neighbouring shops") {
  CHECK(receives_panic(kChathamShop, make("police-strood-01", Role::police, "strood"), true));
  CHECK_FALSE(receives_panic(kChathamShop, make("shop-chatham-02", Role::shop, "chatham"), true));
}

TEST_CASE("recipients of a panic for every role and town, normal and escalated") {
  struct Row {
    Role role;
    const char* town;  // relative to the Chatham sender
    bool normal;
    bool escalated;
  };
  const Row rows[] = {
      {Role::shop, "chatham", true, false},
      {Role::shop, "strood", false, false},
      {Role::shop, "all", false, false},
      {Role::police, "chatham", true, true},
      {Role::police, "strood", false, true},
      {Role::police, "all", true, true},
      {Role::cctv, "chatham", true, true},
      {Role::cctv, "strood", true, true},
      {Role::cctv, "all", true, true},
      {Role::coordinator, "chatham", false, true},
      {Role::coordinator, "strood", false, true},
      {Role::coordinator, "all", false, true},
      {Role::hub, "chatham", false, false},
      {Role::hub, "strood", false, false},
      {Role::hub, "all", false, false},
  };
  int covered = 0;
  for (const auto& row : rows) {
    const auto recipient =
        make(std::string(to_string(row.role)) + "-" + row.town + "-09", row.role, row.town);
    INFO("recipient role ", to_string(row.role), " town ", row.town);
    CHECK(receives_panic(kChathamShop, recipient, false) == row.normal);
    CHECK(receives_panic(kChathamShop, recipient, true) == row.escalated);
    ++covered;
  }
  CHECK(covered == 15);  // 5 roles x 3 towns
}

TEST_CASE("the sender never receives its own alert, normal or escalated, whatever its role") {
  for (const Role role : kAllRoles) {
    for (const char* town : {"chatham", "all"}) {
      const auto sender = make("device-01", role, town);
      INFO("role ", to_string(role), " town ", town);
      CHECK_FALSE(receives_panic(sender, sender, false));
      CHECK_FALSE(receives_panic(sender, sender, true));
    }
  }
  // Same id is enough, even if the other fields differ (a re-issued certificate).
  auto reissued = kChathamShop;
  reissued.serial_hex = "0A";
  reissued.member = "another name";
  CHECK_FALSE(receives_panic(kChathamShop, reissued, false));
}

TEST_CASE("a shop with town 'all' neither hears nor reaches other shops but still reaches "
          "CCTV and all-town police") {
  const auto odd_shop = make("shop-odd-01", Role::shop, "all");
  const auto other_odd_shop = make("shop-odd-02", Role::shop, "all");
  CHECK_FALSE(receives_panic(odd_shop, kChathamShop, false));
  CHECK_FALSE(receives_panic(kChathamShop, odd_shop, false));
  CHECK_FALSE(receives_panic(odd_shop, other_odd_shop, false));
  CHECK(receives_panic(odd_shop, make("cctv-01", Role::cctv, "all"), false));
  CHECK(receives_panic(odd_shop, make("police-all-01", Role::police, "all"), false));
  CHECK_FALSE(receives_panic(odd_shop, make("police-chatham-01", Role::police, "chatham"), false));
}

// --- sighting recipients ----------------------------------------------------------------

TEST_CASE("sighting recipients for every sender, recipient role and town, with and without a "
          "possible breach") {
  // Senders: a Chatham shop, Chatham police, and CCTV / police with town "all" reporting a
  // sighting in Chatham (the hub routes them as standing in the town they name).
  const Identity senders[] = {
      kChathamShop,
      make("police-chatham-07", Role::police, "chatham"),
      make("cctv-all-07", Role::cctv, "chatham"),
      make("police-all-07", Role::police, "chatham"),
  };
  struct Row {
    Role role;
    const char* town;
    bool normal;
    bool breach;
  };
  const Row rows[] = {
      {Role::shop, "chatham", true, true},
      {Role::shop, "strood", false, false},
      {Role::shop, "all", false, false},
      {Role::police, "chatham", true, true},
      {Role::police, "strood", false, false},
      {Role::police, "all", true, true},
      {Role::cctv, "chatham", true, true},
      {Role::cctv, "strood", true, true},
      {Role::cctv, "all", true, true},
      {Role::coordinator, "chatham", false, true},
      {Role::coordinator, "strood", false, true},
      {Role::coordinator, "all", false, true},
      {Role::hub, "chatham", false, false},
      {Role::hub, "strood", false, false},
      {Role::hub, "all", false, false},
  };
  int covered = 0;
  for (const auto& sender : senders) {
    for (const auto& row : rows) {
      const auto recipient =
          make(std::string(to_string(row.role)) + "-" + row.town + "-09", row.role, row.town);
      INFO("sender ", sender.id, " recipient role ", to_string(row.role), " town ", row.town);
      CHECK(receives_sighting(sender, recipient, false) == row.normal);
      CHECK(receives_sighting(sender, recipient, true) == row.breach);
      ++covered;
    }
  }
  CHECK(covered == 4 * 15);  // 4 senders x 5 roles x 3 towns
}

TEST_CASE("a Strood sighting reaches Strood shops and police but no Chatham shop or police") {
  const auto strood_shop = make("shop-strood-01", Role::shop, "strood");
  CHECK(receives_sighting(strood_shop, make("shop-strood-02", Role::shop, "strood"), false));
  CHECK(receives_sighting(strood_shop, make("police-strood-01", Role::police, "strood"), false));
  CHECK_FALSE(receives_sighting(strood_shop, kChathamShop, false));
  CHECK_FALSE(receives_sighting(strood_shop, kChathamShop, true));
  CHECK_FALSE(
      receives_sighting(strood_shop, make("police-chatham-01", Role::police, "chatham"), true));
}

TEST_CASE("the sender never receives its own sighting, flagged or not, whatever its role") {
  for (const Role role : kAllRoles) {
    for (const char* town : {"chatham", "all"}) {
      const auto sender = make("device-01", role, town);
      INFO("role ", to_string(role), " town ", town);
      CHECK_FALSE(receives_sighting(sender, sender, false));
      CHECK_FALSE(receives_sighting(sender, sender, true));
    }
  }
}

TEST_CASE("a sighting still routed with town 'all' reaches no shop and no town police, only "
          "CCTV and all-town police") {
  const auto unnamed = make("cctv-01", Role::cctv, "all");
  CHECK_FALSE(receives_sighting(unnamed, kChathamShop, false));
  CHECK_FALSE(receives_sighting(unnamed, make("police-chatham-01", Role::police, "chatham"),
                                false));
  CHECK(receives_sighting(unnamed, make("police-all-01", Role::police, "all"), false));
  CHECK(receives_sighting(unnamed, make("cctv-02", Role::cctv, "all"), false));
}

TEST_CASE("a coordinator may not send a sighting and nobody may send sighting_accepted") {
  CHECK_FALSE(may_send(Role::coordinator, v1::Envelope::kSighting));
  CHECK(refusal_reason(Role::coordinator, v1::Envelope::kSighting) ==
        "role coordinator may not send sighting");
  CHECK(refusal_reason(Role::shop, v1::Envelope::kSightingAccepted) ==
        "role shop may not send sighting_accepted");
}

// --- what each role may send -----------------------------------------------------------

TEST_CASE("may_send allows exactly the role and message pairs of the protocol, deny by default") {
  using E = v1::Envelope;
  struct Row {
    E::BodyCase body;
    bool shop, police, cctv, coordinator, hub;
  };
  const Row rows[] = {
      {E::kHello, true, true, true, true, false},
      {E::kWelcome, false, false, false, false, false},
      {E::kPanic, true, false, false, false, false},
      {E::kAccepted, false, false, false, false, false},
      {E::kCancel, true, false, false, false, false},
      {E::kStatus, true, true, true, true, false},
      {E::kUpdate, false, false, false, false, false},
      {E::kHeartbeat, true, true, true, true, false},
      {E::kError, true, true, true, true, false},
      {E::kReceipt, false, false, false, false, false},
      {E::kForm, true, true, true, true, false},
      {E::kFormConfirmed, false, false, false, false, false},
      {E::kUploadBegin, true, true, true, true, false},
      {E::kUploadChunk, true, true, true, true, false},
      {E::kUploadStatus, false, false, false, false, false},
      {E::kQuery, true, true, true, true, false},
      {E::kQueryResult, false, false, false, false, false},
      {E::kSighting, true, true, true, false, false},
      {E::kSightingAccepted, false, false, false, false, false},
      {E::kGallerySync, false, false, false, false, false},
      {E::kGalleryEntry, false, false, false, false, false},
      {E::kGalleryRemove, false, false, false, false, false},
      {E::kGalleryRemoved, true, true, true, true, false},
      {E::kPhotoRequest, true, true, true, true, false},
      {E::kPhotoChunk, false, false, false, false, false},
      {E::BODY_NOT_SET, false, false, false, false, false},
  };
  int covered = 0;
  for (const auto& row : rows) {
    const bool expected[] = {row.shop, row.police, row.cctv, row.coordinator, row.hub};
    for (std::size_t i = 0; i < std::size(kAllRoles); ++i) {
      INFO("role ", to_string(kAllRoles[i]), " body ", static_cast<int>(row.body));
      CHECK(may_send(kAllRoles[i], row.body) == expected[i]);
      ++covered;
    }
  }
  CHECK(covered == 26 * 5);  // every body case of the envelope, for every role
}

TEST_CASE("may_report gives delivered and acknowledged to every receiving role and the "
          "journey statuses to police only") {
  struct Row {
    v1::RecipientStatusKind status;
    bool shop, police, cctv, coordinator, hub;
  };
  const Row rows[] = {
      {v1::RECIPIENT_STATUS_UNSPECIFIED, false, false, false, false, false},
      {v1::DELIVERED, true, true, true, true, false},
      {v1::ACKNOWLEDGED, true, true, true, true, false},
      {v1::EN_ROUTE, false, true, false, false, false},
      {v1::ON_SCENE, false, true, false, false, false},
      {v1::RESOLVED, false, true, false, false, false},
      {static_cast<v1::RecipientStatusKind>(42), false, false, false, false, false},
  };
  for (const auto& row : rows) {
    const bool expected[] = {row.shop, row.police, row.cctv, row.coordinator, row.hub};
    for (std::size_t i = 0; i < std::size(kAllRoles); ++i) {
      INFO("role ", to_string(kAllRoles[i]), " status ", static_cast<int>(row.status));
      CHECK(may_report(kAllRoles[i], row.status) == expected[i]);
    }
  }
}

TEST_CASE("CCTV, police and coordinators are responders, shops and the hub are not") {
  CHECK(is_responder(Role::cctv));
  CHECK(is_responder(Role::police));
  CHECK(is_responder(Role::coordinator));
  CHECK_FALSE(is_responder(Role::shop));
  CHECK_FALSE(is_responder(Role::hub));
}

TEST_CASE("a refusal names the role and the message in lower case") {
  using E = v1::Envelope;
  CHECK(refusal_reason(Role::cctv, E::kPanic) == "role cctv may not send panic");
  CHECK(refusal_reason(Role::police, E::kCancel) == "role police may not send cancel");
  CHECK(refusal_reason(Role::shop, E::kWelcome) == "role shop may not send welcome");
  CHECK(refusal_reason(Role::shop, E::kAccepted) == "role shop may not send accepted");
  CHECK(refusal_reason(Role::coordinator, E::kUpdate) == "role coordinator may not send update");
  CHECK(refusal_reason(Role::shop, E::kReceipt) == "role shop may not send receipt");
  CHECK(refusal_reason(Role::hub, E::kHello) == "role hub may not send hello");
  CHECK(refusal_reason(Role::hub, E::kStatus) == "role hub may not send status");
  CHECK(refusal_reason(Role::hub, E::kHeartbeat) == "role hub may not send heartbeat");
  CHECK(refusal_reason(Role::hub, E::kError) == "role hub may not send error");
  CHECK(refusal_reason(Role::shop, E::BODY_NOT_SET) == "role shop may not send empty envelope");
}

TEST_CASE("a status refusal names the role and the status in lower case") {
  CHECK(refusal_reason(Role::shop, v1::EN_ROUTE) == "role shop may not send status en_route");
  CHECK(refusal_reason(Role::cctv, v1::ON_SCENE) == "role cctv may not send status on_scene");
  CHECK(refusal_reason(Role::coordinator, v1::RESOLVED) ==
        "role coordinator may not send status resolved");
  CHECK(refusal_reason(Role::hub, v1::DELIVERED) == "role hub may not send status delivered");
  CHECK(refusal_reason(Role::hub, v1::ACKNOWLEDGED) ==
        "role hub may not send status acknowledged");
  CHECK(refusal_reason(Role::police, v1::RECIPIENT_STATUS_UNSPECIFIED) ==
        "role police may not send status unspecified");
}

}  // namespace
}  // namespace saferlink::server
