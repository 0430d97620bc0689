// The exclusion gallery on handsets and photo distribution (issue 4, items 2 and 3): syncs by
// version, live changes, deletions confirmed and listed, photos in 16 KiB chunks at the lowest
// priority (an alert overtakes a photo on the same connection), and a download cut off half-way
// resumed from where it stopped. Real hub, real TLS on loopback port 0.
#include "tests/support/device.hpp"
#include "tests/support/hub_fixture.hpp"
#include "tests/support/images.hpp"
#include "tests/support/pki.hpp"

#include "client/commands.hpp"
#include "client/gallery.hpp"
#include "core/frame.hpp"
#include "core/image.hpp"
#include "core/tls.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

using namespace saferlink;
using namespace saferlink::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

namespace asio = boost::asio;

struct Town {
  explicit Town(const std::function<void(server::HubConfig&)>& tweak = {}) {
    pki.issue(Role::shop, "chatham", "shop-chatham-1", "Boots Chatham");
    pki.issue(Role::shop, "chatham", "shop-chatham-2", "WHSmith Chatham");
    pki.issue(Role::shop, "strood", "shop-strood-1", "Co-op Strood");
    pki.issue(Role::police, "chatham", "police-chatham", "Kent Police");
    pki.issue(Role::coordinator, "all", "coord-1", "Safer Medway");
    pki.issue(Role::coordinator, "all", "coord-2", "Safer Medway");
    hub = std::make_unique<HubFixture>(pki, tweak);
    coord1 = device("coord-1");
    coord2 = device("coord-2");
  }
  std::unique_ptr<TestDevice> device(const std::string& id) {
    auto d = std::make_unique<TestDevice>(pki.dir(), id, hub->address());
    d->connect();
    return d;
  }
  // A handset that holds gallery version `version`.
  std::unique_ptr<TestDevice> gallery_handset(const std::string& id, std::uint64_t version) {
    auto d = std::make_unique<TestDevice>(pki.dir(), id, hub->address(),
                                          [version](client::ClientOptions& o) {
                                            o.gallery = true;
                                            o.gallery_version = version;
                                          });
    d->connect();
    return d;
  }
  client::ClientOptions options(const std::string& id) const {
    client::ClientOptions o;
    o.hub = hub->address();
    o.certs = pki.dir();
    o.id = id;
    o.connect_timeout = 5s;
    return o;
  }
  json query(TestDevice& d, const std::string& op, const json& args) {
    const auto reply = d.query(op, args.dump());
    INFO(op, ": ", (reply.has_error() ? reply.error().message() : std::string()));
    REQUIRE(reply.has_query_result());
    return json::parse(reply.query_result().result_json());
  }
  // Uploads a photo through coord-1 and returns the SHA-256 it is stored under.
  std::string photo(std::uint32_t width, std::uint32_t height = 40) {
    return coord1->upload(images::make_png(width, height, false)).stored_sha256();
  }
  // An active exclusion notice for `name` in `towns` (proposed by coord-1, approved by coord-2,
  // served by coord-1), citing a fresh form. Returns its id.
  std::int64_t active_notice(const std::string& name, const std::string& towns,
                             const std::string& photo_sha256) {
    const std::string form_id = "form-" + std::to_string(++forms);
    auto shop = device("shop-chatham-1");
    v1::Envelope form;
    auto* f = form.mutable_form();
    f->set_form_id(form_id + "-gallery");
    f->set_occurred_at_ms(now_ms() - 3'600'000);
    f->set_town("chatham");
    f->set_premises("Pentagon Centre");
    f->set_category("theft_from_shop");
    f->set_description("Took razor blades");
    const std::uint64_t msg = shop->send(form);
    REQUIRE(shop->wait_for([msg](const v1::Envelope& x) {
      return x.has_form_confirmed() || (x.has_error() && x.error().in_reply_to() == msg);
    })->has_form_confirmed());
    const std::int64_t profile =
        query(*coord1, "profiles.create", {{"name", name}, {"from_form", f->form_id()}})
            ["profile_id"];
    const std::int64_t notice = query(*coord1, "notice.propose",
                                      {{"profile_id", profile},
                                       {"incidents", {f->form_id()}},
                                       {"conditions", "Not to enter member premises"},
                                       {"towns", towns},
                                       {"photo_sha256", photo_sha256},
                                       {"reason", "three thefts in a month"}})["notice_id"];
    query(*coord2, "notice.approve", {{"notice_id", notice}, {"reason", "board agreed"}});
    CHECK(query(*coord1, "notice.serve", {{"notice_id", notice}, {"reason", "served"}})["state"] ==
          "active");
    return notice;
  }
  void revoke(std::int64_t notice) {
    CHECK(query(*coord1, "notice.revoke", {{"notice_id", notice}, {"reason", "withdrawn"}})
              ["state"] == "revoked");
  }
  json handsets(std::int64_t notice) {
    return query(*coord1, "notice.show", {{"notice_id", notice}})["gallery_handsets"];
  }

