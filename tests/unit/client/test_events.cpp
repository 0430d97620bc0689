#include "client/client.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace saferlink;

TEST_CASE("listen --json describes a relayed panic with type, ids, role, town, status and times") {
  v1::Envelope e;
  e.set_msg_id(42);
  e.set_sent_at_ms(1000);
  auto* p = e.mutable_panic();
  p->set_alert_id("shop-1:7");
  p->set_origin_id("shop-1");
  p->set_origin_town("chatham");
  p->set_origin_member("Boots");
  p->set_status(v1::EXERCISE);
  p->set_pressed_at_ms(900);
  const auto j = nlohmann::json::parse(client::event_json(e, 1005));
  CHECK(j["type"] == "panic");
  CHECK(j["alert_id"] == "shop-1:7");
  CHECK(j["from_id"] == "shop-1");
  CHECK(j["from_role"] == "shop");
  CHECK(j["town"] == "chatham");
  CHECK(j["status"] == "exercise");
  CHECK(j["sent_at_ms"] == 1000);
  CHECK(j["received_at_ms"] == 1005);
}

TEST_CASE("an acknowledgement update names who acknowledged, in JSON and for a person") {
  v1::Envelope e;
  auto* u = e.mutable_update();
  u->set_alert_id("shop-1:7");
  u->set_event(v1::RECIPIENT);
  u->set_recipient_status(v1::ACKNOWLEDGED);
  u->set_by_id("cctv-02");
  u->set_by_role("cctv");
  u->set_by_town("all");
  u->set_at_ms(1795313717757);
  const auto j = nlohmann::json::parse(client::event_json(e, 0));
  CHECK(j["type"] == "update");
  CHECK(j["status"] == "acknowledged");
  CHECK(j["from_id"] == "cctv-02");
  CHECK(j["from_role"] == "cctv");
  const std::string text = client::describe(e);
  CHECK(text.rfind("CCTV: acknowledged by cctv-02", 0) == 0);
}

TEST_CASE("an exercise panic is never described as a real one") {
  v1::Envelope e;
  e.mutable_panic()->set_alert_id("shop-1:8");
  e.mutable_panic()->set_status(v1::EXERCISE);
  CHECK(client::describe(e).rfind("[EXERCISE] PANIC", 0) == 0);
  e.mutable_panic()->set_status(v1::TEST);
  CHECK(client::describe(e).rfind("[TEST] PANIC", 0) == 0);
  e.mutable_panic()->set_status(v1::ACTUAL);
  CHECK(client::describe(e).rfind("PANIC", 0) == 0);
}
