// The console's HTTPS listener (issue 7, first part): client certificates are the login, the
// coordinator API answers coordinators only, bad input gets a clear status and message, and
// every answer carries the security headers. Real TLS on loopback port 0.
#include "tests/support/device.hpp"
#include "tests/support/hub_fixture.hpp"
#include "tests/support/images.hpp"
#include "tests/support/pki.hpp"

#include "core/base64.hpp"
#include "core/image.hpp"
#include "core/tls.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <map>
#include <thread>

using namespace saferlink;
using namespace saferlink::test;
using json = nlohmann::json;

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct Console {
  Console() {
    pki.issue(Role::coordinator, "all", "coord-1", "Safer Medway");
    pki.issue(Role::shop, "chatham", "shop-chatham-1", "Boots Chatham");
    pki.issue(Role::cctv, "all", "cctv-01", "Medway CCTV");
    pki.issue(Role::shop, "chatham", "shop-chatham-2", "WHSmith Chatham");
    pki.issue(Role::police, "chatham", "police-chatham-1", "Kent Police");
    pki.issue(Role::police, "strood", "police-strood-1", "Kent Police");
    pki.issue(Role::coordinator, "all", "coord-2", "Safer Medway");
    hub = std::make_unique<HubFixture>(pki, [](server::HubConfig& c) {
      c.console_listen = "127.0.0.1:0";
    });
    REQUIRE(hub->hub->console_port() != 0);
  }
  // One request over a fresh TLS connection as `id` (empty: no client certificate).
  http::response<http::string_body> request(const std::string& id, http::verb verb,
                                            const std::string& target,
                                            const std::string& body = "",
                                            const std::map<std::string, std::string>& headers = {}) {
    asio::io_context io;
    std::shared_ptr<asio::ssl::context> context;
    if (id.empty()) {
      context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
      context->load_verify_file((pki.dir() / "ca.crt").string());
      context->set_verify_mode(asio::ssl::verify_peer);
    } else {
      context = make_client_context(tls_files(pki.dir(), id));
    }
    asio::ssl::stream<asio::ip::tcp::socket> stream(io, *context);
    stream.lowest_layer().connect({asio::ip::make_address("127.0.0.1"), hub->hub->console_port()});
    stream.handshake(asio::ssl::stream_base::client);
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : headers) req.set(name, value);
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    return res;
  }
  TestPki pki;
  std::unique_ptr<HubFixture> hub;
};

std::string error_of(const http::response<http::string_body>& r) {
  return json::parse(r.body()).value("error", "");
}

}  // namespace

TEST_CASE("the console knows who you are from your certificate and serves its page with strict "
          "security headers") {
  Console console;
  auto me = console.request("coord-1", http::verb::get, "/api/me");
  REQUIRE(me.result() == http::status::ok);
  const auto j = json::parse(me.body());
  CHECK(j["id"] == "coord-1");
  CHECK(j["role"] == "coordinator");
  CHECK(me[http::field::cache_control] == "no-store");

  auto page = console.request("cctv-01", http::verb::get, "/");
  REQUIRE(page.result() == http::status::ok);
  CHECK(std::string(page[http::field::content_type]).starts_with("text/html"));
  const std::string csp(page["Content-Security-Policy"]);
  CHECK(csp.find("frame-ancestors 'none'") != std::string::npos);
  CHECK(csp.find("script-src 'self'") != std::string::npos);
  CHECK(csp.find("unsafe-inline") == std::string::npos);
  CHECK(page["X-Content-Type-Options"] == "nosniff");
  CHECK(page["Cross-Origin-Resource-Policy"] == "same-origin");
  CHECK(page.body().find("/app.js") != std::string::npos);
  auto script = console.request("cctv-01", http::verb::get, "/app.js");
  REQUIRE(script.result() == http::status::ok);
  CHECK(std::string(script[http::field::content_type]).starts_with("text/javascript"));
}

