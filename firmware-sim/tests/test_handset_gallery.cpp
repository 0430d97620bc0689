// The handset's exclusion gallery and photo download (docs/handset.md section 1.6) as a state
// machine with an injected clock: syncs by version, live changes, deletions confirmed once,
// photos in pieces with an incremental SHA-256, resumed after a lost link.
#include "firmware-sim/handset.hpp"

#include <doctest/doctest.h>

#include "core/image.hpp"
#include "firmware-sim/flash.hpp"

#include <algorithm>
#include <deque>
#include <random>

namespace {

using namespace saferlink;
using namespace saferlink::sim;
using Event = Action::Event;

constexpr std::int64_t kT0 = 1'750'000'000'000;

HandsetConfig gallery_config() {
  HandsetConfig c;
  c.id = "shop-chatham-01";
  c.role = Role::shop;
  c.seed = 3;
  c.gallery = true;
  c.keep_photo_bytes = true;
  return c;
}

std::vector<v1::Envelope> sent(const Actions& actions) {
  std::vector<v1::Envelope> out;
  for (const Action& a : actions) {
    if (a.kind == Action::Kind::send && !a.message.has_heartbeat()) out.push_back(a.message);
  }
  return out;
}

std::vector<const Action*> events(const Actions& actions, Event event) {
  std::vector<const Action*> out;
  for (const Action& a : actions) {
    if (a.kind == Action::Kind::event && a.event == event) out.push_back(&a);
  }
  return out;
}

bool saves(const Actions& actions) {
  return std::any_of(actions.begin(), actions.end(),
                     [](const Action& a) { return a.kind == Action::Kind::save_flash; });
}

void append(Actions& all, const Actions& more) { all.insert(all.end(), more.begin(), more.end()); }

v1::Envelope welcome() {
  v1::Envelope e;
  e.mutable_welcome()->set_protocol_version(1);
  e.mutable_welcome()->set_heartbeat_interval_ms(10'000);
  for (const char* cap : {"alerts", "resume", "gallery", "photos"}) {
    e.mutable_welcome()->add_capabilities(cap);
  }
  return e;
}

v1::Envelope sync(std::uint64_t from, std::uint64_t to, bool reset, bool done) {
  v1::Envelope e;
  auto* s = e.mutable_gallery_sync();
  s->set_from_version(from);
  s->set_to_version(to);
  s->set_reset(reset);
  s->set_done(done);
  return e;
}

v1::Envelope entry(std::int64_t notice, const std::string& sha = {}, std::uint64_t size = 0,
                   std::uint64_t version = 0) {
  v1::Envelope e;
  auto* g = e.mutable_gallery_entry();
  g->set_notice_id(notice);
  g->set_profile_id(notice * 10);
  g->set_name("Offender " + std::to_string(notice));
  g->set_conditions("Not to enter member premises");
  g->add_towns("chatham");
  g->set_photo_sha256(sha);
  g->set_photo_size(size);
  g->set_photo_mime(sha.empty() ? "" : "image/png");
  g->set_version(version);
  return e;
}

v1::Envelope remove(std::int64_t notice, std::uint64_t version = 0) {
  v1::Envelope e;
  e.mutable_gallery_remove()->set_notice_id(notice);
  e.mutable_gallery_remove()->set_reason("revoked");
  e.mutable_gallery_remove()->set_version(version);
  return e;
}

v1::Envelope receipt(std::uint64_t in_reply_to) {
  v1::Envelope e;
  e.mutable_receipt()->set_in_reply_to(in_reply_to);
  return e;
}

// Powers on and greets: returns the Hello and leaves the handset online at `now`.
v1::Hello connect(Handset& h, std::int64_t now, Actions* after_welcome = nullptr) {
  if (h.link() == LinkState::off) h.power_on(now);
  if (h.link() == LinkState::waiting) h.tick(std::max(now, h.reconnect_at()));
  REQUIRE(h.link() == LinkState::dialling);
  const auto up = sent(h.on_link_up(now));
  REQUIRE(up.size() == 1);
  REQUIRE(up[0].has_hello());
  Actions w = h.on_message(now, welcome());
  REQUIRE(h.link() == LinkState::online);
  if (after_welcome) *after_welcome = w;
  return up[0].hello();
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

// The hub's half of a photo download: each PhotoRequest becomes 16 KiB PhotoChunk frames of
// its window, queued in order and handed to the handset one at a time.
struct PhotoHub {
  std::string bytes;
  std::string sha;
  std::deque<v1::Envelope> queue;
  std::vector<std::uint64_t> offsets_asked;
  int corrupt_at = -1;  // flip this byte in what is sent (once)

  explicit PhotoHub(std::string b) : bytes(std::move(b)), sha(sha256_hex(bytes)) {}

  void take(const Actions& actions) {
    for (const auto& e : sent(actions)) {
      if (!e.has_photo_request() || e.photo_request().sha256() != sha) continue;
      const auto& r = e.photo_request();
      offsets_asked.push_back(r.offset());
      const std::uint64_t end = std::min<std::uint64_t>(bytes.size(), r.offset() + r.max_bytes());
      for (std::uint64_t at = r.offset(); at < end;) {
        const std::uint64_t n = std::min<std::uint64_t>(16 * 1024, end - at);
        v1::Envelope chunk;
        auto* c = chunk.mutable_photo_chunk();
        c->set_sha256(sha);
        c->set_offset(at);
        c->set_total_size(bytes.size());
        c->set_mime("image/png");
        std::string piece = bytes.substr(at, n);
        if (corrupt_at >= 0 && static_cast<std::uint64_t>(corrupt_at) >= at &&
            static_cast<std::uint64_t>(corrupt_at) < at + n) {
          piece[static_cast<std::size_t>(corrupt_at) - at] ^= 0x01;
          corrupt_at = -1;
        }
        c->set_data(piece);
        queue.push_back(std::move(chunk));
        at += n;
      }
    }
  }

  // Feeds up to `limit` queued pieces; every answer is kept and its requests served.
  Actions feed(Handset& h, std::int64_t now, std::size_t limit = 1'000'000) {
    Actions all;
    for (std::size_t i = 0; i < limit && !queue.empty(); ++i) {
      v1::Envelope chunk = std::move(queue.front());
      queue.pop_front();
      Actions more = h.on_message(now, chunk);
      take(more);
      append(all, more);
    }
    return all;
  }
};

}  // namespace

TEST_CASE("a fresh handset announces the gallery at version 0 and syncs every entry") {
  Handset h(gallery_config(), Flash{});
  const v1::Hello hello = connect(h, kT0);
  CHECK(std::find(hello.capabilities().begin(), hello.capabilities().end(), "gallery") !=
        hello.capabilities().end());
  CHECK(hello.gallery_version() == 0);

  CHECK(h.on_message(kT0, sync(0, 7, true, false)).empty());
  Actions first = h.on_message(kT0, entry(11, std::string(64, 'a'), 1000));
  Actions second = h.on_message(kT0, entry(12));
  REQUIRE(events(first, Event::gallery_entry).size() == 1);
  CHECK(events(first, Event::gallery_entry)[0]->flag);  // added
  CHECK(events(first, Event::gallery_entry)[0]->message.gallery_entry().name() == "Offender 11");
  CHECK(sent(first).empty());  // photos wait for the end of the sync
  CHECK(h.flash().gallery_version == 0);
  Actions done = h.on_message(kT0, sync(0, 7, true, true));
  CHECK(saves(done));
  CHECK(h.flash().gallery_version == 7);
  REQUIRE(h.gallery().size() == 2);
  CHECK(h.gallery()[0].notice_id == 11);
  CHECK(h.gallery()[0].version == 7);
  CHECK(h.gallery()[0].photo_sha256 == std::string(64, 'a'));
  CHECK_FALSE(h.gallery()[0].photo_ok);
  CHECK(h.gallery()[1].notice_id == 12);
  REQUIRE(events(done, Event::gallery_synced).size() == 1);
  CHECK(events(done, Event::gallery_synced)[0]->count == 2);
  // The photo of the first entry is asked for: two windows ahead.
  const auto requests = sent(done);
  REQUIRE(requests.size() == 1);  // 1000 bytes: one window covers it
  CHECK(requests[0].photo_request().sha256() == std::string(64, 'a'));
  CHECK(requests[0].photo_request().offset() == 0);
  CHECK(sent(done)[0].photo_request().max_bytes() == 256 * 1024);

  // A handset without the option announces nothing and ignores gallery messages.
  HandsetConfig plain = gallery_config();
  plain.gallery = false;
  Handset p(plain, Flash{});
  const v1::Hello plain_hello = connect(p, kT0);
  CHECK(std::find(plain_hello.capabilities().begin(), plain_hello.capabilities().end(),
                  "gallery") == plain_hello.capabilities().end());
  p.on_message(kT0, sync(0, 7, true, false));
  p.on_message(kT0, entry(11));
  p.on_message(kT0, sync(0, 7, true, true));
  CHECK(p.gallery().empty());
  CHECK(p.flash().gallery_version == 0);
}

TEST_CASE("an incremental sync applies exactly the changes and keeps what it does not name") {
  Flash flash;
  flash.gallery_version = 5;
  for (std::int64_t id : {1, 2, 3}) {
    flash.gallery.push_back(GalleryHeld{id, 5, std::string(64, static_cast<char>('0' + id)), 100,
                                        true});
  }
  Handset h(gallery_config(), flash);
  CHECK(connect(h, kT0).gallery_version() == 5);
  h.on_message(kT0, sync(5, 8, false, false));
  Actions changed = h.on_message(kT0, entry(2, std::string(64, 'b'), 200));
  Actions removed = h.on_message(kT0, remove(3));
  Actions added = h.on_message(kT0, entry(4));
  Actions done = h.on_message(kT0, sync(5, 8, false, true));

  REQUIRE(events(changed, Event::gallery_entry).size() == 1);
  CHECK_FALSE(events(changed, Event::gallery_entry)[0]->flag);  // changed, not added
  CHECK(events(added, Event::gallery_entry)[0]->flag);
  REQUIRE(events(removed, Event::gallery_removed).size() == 1);
  CHECK(events(removed, Event::gallery_removed)[0]->id == "3");
  const auto confirm = sent(removed);
  REQUIRE(confirm.size() == 1);
  CHECK(confirm[0].gallery_removed().notice_id() == 3);

  REQUIRE(h.gallery().size() == 3);
  CHECK(h.gallery()[0] == GalleryHeld{1, 5, std::string(64, '1'), 100, true});  // untouched
  CHECK(h.gallery()[1] == GalleryHeld{2, 8, std::string(64, 'b'), 200, false}); // new photo
  CHECK(h.gallery()[2] == GalleryHeld{4, 8, "", 0, false});
  CHECK(h.flash().gallery_version == 8);
  // Only the changed photo is fetched.
  const auto requests = sent(done);
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].photo_request().sha256() == std::string(64, 'b'));
}