  TestPki pki;
  std::unique_ptr<HubFixture> hub;
  std::unique_ptr<TestDevice> coord1;
  std::unique_ptr<TestDevice> coord2;
  int forms = 0;
};

// Everything of one sync, from its GallerySync(begin) to its GallerySync(done).
struct SyncSeen {
  v1::GallerySync begin;
  v1::GallerySync done;
  std::set<std::int64_t> entries;
  std::set<std::int64_t> removals;
};
SyncSeen read_sync(TestDevice& d) {
  SyncSeen seen;
  bool begun = false;
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < until) {
    auto e = d.next(200ms);
    if (!e) continue;
    if (e->has_gallery_sync() && !e->gallery_sync().done()) {
      seen.begin = e->gallery_sync();
      begun = true;
    } else if (e->has_gallery_entry()) {
      CHECK(begun);
      seen.entries.insert(e->gallery_entry().notice_id());
    } else if (e->has_gallery_remove()) {
      CHECK(begun);
      seen.removals.insert(e->gallery_remove().notice_id());
    } else if (e->has_gallery_sync() && e->gallery_sync().done()) {
      seen.done = e->gallery_sync();
      return seen;
    }
  }
  FAIL("no complete gallery sync within 5 s");
  return seen;
}

std::string file_sha256(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return sha256_hex(bytes.str());
}

int sync_folder(const Town& town, const std::string& id, const fs::path& dir) {
  client::GalleryArgs args;
  args.dir = dir;
  std::ostringstream out, err;
  const int rc = client::run_gallery_sync(town.options(id), args, out, err);
  INFO("out: ", out.str(), "\nerr: ", err.str());
  CHECK(rc == 0);
  return rc;
}

std::set<std::int64_t> held(const fs::path& dir) {
  client::GalleryFolder folder(dir);
  std::set<std::int64_t> ids;
  for (const auto& [id, item] : folder.items()) ids.insert(id);
  return ids;
}

std::set<std::string> device_ids(const json& list) {
  std::set<std::string> out;
  for (const auto& x : list) out.insert(x.is_string() ? x.get<std::string>() : x["device_id"].get<std::string>());
  return out;
}

}  // namespace

TEST_CASE("a handset that syncs fresh gets its town's whole gallery with verified photos, and one "
          "at version N gets exactly the changes since N") {
  Town town;
  const std::string photo_a = town.photo(41);
  const std::string photo_b = town.photo(42);
  const std::string photo_s = town.photo(43);
  const auto a = town.active_notice("Razor Ray", "chatham", photo_a);
  const auto b = town.active_notice("Bottle Bill", "chatham", photo_b);
  const auto s = town.active_notice("Strood Sam", "strood", photo_s);

  TempDir folder_dir;
  const fs::path dir = folder_dir.path / "gallery";
  sync_folder(town, "shop-chatham-2", dir);
  std::uint64_t v1 = 0;
  {
    client::GalleryFolder folder(dir);
    CHECK(held(dir) == std::set<std::int64_t>{a, b});
    for (const auto& [id, item] : folder.items()) {
      REQUIRE_FALSE(item.photo_file.empty());
      CHECK(file_sha256(dir / item.photo_file) == item.photo_sha256);
    }
    v1 = folder.version();
    CHECK(v1 > 0);
  }
  {
    // Another town's handset gets its own town's notice only.
    auto strood = town.gallery_handset("shop-strood-1", 0);
    const auto sync = read_sync(*strood);
    CHECK(sync.begin.reset());
    CHECK(sync.entries == std::set<std::int64_t>{s});
  }

  // While the handset is away: a new notice, and one revoked.
  const auto c = town.active_notice("Cider Carl", "chatham", town.photo(44));
  town.revoke(a);
  CHECK(device_ids(town.handsets(a)["deletion_not_confirmed"]) ==
        std::set<std::string>{"shop-chatham-2"});
  {
    auto handset = town.gallery_handset("shop-chatham-2", v1);
    const auto sync = read_sync(*handset);
    CHECK_FALSE(sync.begin.reset());
    CHECK(sync.begin.from_version() == v1);
    CHECK(sync.entries == std::set<std::int64_t>{c});
    CHECK(sync.removals == std::set<std::int64_t>{a});
    CHECK(sync.done.to_version() > v1);
  }

  // The folder follows: the revoked notice's entry and photo go, the new one comes, and the
  // deletion is confirmed to the hub.
  sync_folder(town, "shop-chatham-2", dir);
  CHECK(held(dir) == std::set<std::int64_t>{b, c});
  bool photo_a_left = false;
  for (const auto& f : fs::directory_iterator(dir / "photos")) {
    if (f.path().stem() == photo_a) photo_a_left = true;
  }
  CHECK_FALSE(photo_a_left);
  const auto after = town.handsets(a);
  CHECK(after["deletion_not_confirmed"].empty());
  CHECK(device_ids(after["deletion_confirmed"]) == std::set<std::string>{"shop-chatham-2"});
  CHECK(device_ids(town.handsets(b)["holding"]) == std::set<std::string>{"shop-chatham-2"});
}