TEST_CASE("a request without a client certificate is refused at the TLS layer") {
  Console console;
  CHECK_THROWS(console.request("", http::verb::get, "/api/me"));
}

TEST_CASE("a shop's certificate cannot use the coordinator API (403), a coordinator's can") {
  Console console;
  auto shop = console.request("shop-chatham-1", http::verb::post, "/api/coord/audit.verify", "{}");
  CHECK(shop.result() == http::status::forbidden);
  CHECK(error_of(shop).find("coordinators") != std::string::npos);
  auto cctv = console.request("cctv-01", http::verb::post, "/api/coord/profiles.list", "{}");
  CHECK(cctv.result() == http::status::forbidden);

  auto coord = console.request("coord-1", http::verb::post, "/api/coord/audit.verify", "{}");
  REQUIRE(coord.result() == http::status::ok);
  CHECK(json::parse(coord.body())["ok"] == true);
}

TEST_CASE("the coordinator API answers bad input with a clear status and message") {
  Console console;
  auto malformed = console.request("coord-1", http::verb::post, "/api/coord/profiles.list", "{oops");
  CHECK(malformed.result() == http::status::bad_request);
  CHECK(error_of(malformed).find("JSON object") != std::string::npos);
  auto array = console.request("coord-1", http::verb::post, "/api/coord/profiles.list", "[1]");
  CHECK(array.result() == http::status::bad_request);
  auto unknown = console.request("coord-1", http::verb::post, "/api/coord/no.such.op", "{}");
  CHECK(unknown.result() == http::status::bad_request);
  CHECK(error_of(unknown).find("unknown op") != std::string::npos);
  auto missing = console.request("coord-1", http::verb::post, "/api/coord/notice.show",
                                 R"({"notice_id": 4242})");
  CHECK(missing.result() == http::status::bad_request);
  CHECK(error_of(missing).find("4242") != std::string::npos);
  auto wrong_state = console.request("coord-1", http::verb::post, "/api/coord/notice.approve",
                                     R"({"notice_id": 1, "reason": "x"})");
  CHECK(wrong_state.result() == http::status::bad_request);
  auto get = console.request("coord-1", http::verb::get, "/api/coord/profiles.list");
  CHECK(get.result() == http::status::method_not_allowed);
  auto nothing = console.request("coord-1", http::verb::get, "/api/nothing");
  CHECK(nothing.result() == http::status::not_found);
  auto page = console.request("coord-1", http::verb::get, "/no-such-page.html");
  CHECK(page.result() == http::status::not_found);
  // Far more than the limit: the hub answers 413 and reads the rest before it closes, so the
  // sender gets the answer instead of a connection reset (which, closing early, it would get
  // in some of these tries).
  const std::string too_big = "{\"x\": \"" + std::string(3 * 1024 * 1024, 'a') + "\"}";
  for (int i = 0; i < 5; ++i) {
    auto huge = console.request("coord-1", http::verb::post, "/api/coord/profiles.list", too_big);
    CHECK(huge.result() == http::status::payload_too_large);
    CHECK(error_of(huge).find("64 KiB") != std::string::npos);
  }
}

namespace {

// The console's live feed as a browser opens it: a WebSocket over the same mutual TLS, one
// Envelope in JSON per text message.
struct LiveFeed {
  LiveFeed(const TestPki& pki, const std::string& id, std::uint16_t port)
      : context(make_client_context(tls_files(pki.dir(), id))), ws(io, *context) {
    auto& socket = beast::get_lowest_layer(ws);
    socket.connect({asio::ip::make_address("127.0.0.1"), port});
    timeval timeout{10, 0};  // a read that hangs fails the test instead of hanging it
    REQUIRE(::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                         sizeof timeout) == 0);
    ws.next_layer().handshake(asio::ssl::stream_base::client);
    ws.handshake("127.0.0.1", "/api/live");
  }
  void send(const json& envelope) {
    ws.text(true);
    ws.write(asio::buffer(envelope.dump()));
  }
  json next() {
    beast::flat_buffer buffer;
    ws.read(buffer);
    return json::parse(beast::buffers_to_string(buffer.data()));
  }
  // The next message with `key` at the top level (others are skipped).
  json next_with(const std::string& key) {
    for (int i = 0; i < 50; ++i) {
      json j = next();
      if (j.contains(key)) return j;
    }
    FAIL("no message with " << key);
    return {};
  }
  asio::io_context io;
  std::shared_ptr<asio::ssl::context> context;
  beast::websocket::stream<asio::ssl::stream<asio::ip::tcp::socket>> ws;
};

}  // namespace