TEST_CASE("a removal deletes the entry and confirms it once, again after a lost link until the receipt") {
  Flash flash;
  flash.gallery_version = 5;
  flash.gallery.push_back(GalleryHeld{1, 5, "", 0, false});
  flash.gallery.push_back(GalleryHeld{2, 5, "", 0, false});
  Handset h(gallery_config(), flash);
  connect(h, kT0);
  h.on_message(kT0, sync(5, 5, false, false));
  h.on_message(kT0, sync(5, 5, false, true));

  // Live: removed at version 9.
  Actions first = h.on_message(kT0 + 10, remove(1, 9));
  CHECK(saves(first));
  CHECK(h.flash().gallery_version == 9);
  REQUIRE(h.gallery().size() == 1);
  CHECK(h.gallery()[0].notice_id == 2);
  auto confirm = sent(first);
  REQUIRE(confirm.size() == 1);
  CHECK(confirm[0].gallery_removed().notice_id() == 1);
  CHECK(h.flash().gallery_unconfirmed == std::vector<std::int64_t>{1});
  // The same removal again (nothing held under that id now): no second confirmation.
  CHECK(sent(h.on_message(kT0 + 11, remove(1, 9))).empty());
  // A removal of a notice never held is not confirmed either.
  CHECK(sent(h.on_message(kT0 + 12, remove(77, 10))).empty());
  CHECK(h.flash().gallery_version == 10);

  // The link goes before the hub's Receipt: the confirmation is sent again on the next link.
  h.on_link_down(kT0 + 20, "cut");
  Actions after;
  connect(h, h.reconnect_at(), &after);
  confirm = sent(after);
  REQUIRE(confirm.size() == 1);
  CHECK(confirm[0].gallery_removed().notice_id() == 1);
  Actions ok = h.on_message(h.reconnect_at() + 1, receipt(confirm[0].msg_id()));
  REQUIRE(events(ok, Event::gallery_remove_confirmed).size() == 1);
  CHECK(events(ok, Event::gallery_remove_confirmed)[0]->id == "1");
  CHECK(h.flash().gallery_unconfirmed.empty());
  CHECK(h.gallery_removals_confirmed() == 1);
  // A repeated receipt changes nothing.
  CHECK(events(h.on_message(h.reconnect_at() + 2, receipt(confirm[0].msg_id())),
               Event::gallery_remove_confirmed)
            .empty());
  CHECK(h.gallery_removals_confirmed() == 1);
}