TEST_CASE("changes made while a handset is connected arrive live: an addition, and a removal that "
          "the handset confirms while another handset stays unconfirmed") {
  Town town;
  const std::string photo_b = town.photo(51);
  const auto b = town.active_notice("Bottle Bill", "chatham", photo_b);
  TempDir folders;
  const fs::path dir = folders.path / "shop2";
  sync_folder(town, "shop-chatham-2", dir);
  sync_folder(town, "shop-chatham-1", folders.path / "shop1");  // then off air for good

  client::GalleryFolder folder(dir);
  REQUIRE(folder.items().count(b) == 1);
  const fs::path photo_file = dir / folder.items().at(b).photo_file;
  REQUIRE(fs::exists(photo_file));
  auto handset = town.gallery_handset("shop-chatham-2", folder.version());
  auto strood = town.gallery_handset("shop-strood-1", 0);
  {
    const auto sync = read_sync(*handset);
    CHECK(sync.entries.empty());
    CHECK(sync.removals.empty());
    read_sync(*strood);
  }

  // A new notice appears live, with the version it brings the handset to.
  const auto d = town.active_notice("Dodgy Dave", "chatham", town.photo(52));
  auto added = handset->wait_for([&](const v1::Envelope& e) {
    return e.has_gallery_entry() && e.gallery_entry().notice_id() == d;
  });
  REQUIRE(added);
  CHECK(added->gallery_entry().version() > folder.version());
  CHECK(added->gallery_entry().name() == "Dodgy Dave");
  folder.apply(*added);

  // A removal arrives live; the handset deletes entry and photo and confirms.
  town.revoke(b);
  auto removal = handset->wait_for([&](const v1::Envelope& e) {
    return e.has_gallery_remove() && e.gallery_remove().notice_id() == b;
  });
  REQUIRE(removal);
  CHECK(removal->gallery_remove().reason() == "revoked");
  const auto deleted = folder.apply(*removal);
  CHECK(deleted == std::vector<std::int64_t>{b});
  CHECK_FALSE(fs::exists(photo_file));
  v1::Envelope confirm;
  confirm.mutable_gallery_removed()->set_notice_id(b);
  const std::uint64_t msg = handset->send(confirm);
  REQUIRE(handset->wait_for(is_reply(msg)));

  const auto status = town.handsets(b);
  CHECK(device_ids(status["deletion_confirmed"]) == std::set<std::string>{"shop-chatham-2"});
  CHECK(device_ids(status["deletion_not_confirmed"]) == std::set<std::string>{"shop-chatham-1"});

  // The Strood handset never held either and hears of neither.
  for (const auto& e : strood->drain(300ms)) {
    CHECK_FALSE(e.has_gallery_entry());
    CHECK_FALSE(e.has_gallery_remove());
  }
  // A confirmation naming a notice that does not exist is refused.
  v1::Envelope bogus;
  bogus.mutable_gallery_removed()->set_notice_id(999999);
  const std::uint64_t bad = handset->send(bogus);
  auto refused = handset->wait_for(is_reply(bad));
  REQUIRE(refused);
  CHECK(refused->has_error());
}