TEST_CASE("on the live feed a CCTV operator sees a shop's panic and acknowledges it, and the "
          "shop hears the acknowledgement naming that operator") {
  Console console;
  LiveFeed feed(console.pki, "cctv-01", console.hub->hub->console_port());
  feed.send({{"hello", {{"protocol_version", 1}}}});
  const json welcome = feed.next_with("welcome");
  CHECK(welcome["welcome"]["device_id"] == "cctv-01");
  CHECK(welcome["welcome"]["role"] == "cctv");

  TestDevice shop(console.pki.dir(), "shop-chatham-1", console.hub->address());
  shop.connect();
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (console.hub->hub->stats().sessions_live < 2 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(5ms);
  }
  shop.panic(1);
  const json panic = feed.next_with("panic");
  CHECK(panic["panic"]["alert_id"] == "shop-chatham-1:1");
  CHECK(panic["panic"]["origin_member"] == "Boots Chatham");
  CHECK(panic["seq"].get<std::string>() != "0");  // 64-bit numbers are strings in JSON

  feed.send({{"status", {{"alert_id", "shop-chatham-1:1"}, {"status", "ACKNOWLEDGED"}}}});
  CHECK(feed.next_with("receipt").contains("receipt"));
  auto ack = shop.wait_for(is_update("shop-chatham-1:1", v1::ACKNOWLEDGED));
  REQUIRE(ack);
  CHECK(ack->update().by_id() == "cctv-01");
  CHECK(ack->update().by_role() == "cctv");
}

TEST_CASE("the live feed refuses what is not an envelope and what the role may not send, and "
          "keeps serving") {
  Console console;
  LiveFeed feed(console.pki, "cctv-01", console.hub->hub->console_port());
  feed.send({{"hello", {{"protocol_version", 1}}}});
  feed.next_with("welcome");
  feed.ws.text(true);
  feed.ws.write(asio::buffer(std::string("not json")));
  CHECK(feed.next_with("error")["error"]["code"] == "MALFORMED");
  // A CCTV operator may not press panic.
  feed.send({{"msg_id", "7"},
             {"panic", {{"alert_id", "cctv-01:1"}, {"device_seq", "1"}}}});
  const json refused = feed.next_with("error");
  CHECK(refused["error"]["code"] == "NOT_ALLOWED");
  CHECK(refused["error"]["in_reply_to"] == "7");
  // Still served: a query answers.
  feed.send({{"msg_id", "8"}, {"query", {{"op", "gallery"}, {"args_json", "{}"}}}});
  CHECK(feed.next_with("query_result")["query_result"]["in_reply_to"] == "8");
}

