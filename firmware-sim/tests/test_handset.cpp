#include "firmware-sim/handset.hpp"

#include <doctest/doctest.h>

#include "firmware-sim/flash.hpp"

#include <algorithm>
#include <cmath>
#include <set>

namespace {

using namespace saferlink;
using namespace saferlink::sim;
using Event = Action::Event;

constexpr std::int64_t kT0 = 1'750'000'000'000;  // the injected clock starts here

HandsetConfig shop_config() {
  HandsetConfig c;
  c.id = "shop-chatham-01";
  c.role = Role::shop;
  c.seed = 7;
  return c;
}

// Frames sent, heartbeats left out (sent_all keeps them).
std::vector<v1::Envelope> sent_all(const Actions& actions) {
  std::vector<v1::Envelope> out;
  for (const Action& a : actions) {
    if (a.kind == Action::Kind::send) out.push_back(a.message);
  }
  return out;
}

std::vector<v1::Envelope> sent(const Actions& actions) {
  std::vector<v1::Envelope> out;
  for (const Action& a : actions) {
    if (a.kind == Action::Kind::send && !a.message.has_heartbeat()) out.push_back(a.message);
  }
  return out;
}

bool has_kind(const Actions& actions, Action::Kind kind) {
  return std::any_of(actions.begin(), actions.end(), [&](const Action& a) { return a.kind == kind; });
}

const Action* find_event(const Actions& actions, Event event) {
  for (const Action& a : actions) {
    if (a.kind == Action::Kind::event && a.event == event) return &a;
  }
  return nullptr;
}

v1::Envelope welcome() {
  v1::Envelope e;
  e.mutable_welcome()->set_protocol_version(1);
  e.mutable_welcome()->set_heartbeat_interval_ms(10'000);
  return e;
}

// Powers on, dials, links and greets: the handset is online at kT0.
Handset online_handset(HandsetConfig config = shop_config(), Flash flash = {}) {
  Handset h(std::move(config), std::move(flash));
  auto on = h.power_on(kT0);
  REQUIRE(has_kind(on, Action::Kind::dial));
  auto up = h.on_link_up(kT0);
  REQUIRE(sent(up).size() == 1);
  REQUIRE(sent(up)[0].has_hello());
  h.on_message(kT0, welcome());
  REQUIRE(h.link() == LinkState::online);
  return h;
}

// Holds the button from `at` for `held_ms`, ticking every 100 ms as the glue would.
Actions hold(Handset& h, std::int64_t at, std::int64_t held_ms) {
  Actions all = h.button(at, true);
  for (std::int64_t t = at + 100; t < at + held_ms; t += 100) {
    auto more = h.tick(t);
    all.insert(all.end(), more.begin(), more.end());
  }
  auto up = h.button(at + held_ms, false);
  all.insert(all.end(), up.begin(), up.end());
  return all;
}

v1::Envelope accepted(const std::string& alert_id, std::uint32_t recipients, bool dup = false) {
  v1::Envelope e;
  e.mutable_accepted()->set_alert_id(alert_id);
  e.mutable_accepted()->set_recipients(recipients);
  e.mutable_accepted()->set_duplicate(dup);
  return e;
}

v1::Envelope relayed_panic(const std::string& alert_id, std::uint64_t seq, std::uint32_t round = 0) {
  v1::Envelope e;
  e.set_seq(seq);
  e.mutable_panic()->set_alert_id(alert_id);
  e.mutable_panic()->set_escalation_round(round);
  e.mutable_panic()->set_origin_id("shop-chatham-09");
  return e;
}

}  // namespace

TEST_CASE("a short press of the panic button sends nothing") {
  Handset h = online_handset();
  auto actions = hold(h, kT0 + 1000, 1400);  // just under the 1.5 s hold
  CHECK(sent(actions).empty());
  CHECK(find_event(actions, Event::panic_raised) == nullptr);
  CHECK(h.flash().pending.empty());
  CHECK(h.indication() == Indication::idle);
}

TEST_CASE("holding the panic button for the hold time sends one panic with the press time") {
  Handset h = online_handset();
  auto actions = hold(h, kT0 + 1000, 2000);
  auto frames = sent(actions);
  REQUIRE(frames.size() == 1);
  REQUIRE(frames[0].has_panic());
  CHECK(frames[0].panic().alert_id() == "shop-chatham-01:1");
  CHECK(frames[0].panic().device_seq() == 1);
  CHECK(frames[0].panic().pressed_at_ms() == kT0 + 1000 + 1500);  // fired when the hold completed
  CHECK(h.indication() == Indication::sending);
  // The panic is fired while the button is still held, not at the release.
  Handset h2 = online_handset();
  h2.button(kT0, true);
  auto fired = h2.tick(kT0 + 1500);
  CHECK(sent(fired).size() == 1);
  CHECK(sent(h2.button(kT0 + 5000, false)).empty());
}

TEST_CASE("the indicator follows the panic from armed to acknowledged") {
  Handset h = online_handset();
  h.button(kT0, true);
  CHECK(h.indication() == Indication::armed);
  CHECK(led_of(h.indication()) == "amber blink");
  h.tick(kT0 + 1500);
  CHECK(h.indication() == Indication::sending);
  auto acc = h.on_message(kT0 + 1600, accepted("shop-chatham-01:1", 2));
  CHECK(h.indication() == Indication::accepted);
  const Action* a = find_event(acc, Event::panic_accepted);
  REQUIRE(a != nullptr);
  CHECK(a->count == 2);
  v1::Envelope update;
  update.mutable_update()->set_alert_id("shop-chatham-01:1");
  update.mutable_update()->set_event(v1::RECIPIENT);
  update.mutable_update()->set_recipient_status(v1::DELIVERED);
  update.mutable_update()->set_by_id("cctv-01");
  auto first = h.on_message(kT0 + 1610, update);
  CHECK(h.indication() == Indication::delivered);
  CHECK(find_event(first, Event::panic_delivered_all) == nullptr);  // one of two
  update.mutable_update()->set_by_id("police-chatham-01");
  auto second = h.on_message(kT0 + 1620, update);
  CHECK(find_event(second, Event::panic_delivered_all) != nullptr);
  // The same recipient twice does not count twice.
  Handset h2 = online_handset();
  h2.button(kT0, true);
  h2.tick(kT0 + 1500);
  h2.on_message(kT0 + 1600, accepted("shop-chatham-01:1", 2));
  update.mutable_update()->set_by_id("cctv-01");
  h2.on_message(kT0 + 1610, update);
  CHECK(find_event(h2.on_message(kT0 + 1620, update), Event::panic_delivered_all) == nullptr);

  v1::Envelope escalated;
  escalated.mutable_update()->set_alert_id("shop-chatham-01:1");
  escalated.mutable_update()->set_event(v1::ESCALATED);
  h.on_message(kT0 + 16'000, escalated);
  CHECK(h.indication() == Indication::escalated);
  CHECK(buzzer_of(h.indication()) == "beeping");
  update.mutable_update()->set_recipient_status(v1::ACKNOWLEDGED);
  h.on_message(kT0 + 17'000, update);
  CHECK(h.indication() == Indication::acknowledged);
}

TEST_CASE("a second long press within the cancel window cancels the panic, after it") {
  Handset h = online_handset();
  hold(h, kT0, 1600);
  h.on_message(kT0 + 1700, accepted("shop-chatham-01:1", 3));
  auto actions = hold(h, kT0 + 10'000, 1600);
  auto frames = sent(actions);
  REQUIRE(frames.size() == 1);
  REQUIRE(frames[0].has_cancel());
  CHECK(frames[0].cancel().alert_id() == "shop-chatham-01:1");
  CHECK(h.indication() != Indication::cancelled);  // not until the hub confirms
  v1::Envelope receipt;
  receipt.mutable_receipt()->set_in_reply_to(frames[0].msg_id());
  auto done = h.on_message(kT0 + 11'700, receipt);
  CHECK(find_event(done, Event::panic_cancelled) != nullptr);
  CHECK(h.indication() == Indication::cancelled);
  CHECK(h.flash().pending.empty());

  // After the window, a long press is a new panic.
  auto later = hold(h, kT0 + 40'000, 1600);
  auto again = sent(later);
  REQUIRE(again.size() == 1);
  REQUIRE(again[0].has_panic());
  CHECK(again[0].panic().alert_id() == "shop-chatham-01:2");
}

TEST_CASE("a cancel pressed before the hub accepted the panic waits for the acceptance") {
  Handset h = online_handset();
  hold(h, kT0, 1600);
  auto early = hold(h, kT0 + 3000, 1600);
  CHECK(sent(early).empty());
  auto acc = h.on_message(kT0 + 5000, accepted("shop-chatham-01:1", 1));
  auto frames = sent(acc);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].has_cancel());
}

TEST_CASE("a panic pressed offline is kept in flash, survives a power cycle and is sent with its time") {
  HandsetConfig config = shop_config();
  Handset h(config, Flash{});
  h.power_on(kT0);
  h.on_link_down(kT0 + 10, "cannot reach the hub");
  REQUIRE(h.link() == LinkState::waiting);
  auto press = hold(h, kT0 + 1000, 1600);
  CHECK(sent(press).empty());
  CHECK(has_kind(press, Action::Kind::save_flash));
  REQUIRE(h.flash().pending.size() == 1);
  CHECK(h.indication() == Indication::sending);

  // Power cycle: only the flash image survives (written as text by the glue).
  const std::string image = to_text(h.flash());
  h.power_off(kT0 + 5000);
  std::string why;
  auto restored = flash_from_text(image, &why);
  REQUIRE(restored.has_value());
  Handset after(config, *restored);
  CHECK(after.indication() == Indication::sending);
  after.power_on(kT0 + 60'000);
  auto hello = sent(after.on_link_up(kT0 + 60'100));
  REQUIRE(hello.size() == 1);
  auto flushed = sent(after.on_message(kT0 + 60'200, welcome()));
  REQUIRE(flushed.size() == 1);
  REQUIRE(flushed[0].has_panic());
  CHECK(flushed[0].panic().alert_id() == "shop-chatham-01:1");
  CHECK(flushed[0].panic().pressed_at_ms() == kT0 + 1000 + 1500);
  // The next panic gets a new number: the counter was in flash too.
  after.on_message(kT0 + 60'300, accepted("shop-chatham-01:1", 0));
  auto next = sent(hold(after, kT0 + 70'000, 1600));
  REQUIRE(next.size() == 1);
  CHECK(next[0].panic().device_seq() == 2);
  CHECK(after.flash().pending.size() == 1);
}

TEST_CASE("a panic lost with the link is sent again with the same alert id on reconnect") {
  Handset h = online_handset();
  auto first = sent(hold(h, kT0, 1600));
  REQUIRE(first.size() == 1);
  h.on_link_down(kT0 + 2000, "link lost");
  h.tick(h.reconnect_at());
  auto resent = sent(h.on_link_up(h.reconnect_at() + 50));
  resent = sent(h.on_message(h.reconnect_at() + 60, welcome()));
  REQUIRE(resent.size() == 1);
  CHECK(resent[0].panic().alert_id() == first[0].panic().alert_id());
  CHECK(resent[0].panic().pressed_at_ms() == first[0].panic().pressed_at_ms());
  // The retry's answer says duplicate; it still counts as the acceptance.
  auto acc = h.on_message(h.reconnect_at() + 100, accepted(first[0].panic().alert_id(), 2, true));
  const Action* a = find_event(acc, Event::panic_accepted);
  REQUIRE(a != nullptr);
  CHECK(a->flag);
  CHECK(h.flash().pending.empty());
}

TEST_CASE("a refused panic turns the indicator to failed and leaves the queue; STORE_FAILED is retried") {
  Handset h = online_handset();
  auto frames = sent(hold(h, kT0, 1600));
  REQUIRE(frames.size() == 1);
  v1::Envelope store_failed;
  store_failed.mutable_error()->set_in_reply_to(frames[0].msg_id());
  store_failed.mutable_error()->set_code(v1::STORE_FAILED);
  CHECK(sent(h.on_message(kT0 + 1700, store_failed)).empty());
  auto retry = sent(h.tick(kT0 + 1700 + 1000));
  REQUIRE(retry.size() == 1);
  CHECK(retry[0].panic().alert_id() == frames[0].panic().alert_id());

  v1::Envelope invalid;
  invalid.mutable_error()->set_in_reply_to(retry[0].msg_id());
  invalid.mutable_error()->set_code(v1::INVALID);
  invalid.mutable_error()->set_message("note: too long");
  auto refused = h.on_message(kT0 + 2800, invalid);
  CHECK(find_event(refused, Event::panic_failed) != nullptr);
  CHECK(h.indication() == Indication::failed);
  CHECK(h.flash().pending.empty());
}

TEST_CASE("reconnect backoff stays within 0.5 s and 30 s and grows") {
  Backoff backoff({500, 30'000}, 42);
  CHECK(backoff.ceiling(0) == 1000);
  CHECK(backoff.ceiling(1) == 2000);
  CHECK(backoff.ceiling(5) == 30'000);
  CHECK(backoff.ceiling(60) == 30'000);
  for (int i = 0; i < 200; ++i) {
    const auto ceiling = backoff.ceiling(backoff.attempt());
    const auto d = backoff.next_delay();
    CHECK(d >= 500);
    CHECK(d <= ceiling);
    CHECK(d <= 30'000);
  }
  backoff.reset();
  CHECK(backoff.attempt() == 0);
  CHECK(backoff.next_delay() <= 1000);
}

TEST_CASE("reconnect backoff jitter spreads ten thousand handsets over the window") {
  // Every handset loses the hub at the same moment, each with its own seed: their first
  // retries must spread over 0.5..1 s, and by the sixth failure over 0.5..30 s.
  std::vector<std::int64_t> first;
  std::vector<std::int64_t> seventh;
  for (std::uint64_t seed = 1; seed <= 10'000; ++seed) {
    Backoff b({500, 30'000}, seed);
    first.push_back(b.next_delay());
    for (int i = 0; i < 5; ++i) b.next_delay();
    seventh.push_back(b.next_delay());
  }
  auto spread = [](const std::vector<std::int64_t>& v, std::int64_t lo, std::int64_t hi, int bins) {
    std::vector<int> counts(static_cast<std::size_t>(bins), 0);
    for (auto d : v) {
      auto bin = static_cast<std::size_t>((d - lo) * bins / (hi - lo + 1));
      ++counts[std::min(bin, counts.size() - 1)];
    }
    return counts;
  };
  // Ten equal bins each hold 10 % +- 3 % of the handsets: no stampede at one instant.
  for (int n : spread(first, 500, 1000, 10)) CHECK(std::abs(n - 1000) < 300);
  for (int n : spread(seventh, 500, 30'000, 10)) CHECK(std::abs(n - 1000) < 300);
  std::set<std::int64_t> distinct(first.begin(), first.end());
  CHECK(distinct.size() > 400);
}

TEST_CASE("a lost link is dialled again after the backoff, not before") {
  Handset h = online_handset();
  h.on_link_down(kT0 + 1000, "link lost");
  const auto at = h.reconnect_at();
  CHECK(at >= kT0 + 1000 + 500);
  CHECK(at <= kT0 + 1000 + 1000);
  CHECK_FALSE(has_kind(h.tick(at - 1), Action::Kind::dial));
  CHECK(has_kind(h.tick(at), Action::Kind::dial));
  // A failed dial backs off further.
  h.on_link_down(at + 5, "connection refused");
  CHECK(h.backoff_attempt() == 2);
  CHECK(h.reconnect_at() - (at + 5) <= 2000);
}

TEST_CASE("the handset hangs up when the hub is silent past the idle deadline and heartbeats before") {
  Handset h = online_handset();
  auto beat = sent_all(h.tick(kT0 + 10'000));
  REQUIRE(beat.size() == 1);
  CHECK(beat[0].has_heartbeat());
  CHECK(beat[0].heartbeat().battery_percent() > 0);
  auto idle = h.tick(kT0 + 35'001);
  CHECK(has_kind(idle, Action::Kind::hang_up));
  CHECK(h.link() == LinkState::waiting);
}

TEST_CASE("a relayed panic is answered delivered once raised, and a replay is a duplicate") {
  Handset h = online_handset();
  auto first = h.on_message(kT0 + 100, relayed_panic("shop-chatham-09:4", 17));
  auto frames = sent(first);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].status().status() == v1::DELIVERED);
  CHECK(find_event(first, Event::received_panic) != nullptr);
  CHECK(h.flash().resume_cursor == 17);
  CHECK(has_kind(first, Action::Kind::save_flash));

  auto replay = h.on_message(kT0 + 200, relayed_panic("shop-chatham-09:4", 17));
  CHECK(find_event(replay, Event::received_panic) == nullptr);
  CHECK(find_event(replay, Event::received_duplicate) != nullptr);
  auto again = sent(replay);
  REQUIRE(again.size() == 1);  // answered DELIVERED again all the same
  CHECK(again[0].status().status() == v1::DELIVERED);
  CHECK(h.duplicates_seen() == 1);

  // After a power cycle the cursor from flash still recognises the replay.
  Handset after = online_handset(shop_config(), h.flash());
  auto hello_cursor = h.flash().resume_cursor;
  CHECK(hello_cursor == 17);
  CHECK(find_event(after.on_message(kT0 + 300, relayed_panic("shop-chatham-09:4", 17)),
                   Event::received_duplicate) != nullptr);
  CHECK(find_event(after.on_message(kT0 + 400, relayed_panic("shop-chatham-09:5", 18)),
                   Event::received_panic) != nullptr);
}

TEST_CASE("hello asks for a replay from both lanes' cursors in flash") {
  Flash flash;
  flash.resume_cursor = 99;
  flash.resume_cursor_other = 97;
  Handset h(shop_config(), flash);
  h.power_on(kT0);
  auto hello = sent(h.on_link_up(kT0 + 10));
  REQUIRE(hello.size() == 1);
  CHECK(hello[0].hello().resume_cursor() == 99);
  CHECK(hello[0].hello().resume_cursor_other() == 97);
  CHECK(hello[0].hello().protocol_version() == 1);
  const auto& caps = hello[0].hello().capabilities();
  CHECK(std::find(caps.begin(), caps.end(), "resume") != caps.end());
}

TEST_CASE("a sighting overtaken by a higher-numbered alert is still new: cursors are per lane") {
  Handset h = online_handset();
  h.on_message(kT0, relayed_panic("a:1", 10));
  h.on_message(kT0, relayed_panic("a:2", 12));  // a sighting numbered 11 is still on its way
  v1::Envelope sighting;
  sighting.set_seq(11);
  sighting.mutable_sighting()->set_sighting_id("shop-chatham-09:3");
  CHECK(find_event(h.on_message(kT0, sighting), Event::received_sighting) != nullptr);
  CHECK(find_event(h.on_message(kT0, sighting), Event::received_duplicate) != nullptr);
  CHECK(h.flash().resume_cursor == 12);
  CHECK(h.flash().resume_cursor_other == 11);
  // An alert at or below the alert lane's cursor is a duplicate.
  CHECK(find_event(h.on_message(kT0, relayed_panic("a:1", 10)), Event::received_duplicate) !=
        nullptr);
}

TEST_CASE("unsequenced relays are deduplicated by alert id and escalation round") {
  Handset h = online_handset();
  CHECK(find_event(h.on_message(kT0, relayed_panic("x:1", 0, 0)), Event::received_panic));
  CHECK(find_event(h.on_message(kT0, relayed_panic("x:1", 0, 0)), Event::received_duplicate));
  // An escalation re-send is a new round, raised again.
  CHECK(find_event(h.on_message(kT0, relayed_panic("x:1", 0, 1)), Event::received_panic));
}

TEST_CASE("a responder set to acknowledge does so after its delay, once per alert") {
  HandsetConfig config = shop_config();
  config.id = "cctv-01";
  config.role = Role::cctv;
  config.ack_after_ms = 3000;
  Handset h = online_handset(config);
  h.on_message(kT0 + 100, relayed_panic("shop-chatham-09:4", 0));
  CHECK(h.next_wakeup() <= kT0 + 3100);
  CHECK(sent(h.tick(kT0 + 3000)).empty());
  auto ack = sent(h.tick(kT0 + 3100));
  REQUIRE(ack.size() == 1);
  CHECK(ack[0].status().status() == v1::ACKNOWLEDGED);
  h.on_message(kT0 + 20'000, relayed_panic("shop-chatham-09:4", 0, 1));  // escalation re-send
  for (const auto& f : sent(h.tick(kT0 + 30'000))) CHECK_FALSE(f.has_status());
}

TEST_CASE("a shop never acknowledges automatically") {
  HandsetConfig config = shop_config();
  config.ack_after_ms = 1000;
  Handset h = online_handset(config);
  h.on_message(kT0, relayed_panic("shop-chatham-09:4", 0));
  for (const auto& f : sent(h.tick(kT0 + 5000))) CHECK_FALSE(f.has_status());
}

TEST_CASE("an empty battery drops the link and stops dialling until charged") {
  HandsetConfig config = shop_config();
  config.battery_percent = 16;
  config.drain_per_hour = 2;
  Handset h = online_handset(config);
  v1::Envelope heartbeat;
  heartbeat.mutable_heartbeat();
  // The hub's heartbeats keep the link up while the time passes.
  auto low = h.on_message(kT0 + 3'600'000 / 2, heartbeat);  // 1 % gone: 15 %, the low mark
  CHECK(find_event(low, Event::low_battery) != nullptr);
  CHECK(h.link() == LinkState::online);
  auto empty = h.on_message(kT0 + 9 * 3'600'000, heartbeat);
  CHECK(find_event(empty, Event::battery_empty) != nullptr);
  CHECK(h.battery() == 0.0);
  CHECK(has_kind(empty, Action::Kind::hang_up));
  CHECK_FALSE(has_kind(h.tick(kT0 + 10 * 3'600'000), Action::Kind::dial));
  CHECK(sent(hold(h, kT0 + 10 * 3'600'000, 2000)).empty());  // a dead handset raises nothing
  auto charged = h.charge(kT0 + 10 * 3'600'000 + 1, 50);
  h.tick(h.reconnect_at());
  CHECK((has_kind(charged, Action::Kind::dial) || h.link() == LinkState::dialling));
}

TEST_CASE("no signal drops the link; signal back dials again") {
  Handset h = online_handset();
  CHECK(has_kind(h.set_signal(kT0 + 100, 0), Action::Kind::hang_up));
  CHECK_FALSE(has_kind(h.tick(kT0 + 60'000), Action::Kind::dial));
  CHECK(has_kind(h.set_signal(kT0 + 60'001, 3), Action::Kind::dial));
}

TEST_CASE("a sighting made offline is queued and sent on reconnect") {
  Handset h(shop_config(), Flash{});
  h.power_on(kT0);
  h.on_link_down(kT0 + 1, "down");
  auto s = h.sighting(kT0 + 100, "grey hoodie by the fountain");
  CHECK(sent(s).empty());
  h.tick(h.reconnect_at());
  h.on_link_up(h.reconnect_at() + 1);
  auto flushed = sent(h.on_message(h.reconnect_at() + 2, welcome()));
  REQUIRE(flushed.size() == 1);
  REQUIRE(flushed[0].has_sighting());
  CHECK(flushed[0].sighting().seen_at_ms() == kT0 + 100);
  v1::Envelope ok;
  ok.mutable_sighting_accepted()->set_sighting_id(flushed[0].sighting().sighting_id());
  h.on_message(h.reconnect_at() + 3, ok);
  CHECK(h.flash().pending.empty());
}

TEST_CASE("flash text refuses a damaged image and keeps every field of a good one") {
  Flash flash;
  flash.next_device_seq = 12;
  flash.resume_cursor = 400;
  PendingItem item;
  item.kind = PendingItem::Kind::sighting;
  item.id = "shop-chatham-01:11";
  item.device_seq = 11;
  item.created_at_ms = kT0;
  item.text = "seen \"near\" the bank";
  flash.pending.push_back(item);
  std::string why;
  auto back = flash_from_text(to_text(flash), &why);
  REQUIRE(back.has_value());
  CHECK(*back == flash);
  CHECK_FALSE(flash_from_text("{\"format\":1}", &why).has_value());
  CHECK(why.find("next_device_seq") != std::string::npos);
  CHECK_FALSE(flash_from_text("not json", &why).has_value());
  CHECK_FALSE(flash_from_text("{\"format\":9,\"next_device_seq\":1}", &why).has_value());
}