TEST_CASE("a photo download cut off half-way resumes from the last piece written, not from zero") {
  Town town;
  // About 1.2 MB: several request windows.
  const std::string photo = town.photo(640, 640);
  const auto n = town.active_notice("Big Photo", "chatham", photo);
  (void)n;
  TempDir folders;
  client::GalleryFolder folder(folders.path / "g");
  std::uint64_t size = 0;
  {
    auto handset = town.gallery_handset("shop-chatham-2", 0);
    read_sync(*handset);
  }
  {
    // Read the size the way a handset does: from the entry.
    auto handset = town.gallery_handset("shop-chatham-2", 0);
    auto entry = handset->wait_for([](const v1::Envelope& e) { return e.has_gallery_entry(); });
    REQUIRE(entry);
    size = entry->gallery_entry().photo_size();
    folder.apply(*entry);
  }
  REQUIRE(size > 1'000'000);
  const std::uint64_t sent_before = town.hub->hub->stats().photo_bytes_sent;

  std::uint64_t cut_at = 0;
  {
    // The link drops once half has arrived.
    auto handset = town.device("shop-chatham-2");
    CHECK_THROWS_AS(handset->fetch_photo(folder, photo, size, size / 2), client::ClientError);
    cut_at = size / 2;
  }
  REQUIRE(cut_at > 0);
  const auto partial = folder.partial_path(photo);
  REQUIRE(fs::exists(partial));
  const std::uint64_t kept = fs::file_size(partial);
  CHECK(kept >= cut_at);
  CHECK(kept < size);
  CHECK(kept % (16 * 1024) == 0);  // whole pieces only

  // Let the windows that were in flight when the link dropped finish on the hub's side.
  std::uint64_t settled = town.hub->hub->stats().photo_bytes_sent;
  for (int quiet = 0; quiet < 4;) {
    std::this_thread::sleep_for(50ms);
    const std::uint64_t now = town.hub->hub->stats().photo_bytes_sent;
    quiet = now == settled ? quiet + 1 : 0;
    settled = now;
  }
  auto handset = town.device("shop-chatham-2");
  const auto result = handset->fetch_photo(folder, photo, size);
  CHECK(result.resumed_from == kept);
  CHECK(result.received == size - kept);
  CHECK(file_sha256(folders.path / "g" / folder.items().begin()->second.photo_file) == photo);
  CHECK_FALSE(fs::exists(partial));
  // The hub sent the rest once, from where the handset stopped, not the whole photo again.
  CHECK(town.hub->hub->stats().photo_bytes_sent - settled == size - kept);
  CHECK(settled - sent_before >= kept);
}

TEST_CASE("photo requests are checked: another town's gallery photo, an unknown image and a bad "
          "offset are refused") {
  Town town;
  const std::string photo_s = town.photo(61);
  town.active_notice("Strood Sam", "strood", photo_s);
  auto shop = town.device("shop-chatham-2");
  auto ask = [&](const std::string& sha, std::uint64_t offset) {
    v1::Envelope e;
    e.mutable_photo_request()->set_sha256(sha);
    e.mutable_photo_request()->set_offset(offset);
    const std::uint64_t msg = shop->send(e);
    auto reply = shop->wait_for(is_reply(msg));
    REQUIRE(reply);
    REQUIRE(reply->has_error());
    return reply->error();
  };
  CHECK(ask(photo_s, 0).code() == v1::NOT_ALLOWED);
  CHECK(ask(std::string(64, 'a'), 0).code() == v1::INVALID);
  CHECK(ask("not-a-sha", 0).code() == v1::INVALID);
  auto strood = town.device("shop-strood-1");
  v1::Envelope far;
  far.mutable_photo_request()->set_sha256(photo_s);
  far.mutable_photo_request()->set_offset(1ull << 40);
  const std::uint64_t msg = strood->send(far);
  auto reply = strood->wait_for(is_reply(msg));
  REQUIRE(reply);
  REQUIRE(reply->has_error());
  CHECK(reply->error().code() == v1::INVALID);
}