TEST_CASE("the handsets on air are listed with their last heartbeat and battery for the control "
          "room, and not for shops") {
  Console console;
  TestDevice shop(console.pki.dir(), "shop-chatham-2", console.hub->address());
  shop.connect();
  v1::Envelope beat;
  beat.mutable_heartbeat()->set_battery_percent(37);
  shop.send(beat);
  json handsets;
  const auto until = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    auto r = console.request("cctv-01", http::verb::get, "/api/handsets");
    REQUIRE(r.result() == http::status::ok);
    handsets = json::parse(r.body())["handsets"];
    const bool seen = !handsets.empty() && handsets[0]["battery_percent"] == 37;
    if (seen || std::chrono::steady_clock::now() > until) break;
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(handsets.size() == 1);
  CHECK(handsets[0]["device_id"] == "shop-chatham-2");
  CHECK(handsets[0]["town"] == "chatham");
  CHECK(handsets[0]["battery_percent"] == 37);
  CHECK(handsets[0]["last_heard_ms"].get<std::int64_t>() >=
        handsets[0]["connected_at_ms"].get<std::int64_t>());
  CHECK(handsets[0]["software"].get<std::string>().find("saferlink") != std::string::npos);
  // A console on the live feed is listed with what its hello said it runs; a long name is cut
  // at a character boundary (100 bytes at most), never into invalid UTF-8.
  LiveFeed feed(console.pki, "cctv-01", console.hub->hub->console_port());
  std::string name = "saferlink-console ";
  while (name.size() < 99) name += "x";
  name += "\u00e9\u00e9";  // "é" is two bytes: byte 100 falls inside the first one
  feed.send({{"hello", {{"protocol_version", 1}, {"software", name}}}});
  feed.next_with("welcome");
  std::string cut;
  const auto until2 = std::chrono::steady_clock::now() + 5s;
  while (cut.empty() && std::chrono::steady_clock::now() < until2) {
    auto r = console.request("coord-1", http::verb::get, "/api/handsets");
    REQUIRE(r.result() == http::status::ok);
    const json answer = json::parse(r.body());
    for (const auto& h : answer["handsets"]) {
      if (h["device_id"] == "cctv-01") cut = h["software"].get<std::string>();
    }
  }
  CHECK(cut == name.substr(0, 99));
  CHECK(console.request("shop-chatham-1", http::verb::get, "/api/handsets").result() ==
        http::status::forbidden);
  CHECK(console.request("coord-1", http::verb::post, "/api/handsets", "{}").result() ==
        http::status::method_not_allowed);
}

namespace {

// Waits until the hub has `n` live sessions.
void wait_sessions(Console& console, std::uint64_t n) {
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (console.hub->hub->stats().sessions_live < n && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(5ms);
  }
  REQUIRE(console.hub->hub->stats().sessions_live >= n);
}

// The alerts of GET /api/alerts as `id` sees them, once `ready` holds for them (or 5 s).
json alerts_of(Console& console, const std::string& id,
               const std::function<bool(const json&)>& ready = [](const json&) { return true; }) {
  const auto until = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    auto r = console.request(id, http::verb::get, "/api/alerts");
    REQUIRE(r.result() == http::status::ok);
    CHECK(r[http::field::cache_control] == "no-store");
    json alerts = json::parse(r.body())["alerts"];
    if (ready(alerts) || std::chrono::steady_clock::now() > until) return alerts;
    std::this_thread::sleep_for(20ms);
  }
}

}  // namespace

