// Field checks of device messages (server/session.hpp). Pure functions, but they live in
// saferlink_hub with the sessions, which only this binary links; hence here, not in unit/server.
#include "server/session.hpp"

#include <doctest/doctest.h>

#include "core/identity.hpp"
#include "proto/saferlink.pb.h"

#include <optional>
#include <string>

namespace {

using saferlink::Identity;
using saferlink::Role;
using saferlink::server::check_cancel;
using saferlink::server::check_panic;
using saferlink::server::check_status;
namespace v1 = saferlink::v1;

Identity shop() { return Identity{"shop-chatham-01", Role::shop, "chatham", "Pentagon Boots", "1A"}; }

v1::PanicAlert valid_panic() {
  v1::PanicAlert p;
  p.set_alert_id("shop-chatham-01:42");
  p.set_device_seq(42);
  p.set_pressed_at_ms(1'700'000'000'000);
  p.set_note("two men, one with a knife");
  p.set_status(v1::ACTUAL);
  p.set_severity(v1::SEVERE);
  return p;
}

// The refusal starts with the field it names ("field: what is wrong").
bool names_field(const std::optional<std::string>& refusal, const std::string& field) {
  return refusal && refusal->rfind(field + ":", 0) == 0;
}

}  // namespace

TEST_CASE("check_panic accepts a well-formed panic from its sender") {
  CHECK(check_panic(shop(), valid_panic()) == std::nullopt);
  auto p = valid_panic();
  p.set_note(std::string(500, 'n'));  // exactly at the limit
  p.set_status(v1::ALERT_STATUS_UNSPECIFIED);
  p.set_severity(v1::SEVERITY_UNSPECIFIED);
  CHECK(check_panic(shop(), p) == std::nullopt);
}

TEST_CASE("check_panic refuses an alert id that is not \"<sender id>:<device_seq>\"") {
  auto p = valid_panic();
  SUBCASE("another device's id") { p.set_alert_id("shop-chatham-02:42"); }
  SUBCASE("a different sequence number") { p.set_alert_id("shop-chatham-01:41"); }
  SUBCASE("no sequence number") { p.set_alert_id("shop-chatham-01"); }
  SUBCASE("padded sequence number") { p.set_alert_id("shop-chatham-01:042"); }
  SUBCASE("empty") { p.set_alert_id(""); }
  SUBCASE("over 100 bytes") { p.set_alert_id(std::string(101, 'a')); }
  const auto refusal = check_panic(shop(), p);
  CHECK_MESSAGE(names_field(refusal, "alert_id"), refusal.value_or("(accepted)"));
}

TEST_CASE("check_panic refuses device_seq 0") {
  auto p = valid_panic();
  p.set_device_seq(0);
  p.set_alert_id("shop-chatham-01:0");  // even when the id agrees with it
  const auto refusal = check_panic(shop(), p);
  CHECK_MESSAGE(names_field(refusal, "device_seq"), refusal.value_or("(accepted)"));
}

TEST_CASE("check_panic refuses a note over 500 bytes") {
  auto p = valid_panic();
  p.set_note(std::string(501, 'n'));
  const auto refusal = check_panic(shop(), p);
  CHECK_MESSAGE(names_field(refusal, "note"), refusal.value_or("(accepted)"));
}

TEST_CASE("check_panic refuses unknown status and severity values") {
  // Open enums: a newer or hostile sender can put any number on the wire.
  auto p = valid_panic();
  p.set_status(static_cast<v1::AlertStatusKind>(99));
  auto refusal = check_panic(shop(), p);
  CHECK_MESSAGE(names_field(refusal, "status"), refusal.value_or("(accepted)"));

  p = valid_panic();
  p.set_severity(static_cast<v1::Severity>(-3));
  refusal = check_panic(shop(), p);
  CHECK_MESSAGE(names_field(refusal, "severity"), refusal.value_or("(accepted)"));
}

TEST_CASE("check_panic refuses negative times") {
  auto p = valid_panic();
  p.set_pressed_at_ms(-1);
  auto refusal = check_panic(shop(), p);
  CHECK_MESSAGE(names_field(refusal, "pressed_at_ms"), refusal.value_or("(accepted)"));
  p = valid_panic();
  p.set_expires_at_ms(-1);
  refusal = check_panic(shop(), p);
  CHECK_MESSAGE(names_field(refusal, "expires_at_ms"), refusal.value_or("(accepted)"));
}

TEST_CASE("check_cancel accepts a cancel with an id and a short reason and refuses the rest") {
  v1::CancelAlert c;
  c.set_alert_id("shop-chatham-01:42");
  c.set_reason(std::string(200, 'r'));
  CHECK(check_cancel(c) == std::nullopt);

  c.set_reason(std::string(201, 'r'));
  auto refusal = check_cancel(c);
  CHECK_MESSAGE(names_field(refusal, "reason"), refusal.value_or("(accepted)"));

  c.set_reason("false alarm");
  c.set_alert_id("");
  refusal = check_cancel(c);
  CHECK_MESSAGE(names_field(refusal, "alert_id"), refusal.value_or("(accepted)"));
  c.set_alert_id(std::string(101, 'a'));
  refusal = check_cancel(c);
  CHECK_MESSAGE(names_field(refusal, "alert_id"), refusal.value_or("(accepted)"));
}

TEST_CASE("check_status accepts every known status and refuses unspecified or unknown ones") {
  v1::RecipientStatus s;
  s.set_alert_id("shop-chatham-01:42");
  for (auto kind : {v1::DELIVERED, v1::ACKNOWLEDGED, v1::EN_ROUTE, v1::ON_SCENE, v1::RESOLVED}) {
    s.set_status(kind);
    CHECK(check_status(s) == std::nullopt);
  }
  s.set_status(v1::RECIPIENT_STATUS_UNSPECIFIED);
  auto refusal = check_status(s);
  CHECK_MESSAGE(names_field(refusal, "status"), refusal.value_or("(accepted)"));
  s.set_status(static_cast<v1::RecipientStatusKind>(6));
  refusal = check_status(s);
  CHECK_MESSAGE(names_field(refusal, "status"), refusal.value_or("(accepted)"));

  s.set_status(v1::DELIVERED);
  s.set_alert_id("");
  refusal = check_status(s);
  CHECK_MESSAGE(names_field(refusal, "alert_id"), refusal.value_or("(accepted)"));
}