namespace {

// A police handset driven by hand: a small receive window and segment size (so that the hub's
// writes to it back up), a hello, then whatever the test sends; it reads only when told.
struct ManualPeer {
  ManualPeer(const TestPki& pki, const std::string& id, std::uint16_t port)
      : context(make_client_context(tls_files(pki.dir(), id))), stream(io, *context) {
    stream.set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
    auto& socket = stream.lowest_layer();
    socket.open(asio::ip::tcp::v4());
    socket.set_option(asio::socket_base::receive_buffer_size(4096));
    const int mss = 256;
    REQUIRE(::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss) == 0);
    timeval timeout{10, 0};  // a read that hangs fails the test instead of hanging it
    REQUIRE(::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                         sizeof timeout) == 0);
    socket.connect({asio::ip::make_address("127.0.0.1"), port});
    stream.handshake(asio::ssl::stream_base::client);
    v1::Envelope hello;
    hello.mutable_hello()->set_protocol_version(kProtocolVersion);
    send(hello);
  }
  void send(v1::Envelope& e) { asio::write(stream, asio::buffer(*encode(e))); }
  v1::Envelope next() {
    for (;;) {
      if (decoder.next() == FrameDecoder::Status::frame) {
        v1::Envelope e;
        REQUIRE(e.ParseFromArray(decoder.body().data(), static_cast<int>(decoder.body().size())));
        return e;
      }
      char buffer[16 * 1024];
      const std::size_t n = stream.read_some(asio::buffer(buffer));
      decoder.feed(buffer, n);
    }
  }

  asio::io_context io;
  std::shared_ptr<asio::ssl::context> context;
  asio::ssl::stream<asio::ip::tcp::socket> stream;
  FrameDecoder decoder{kMaxResultFrameBytes};
};

std::uint64_t deepest_queue(server::Hub& hub) {
  asio::io_context local;
  auto depths = asio::co_spawn(local, hub.queue_depths(), asio::use_future);
  local.run();
  return depths.get().max_messages;
}

}  // namespace

TEST_CASE("while a 5 MB photo is being sent to a handset, a panic alert for the same handset "
          "arrives before the photo's remaining chunks") {
  Town town([](server::HubConfig& c) { c.queue_max_bytes = 16 * 1024 * 1024; });
  const std::string photo = town.photo(1300, 1300);  // about 5 MB
  town.active_notice("Five Megabytes", "chatham", photo);
  auto shop = town.device("shop-chatham-1");

  ManualPeer police(town.pki, "police-chatham", town.hub->hub->port());
  REQUIRE(police.next().has_welcome());
  // Ask for the whole photo at once, then stop reading: the chunks back up in the hub's queue.
  std::uint64_t size = 0;
  {
    v1::Envelope probe;
    probe.mutable_photo_request()->set_sha256(photo);
    probe.mutable_photo_request()->set_max_bytes(16 * 1024);
    police.send(probe);
    const auto first = police.next();
    REQUIRE(first.has_photo_chunk());
    size = first.photo_chunk().total_size();
  }
  REQUIRE(size > 5'000'000);
  for (std::uint64_t offset = 16 * 1024; offset < size; offset += 256 * 1024) {
    v1::Envelope request;
    request.mutable_photo_request()->set_sha256(photo);
    request.mutable_photo_request()->set_offset(offset);
    request.mutable_photo_request()->set_max_bytes(256 * 1024);
    police.send(request);
  }
  std::uint64_t queued = 0;
  for (int i = 0; i < 200 && queued < 100; ++i) {
    std::this_thread::sleep_for(20ms);
    queued = deepest_queue(*town.hub->hub);
  }
  REQUIRE(queued >= 100);  // most of the photo is waiting at the hub

  shop->panic(1);
  REQUIRE(shop->wait_for([](const v1::Envelope& e) { return e.has_accepted(); }));
  // What is still queued for the police handset now that the panic is in its queue (the hub
  // queued it before it answered the shop; the short pause lets that reach the connection's
  // strand): the panic and the chunks behind it. The writer may still drain a little while
  // the socket buffers take it, so the bound is taken after the panic, not before.
  std::this_thread::sleep_for(100ms);
  const std::uint64_t queued_after = deepest_queue(*town.hub->hub);

  // Now read everything: the panic comes before the chunks that were still queued.
  std::uint64_t received = 16 * 1024;
  std::uint64_t chunks_before = 0;
  std::uint64_t chunks_after = 0;
  bool panic_seen = false;
  while (received < size || !panic_seen) {
    const auto e = police.next();
    if (e.has_panic()) {
      CHECK(e.panic().alert_id() == "shop-chatham-1:1");
      panic_seen = true;
    } else if (e.has_photo_chunk()) {
      CHECK(e.photo_chunk().offset() == received);
      CHECK(e.photo_chunk().data().size() <= 16 * 1024);
      received += e.photo_chunk().data().size();
      (panic_seen ? chunks_after : chunks_before) += 1;
    }
  }
  CHECK(received == size);
  INFO("chunks before the panic: ", chunks_before, ", after: ", chunks_after,
       ", queued before the panic: ", queued, ", after it: ", queued_after);
  // Everything still in the hub's queue with the panic (but the one chunk being written)
  // arrived after it: the panic overtook the photo's remaining chunks.
  CHECK(queued_after >= 50);
  CHECK(chunks_after + 2 >= queued_after);
}