TEST_CASE("the alert board lists recent alerts newest first with who acknowledged them, by "
          "town, and not for shops") {
  Console console;
  TestDevice shop(console.pki.dir(), "shop-chatham-1", console.hub->address());
  TestDevice police(console.pki.dir(), "police-chatham-1", console.hub->address());
  shop.connect();
  police.connect();
  wait_sessions(console, 2);
  shop.panic(1);
  REQUIRE(police.wait_for([](const v1::Envelope& e) { return e.has_panic(); }));
  shop.panic(2, v1::EXERCISE);
  REQUIRE(police.wait_for([](const v1::Envelope& e) {
    return e.has_panic() && e.panic().alert_id() == "shop-chatham-1:2";
  }));
  police.status("shop-chatham-1:1", v1::ACKNOWLEDGED);
  police.status("shop-chatham-1:1", v1::EN_ROUTE);
  REQUIRE(shop.wait_for(is_update("shop-chatham-1:1", v1::EN_ROUTE)));

  const json alerts = alerts_of(console, "cctv-01", [](const json& a) {
    return a.size() == 2 && a[1]["events"].size() == 2;
  });
  REQUIRE(alerts.size() == 2);
  CHECK(alerts[0]["alert_id"] == "shop-chatham-1:2");  // newest first
  CHECK(alerts[0]["status"] == "exercise");
  CHECK(alerts[0]["state"] == "open");
  CHECK(alerts[0]["acknowledged_at_ms"].is_null());
  const json& first = alerts[1];
  CHECK(first["alert_id"] == "shop-chatham-1:1");
  REQUIRE(first["events"].size() == 2);
  CHECK(first["member"] == "Boots Chatham");
  CHECK(first["town"] == "chatham");
  CHECK(first["state"] == "acknowledged");
  CHECK(first["delivered"].get<int>() >= 1);
  CHECK(first["events"][0]["kind"] == "acknowledged");
  CHECK(first["events"][0]["by_id"] == "police-chatham-1");
  CHECK(first["events"][1]["kind"] == "en_route");
  CHECK(first["cancelled_at_ms"].is_null());

  // Police of another town do not see Chatham's alerts (nothing escalated); shops see none.
  CHECK(alerts_of(console, "police-strood-1").empty());
  CHECK(alerts_of(console, "police-chatham-1").size() == 2);
  auto shop_board = console.request("shop-chatham-2", http::verb::get, "/api/alerts");
  CHECK(shop_board.result() == http::status::forbidden);
  CHECK(error_of(shop_board).find("alert board") != std::string::npos);
  auto bad = console.request("cctv-01", http::verb::get, "/api/alerts?hours=1000");
  CHECK(bad.result() == http::status::bad_request);
  CHECK(error_of(bad).find("hours") != std::string::npos);
  CHECK(console.request("cctv-01", http::verb::get, "/api/alerts?town=strood").result() ==
        http::status::bad_request);
  CHECK(console.request("cctv-01", http::verb::post, "/api/alerts", "{}").result() ==
        http::status::method_not_allowed);
}

TEST_CASE("a console with capability board hears every acknowledgement of the alerts it sees, "
          "whoever made it") {
  Console console;
  LiveFeed feed(console.pki, "cctv-01", console.hub->hub->console_port());
  feed.send({{"hello", {{"protocol_version", 1}, {"capabilities", {"alerts", "board"}}}}});
  const json welcome = feed.next_with("welcome");
  const auto caps = welcome["welcome"]["capabilities"];
  CHECK(std::find(caps.begin(), caps.end(), "board") != caps.end());
  LiveFeed plain(console.pki, "coord-1", console.hub->hub->console_port());
  plain.send({{"hello", {{"protocol_version", 1}}}});
  plain.next_with("welcome");
  TestDevice shop(console.pki.dir(), "shop-chatham-1", console.hub->address());
  TestDevice police(console.pki.dir(), "police-chatham-1", console.hub->address());
  shop.connect();
  police.connect();
  wait_sessions(console, 4);
  shop.panic(1);
  feed.next_with("panic");
  police.status("shop-chatham-1:1", v1::ACKNOWLEDGED);
  const json update = feed.next_with("update");
  CHECK(update["update"]["alert_id"] == "shop-chatham-1:1");
  CHECK(update["update"]["recipient_status"] == "ACKNOWLEDGED");
  CHECK(update["update"]["by_id"] == "police-chatham-1");
  // Without the capability, only the sender hears updates: the coordinator's feed (which gets
  // no panic either: nothing escalated) stays quiet until its own query's answer.
  plain.send({{"msg_id", "5"}, {"query", {{"op", "gallery"}, {"args_json", "{}"}}}});
  const json next = plain.next();
  CHECK_FALSE(next.contains("update"));
  CHECK(next.contains("query_result"));
}