TEST_CASE("a reset sync drops every entry it did not send and confirms their deletion") {
  Flash flash;
  flash.gallery_version = 40;  // from a hub database that has been replaced
  for (std::int64_t id : {1, 2, 3}) flash.gallery.push_back(GalleryHeld{id, 40, "", 0, false});
  Handset h(gallery_config(), flash);
  connect(h, kT0);
  h.on_message(kT0, sync(40, 3, true, false));
  Actions kept = h.on_message(kT0, entry(2));
  CHECK(events(kept, Event::gallery_removed).empty());
  Actions done = h.on_message(kT0, sync(40, 3, true, true));
  REQUIRE(h.gallery().size() == 1);
  CHECK(h.gallery()[0].notice_id == 2);
  CHECK(h.gallery()[0].version == 3);
  CHECK(h.flash().gallery_version == 3);
  std::vector<std::int64_t> confirmed;
  for (const auto& e : sent(done)) {
    if (e.has_gallery_removed()) confirmed.push_back(e.gallery_removed().notice_id());
  }
  CHECK(confirmed == std::vector<std::int64_t>{1, 3});
  CHECK(events(done, Event::gallery_removed).size() == 2);
  CHECK(events(done, Event::gallery_synced)[0]->flag);  // reset
}

TEST_CASE("a photo split into pieces over several windows is verified and marked in flash") {
  HandsetConfig config = gallery_config();
  config.photo_window_bytes = 20'000;  // several windows, pieces cut at window ends
  PhotoHub hub(random_bytes(70'001, 1));
  Handset h(config, Flash{});
  connect(h, kT0);
  h.on_message(kT0, sync(0, 2, true, false));
  h.on_message(kT0, entry(5, hub.sha, hub.bytes.size()));
  Actions done = h.on_message(kT0, sync(0, 2, true, true));
  hub.take(done);
  CHECK(hub.offsets_asked == std::vector<std::uint64_t>{0, 20'000});  // two windows ahead
  Actions all = hub.feed(h, kT0 + 1);
  CHECK(hub.offsets_asked == std::vector<std::uint64_t>{0, 20'000, 40'000, 60'000});
  const auto complete = events(all, Event::photo_complete);
  REQUIRE(complete.size() == 1);
  CHECK(complete[0]->id == hub.sha);
  CHECK(complete[0]->count == hub.bytes.size());
  CHECK(complete[0]->data == hub.bytes);
  CHECK(complete[0]->text == "image/png");
  CHECK(events(all, Event::photo_failed).empty());
  CHECK(saves(all));
  REQUIRE(h.gallery().size() == 1);
  CHECK(h.gallery()[0].photo_ok);
  CHECK(h.photo_bytes_received() == hub.bytes.size());
  CHECK(h.photo_hash_failures() == 0);
  CHECK(h.photo_progress().first.empty());

  // Without keep_photo_bytes the hash is still checked; the bytes are not kept.
  config.keep_photo_bytes = false;
  Handset lean(config, Flash{});
  connect(lean, kT0);
  lean.on_message(kT0, sync(0, 2, true, false));
  lean.on_message(kT0, entry(5, hub.sha, hub.bytes.size()));
  PhotoHub again(hub.bytes);
  again.take(lean.on_message(kT0, sync(0, 2, true, true)));
  Actions lean_all = again.feed(lean, kT0 + 1);
  REQUIRE(events(lean_all, Event::photo_complete).size() == 1);
  CHECK(events(lean_all, Event::photo_complete)[0]->data.empty());
  CHECK(lean.gallery()[0].photo_ok);
}

TEST_CASE("a wrong byte in a photo fails the hash and the download starts again from zero") {
  PhotoHub hub(random_bytes(50'000, 2));
  hub.corrupt_at = 33'333;
  Handset h(gallery_config(), Flash{});
  connect(h, kT0);
  h.on_message(kT0, sync(0, 2, true, false));
  h.on_message(kT0, entry(5, hub.sha, hub.bytes.size()));
  hub.take(h.on_message(kT0, sync(0, 2, true, true)));
  Actions all = hub.feed(h, kT0 + 1, 4);  // the four pieces of the first attempt
  const auto failed = events(all, Event::photo_failed);
  REQUIRE(failed.size() == 1);
  CHECK(failed[0]->flag);  // a hash mismatch, not a refusal
  CHECK(events(all, Event::photo_complete).empty());
  CHECK(h.photo_hash_failures() == 1);
  CHECK_FALSE(h.gallery()[0].photo_ok);
  // Asked again from zero; this time the bytes are right.
  CHECK(hub.offsets_asked == std::vector<std::uint64_t>{0, 0});
  Actions second = hub.feed(h, kT0 + 2);
  CHECK(events(second, Event::photo_complete).size() == 1);
  CHECK(h.gallery()[0].photo_ok);
  CHECK(h.photo_hash_failures() == 1);
}

TEST_CASE("a photo download cut by a lost link resumes from the bytes held") {
  PhotoHub hub(random_bytes(100'000, 3));
  Handset h(gallery_config(), Flash{});
  connect(h, kT0);
  h.on_message(kT0, sync(0, 2, true, false));
  h.on_message(kT0, entry(5, hub.sha, hub.bytes.size()));
  hub.take(h.on_message(kT0, sync(0, 2, true, true)));
  hub.feed(h, kT0 + 1, 3);  // three pieces of 16 KiB arrive, then the link drops
  CHECK(h.photo_progress() == std::make_pair(hub.sha, std::uint64_t{3 * 16'384}));
  h.on_link_down(kT0 + 2, "radio gone");
  hub.queue.clear();  // what the hub had queued for that connection is lost with it

  // A piece out of place would end the attempt; here the next link asks from 49,152.
  Actions after;
  const std::int64_t back = h.reconnect_at();
  const v1::Hello hello = connect(h, back, &after);
  CHECK(hello.gallery_version() == 2);
  CHECK(sent(after).empty());  // photos wait for the sync
  hub.take(h.on_message(back, sync(2, 2, false, false)));
  Actions done = h.on_message(back, sync(2, 2, false, true));
  hub.take(done);
  REQUIRE(sent(done).size() >= 1);
  CHECK(sent(done)[0].photo_request().offset() == 3 * 16'384);
  Actions rest = hub.feed(h, back + 1);
  const auto complete = events(rest, Event::photo_complete);
  REQUIRE(complete.size() == 1);
  CHECK(complete[0]->data == hub.bytes);
  CHECK(h.photo_bytes_received() == hub.bytes.size());  // nothing fetched twice
  CHECK(h.photo_hash_failures() == 0);
  CHECK(h.gallery()[0].photo_ok);
}

TEST_CASE("a photo piece out of place hangs up and the next link asks from what is held") {
  PhotoHub hub(random_bytes(40'000, 4));
  Handset h(gallery_config(), Flash{});
  connect(h, kT0);
  h.on_message(kT0, sync(0, 2, true, false));
  h.on_message(kT0, entry(5, hub.sha, hub.bytes.size()));
  hub.take(h.on_message(kT0, sync(0, 2, true, true)));
  hub.feed(h, kT0 + 1, 1);
  hub.queue.pop_front();  // the second piece goes missing
  Actions cut = hub.feed(h, kT0 + 2, 1);
  CHECK(std::any_of(cut.begin(), cut.end(),
                    [](const Action& a) { return a.kind == Action::Kind::hang_up; }));
  CHECK(h.link() == LinkState::waiting);
  CHECK(h.photo_progress().second == 16'384);
}

TEST_CASE("a photo the hub refuses is given up without hanging up") {
  Handset h(gallery_config(), Flash{});
  connect(h, kT0);
  h.on_message(kT0, sync(0, 2, true, false));
  h.on_message(kT0, entry(5, std::string(64, 'c'), 10));
  const auto request = sent(h.on_message(kT0, sync(0, 2, true, true)));
  REQUIRE(request.size() == 1);
  v1::Envelope error;
  error.mutable_error()->set_in_reply_to(request[0].msg_id());
  error.mutable_error()->set_code(v1::NOT_ALLOWED);
  error.mutable_error()->set_message("you may not download image");
  Actions refused = h.on_message(kT0 + 1, error);
  REQUIRE(events(refused, Event::photo_failed).size() == 1);
  CHECK_FALSE(events(refused, Event::photo_failed)[0]->flag);
  CHECK(events(refused, Event::hub_error).empty());
  CHECK(h.link() == LinkState::online);
  CHECK(sent(refused).empty());  // not asked again
  CHECK(h.photo_hash_failures() == 0);
}

TEST_CASE("flash text keeps gallery entries and unconfirmed deletions") {
  Flash flash;
  flash.gallery_version = 12;
  flash.gallery.push_back(GalleryHeld{3, 11, std::string(64, 'e'), 4096, true});
  flash.gallery.push_back(GalleryHeld{4, 12, "", 0, false});
  flash.gallery_unconfirmed = {9, 10};
  std::string why;
  auto back = flash_from_text(to_text(flash), &why);
  REQUIRE(back.has_value());
  CHECK(*back == flash);
  // An image written before the gallery came to the handset still reads.
  auto old = flash_from_text(
      R"({"format":1,"next_device_seq":5,"resume_cursor":0,"pending":[]})", &why);
  REQUIRE(old.has_value());
  CHECK(old->gallery.empty());
  CHECK_FALSE(flash_from_text(
                  R"({"format":1,"next_device_seq":5,"resume_cursor":0,"pending":[],)"
                  R"("gallery":[{"notice_id":0,"version":1,"photo_sha256":"","photo_size":0,"photo_ok":false}]})",
                  &why)
                  .has_value());
}