TEST_CASE("the console serves images by SHA-256 with the photos.get rules and no-store") {
  Console console;
  TestDevice coord(console.pki.dir(), "coord-1", console.hub->address());
  coord.connect();
  // Large enough to take more than one 256 KiB piece.
  const auto big = coord.upload(images::make_png(400, 300, false));
  REQUIRE(big.done());
  const std::string sha = big.stored_sha256();
  auto image = console.request("coord-1", http::verb::get, "/api/photo/" + sha);
  REQUIRE(image.result() == http::status::ok);
  CHECK(image[http::field::content_type] == "image/png");
  CHECK(image[http::field::cache_control] == "no-store");
  CHECK(image.body().size() > 256 * 1024);
  CHECK(sha256_hex(image.body()) == sha);

  // Not a profile's or an active notice's photo: CCTV and shops may not read it.
  auto cctv = console.request("cctv-01", http::verb::get, "/api/photo/" + sha);
  CHECK(cctv.result() == http::status::forbidden);
  CHECK(console.request("shop-chatham-1", http::verb::get, "/api/photo/" + sha).result() ==
        http::status::forbidden);
  auto unknown = console.request("coord-1", http::verb::get, "/api/photo/" + std::string(64, 'a'));
  CHECK(unknown.result() == http::status::not_found);
  CHECK(error_of(unknown).find("no image") != std::string::npos);
  auto bad = console.request("coord-1", http::verb::get, "/api/photo/../../etc/passwd");
  CHECK(bad.result() == http::status::bad_request);
  CHECK(error_of(bad).find("SHA-256") != std::string::npos);
}

TEST_CASE("a coordinator downloads a subject access export with its images, others may not") {
  Console console;
  TestDevice coord(console.pki.dir(), "coord-1", console.hub->address());
  coord.connect();
  const auto photo = coord.upload(images::make_png(5, 5, false));
  REQUIRE(photo.done());
  auto created = console.request("coord-1", http::verb::post, "/api/coord/profiles.create",
                                 R"({"name": "Sam Ple", "description": "tall"})");
  REQUIRE(created.result() == http::status::ok);
  const auto profile_id = json::parse(created.body())["profile_id"].get<std::int64_t>();
  const json add{{"profile_id", profile_id}, {"sha256", photo.stored_sha256()}};
  REQUIRE(console.request("coord-1", http::verb::post, "/api/coord/profiles.photo_add", add.dump())
              .result() == http::status::ok);

  const std::string target = "/api/sar/" + std::to_string(profile_id);
  auto sar = console.request("coord-1", http::verb::get, target);
  REQUIRE(sar.result() == http::status::ok);
  CHECK(std::string(sar[http::field::content_disposition])
            .find("attachment; filename=\"sar-profile-" + std::to_string(profile_id) + ".json\"") !=
        std::string::npos);
  const json document = json::parse(sar.body());
  CHECK(document["profile_id"] == profile_id);
  CHECK(document["export"].is_object());
  REQUIRE(document["photos"].size() == 1);
  CHECK(document["photos"][0]["sha256"] == photo.stored_sha256());
  CHECK(document["photos"][0]["mime"] == "image/png");
  const auto bytes = base64_decode(document["photos"][0]["data_b64"].get<std::string>());
  REQUIRE(bytes);
  CHECK(sha256_hex(*bytes) == photo.stored_sha256());

  auto cctv = console.request("cctv-01", http::verb::get, target);
  CHECK(cctv.result() == http::status::forbidden);
  CHECK(error_of(cctv).find("coordinators") != std::string::npos);
  auto unknown = console.request("coord-1", http::verb::get, "/api/sar/999999");
  CHECK(unknown.result() == http::status::bad_request);
  CHECK(error_of(unknown).find("999999") != std::string::npos);
  CHECK(console.request("coord-1", http::verb::get, "/api/sar/abc").result() ==
        http::status::bad_request);
  CHECK(console.request("coord-1", http::verb::post, target, "{}").result() ==
        http::status::method_not_allowed);
}

TEST_CASE("through the coordinator API a coordinator cannot approve their own proposal, another "
          "can, and illegal transitions are refused with the reason") {
  Console console;
  TestDevice shop(console.pki.dir(), "shop-chatham-1", console.hub->address());
  shop.connect();
  v1::Envelope form;
  auto* f = form.mutable_form();
  f->set_form_id("form-console-0001");
  f->set_occurred_at_ms(now_ms() - 3'600'000);
  f->set_town("chatham");
  f->set_premises("Pentagon Centre");
  f->set_category("theft_from_shop");
  f->set_description("Took razor blades");
  f->add_unknown_offenders("male, 30s, grey hoodie");
  const auto form_msg = shop.send(form);
  auto confirmed = shop.wait_for([form_msg](const v1::Envelope& e) {
    return e.has_form_confirmed() || (e.has_error() && e.error().in_reply_to() == form_msg);
  });
  REQUIRE(confirmed);
  REQUIRE(confirmed->has_form_confirmed());

  auto post = [&](const std::string& who, const std::string& op, const json& args) {
    return console.request(who, http::verb::post, "/api/coord/" + op, args.dump());
  };
  auto created = post("coord-1", "profiles.create",
                      {{"name", "Pat Ern"}, {"from_form", "form-console-0001"}});
  REQUIRE(created.result() == http::status::ok);
  const auto profile_id = json::parse(created.body())["profile_id"].get<std::int64_t>();
  auto proposal = post("coord-1", "notice.propose",
                       {{"profile_id", profile_id},
                        {"incidents", {"form-console-0001"}},
                        {"conditions", "not to enter Boots, Pentagon Centre"},
                        {"reason", "repeat thefts"}});
  REQUIRE(proposal.result() == http::status::ok);
  const auto notice_id = json::parse(proposal.body())["notice_id"].get<std::int64_t>();
  CHECK(json::parse(proposal.body())["state"] == "proposed");

  auto own = post("coord-1", "notice.approve", {{"notice_id", notice_id}, {"reason", "ok"}});
  CHECK(own.result() == http::status::forbidden);
  CHECK_FALSE(error_of(own).empty());
  auto serve_early = post("coord-2", "notice.serve", {{"notice_id", notice_id}, {"reason", "x"}});
  CHECK(serve_early.result() == http::status::bad_request);
  CHECK(error_of(serve_early).find("proposed") != std::string::npos);
  auto no_reason = post("coord-2", "notice.approve", {{"notice_id", notice_id}});
  CHECK(no_reason.result() == http::status::bad_request);
  CHECK(error_of(no_reason).find("reason") != std::string::npos);
  auto approved = post("coord-2", "notice.approve",
                       {{"notice_id", notice_id}, {"reason", "board agreed"}});
  REQUIRE(approved.result() == http::status::ok);
  CHECK(json::parse(approved.body())["state"] == "approved");
  CHECK(json::parse(approved.body())["approved_by"] == "coord-2");
  auto wrong_type = post("coord-1", "notice.approve", {{"notice_id", "one"}, {"reason", "x"}});
  CHECK(wrong_type.result() == http::status::bad_request);
  CHECK(error_of(wrong_type).find("notice_id") != std::string::npos);
}

TEST_CASE("the board lists recent sightings of the viewer's town with breach flags, audited, and "
          "not for shops") {
  Console console;
  TestDevice shop(console.pki.dir(), "shop-chatham-1", console.hub->address());
  shop.connect();
  v1::Envelope e;
  auto* s = e.mutable_sighting();
  s->set_sighting_id("shop-chatham-1:7");
  s->set_device_seq(7);
  s->set_text("grey hoodie by the fountain");
  s->set_location("Pentagon Centre");
  const auto id = shop.send(e);
  auto accepted = shop.wait_for([id](const v1::Envelope& x) {
    return x.has_sighting_accepted() || (x.has_error() && x.error().in_reply_to() == id);
  });
  REQUIRE(accepted);
  REQUIRE(accepted->has_sighting_accepted());

  auto list = [&](const std::string& who) {
    auto r = console.request(who, http::verb::get, "/api/sightings?hours=2");
    REQUIRE(r.result() == http::status::ok);
    CHECK(r[http::field::cache_control] == "no-store");
    return json::parse(r.body())["sightings"];
  };
  const json cctv = list("cctv-01");
  REQUIRE(cctv.size() == 1);
  CHECK(cctv[0]["sighting_id"] == "shop-chatham-1:7");
  CHECK(cctv[0]["text"] == "grey hoodie by the fountain");
  CHECK(cctv[0]["town"] == "chatham");
  CHECK(cctv[0]["origin_member"] == "Boots Chatham");
  CHECK(cctv[0]["possible_breach"] == false);
  CHECK(list("police-chatham-1").size() == 1);
  CHECK(list("police-strood-1").empty());
  CHECK(list("coord-1").size() == 1);
  auto shops = console.request("shop-chatham-2", http::verb::get, "/api/sightings");
  CHECK(shops.result() == http::status::forbidden);
  CHECK(console.request("cctv-01", http::verb::get, "/api/sightings?hours=0").result() ==
        http::status::bad_request);
  // Each read is in the audit log under the reader's name.
  auto audit = console.request("coord-1", http::verb::post, "/api/coord/audit.show",
                               R"({"object_type": "sightings"})");
  REQUIRE(audit.result() == http::status::ok);
  const json rows = json::parse(audit.body());
  REQUIRE(rows.size() == 4);
  CHECK(rows[0]["actor_id"] == "cctv-01");
  CHECK(rows[0]["action"] == "read");
}

TEST_CASE("requests from another site's page are refused, and the coordinator API takes only "
          "JSON: no cross-site request forgery, no hijacked live feed") {
  Console console;
  // The console's own page: Origin is the console itself.
  const std::string self = "https://127.0.0.1:" + std::to_string(console.hub->hub->console_port());
  auto own = console.request("coord-1", http::verb::post, "/api/coord/audit.verify", "{}",
                             {{"Origin", self}, {"Host", self.substr(8)}});
  CHECK(own.result() == http::status::ok);
  auto forged = console.request("coord-1", http::verb::post, "/api/coord/audit.verify", "{}",
                                {{"Origin", "https://evil.example"}});
  CHECK(forged.result() == http::status::forbidden);
  CHECK(error_of(forged).find("cross-origin") != std::string::npos);
  auto other_port = console.request("coord-1", http::verb::get, "/api/me", "",
                                    {{"Origin", "https://127.0.0.1:1"}});
  CHECK(other_port.result() == http::status::forbidden);
  // A form post (text/plain) from anywhere is not taken as JSON arguments.
  auto form = console.request("coord-1", http::verb::post, "/api/coord/audit.verify", "{}",
                              {{"Content-Type", "text/plain"}});
  CHECK(form.result() == http::status::unsupported_media_type);
  CHECK(error_of(form).find("application/json") != std::string::npos);

  // The live feed's upgrade from another origin is refused before any WebSocket exists.
  asio::io_context io;
  auto context = make_client_context(tls_files(console.pki.dir(), "cctv-01"));
  beast::websocket::stream<asio::ssl::stream<asio::ip::tcp::socket>> ws(io, *context);
  beast::get_lowest_layer(ws).connect(
      {asio::ip::make_address("127.0.0.1"), console.hub->hub->console_port()});
  ws.next_layer().handshake(asio::ssl::stream_base::client);
  ws.set_option(beast::websocket::stream_base::decorator(
      [](beast::websocket::request_type& r) { r.set(http::field::origin, "https://evil.example"); }));
  beast::websocket::response_type refused;
  boost::system::error_code ec;
  ws.handshake(refused, "127.0.0.1", "/api/live", ec);
  CHECK(ec);
  CHECK(refused.result() == http::status::forbidden);
}
