// Image uploads from devices to the hub (issue 3, item 2; issue 4, item 3): chunks of at most
// 16 KiB, checked by content, metadata stripped, stored once by SHA-256, resumable after a
// disconnect, citable in a form — real hub, real TLS, certificates made here.
#include "client/upload.hpp"
#include "core/image.hpp"
#include "tests/support/device.hpp"
#include "tests/support/hub_fixture.hpp"
#include "tests/support/images.hpp"
#include "tests/support/pki.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

using namespace saferlink;
using namespace saferlink::test;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kChunk = 16 * 1024;

struct Partnership {
  explicit Partnership(const std::function<void(server::HubConfig&)>& tweak = {}) {
    pki.issue(Role::shop, "chatham", "shop-chatham-1", "Boots Chatham");
    pki.issue(Role::cctv, "all", "cctv-01", "Medway CCTV");
    pki.issue(Role::coordinator, "all", "coord-1", "Safer Medway");
    hub = std::make_unique<HubFixture>(pki, tweak);
  }
  std::unique_ptr<TestDevice> device(const std::string& id) {
    auto d = std::make_unique<TestDevice>(pki.dir(), id, hub->address());
    d->connect();
    return d;
  }
  fs::path blobs() const { return hub->hub->blob_root(); }
  // The stored image files (the partial-upload folder aside).
  std::vector<fs::path> image_files() const {
    std::vector<fs::path> out;
    for (const auto& entry : fs::recursive_directory_iterator(blobs())) {
      if (entry.is_regular_file() && entry.path().parent_path().filename() != "partial") {
        out.push_back(entry.path());
      }
    }
    return out;
  }
  std::vector<fs::path> partial_files() const {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator(blobs() / "partial")) out.push_back(entry);
    return out;
  }
  std::int64_t count(const std::string& sql, const std::string& arg = {}) const {
    SQLite::Database db(hub->config.db.string(), SQLite::OPEN_READONLY);
    SQLite::Statement select(db, sql);
    if (!arg.empty()) select.bind(1, arg);
    REQUIRE(select.executeStep());
    return select.getColumn(0).getInt64();
  }
  TestPki pki;
  std::unique_ptr<HubFixture> hub;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// The refusal text an upload ended with ("(accepted)" if it was not refused).
std::string refusal_of(TestDevice& device, std::string bytes) {
  try {
    device.upload(std::move(bytes));
  } catch (const client::UploadRefused& e) {
    return e.what();
  }
  return "(accepted)";
}

v1::Envelope form_with_stills(const std::string& form_id, const std::vector<std::string>& stills) {
  v1::Envelope e;
  auto* f = e.mutable_form();
  f->set_form_id(form_id);
  f->set_occurred_at_ms(now_ms() - 3'600'000);
  f->set_town("chatham");
  f->set_premises("Pentagon Centre");
  f->set_category("theft_from_shop");
  f->set_description("Took razor blades; the CCTV still shows his face");
  for (const auto& sha : stills) f->add_still_sha256(sha);
  return e;
}

// A PNG of about `kilobytes` KiB: several chunks' worth.
std::string big_png(std::uint32_t kilobytes, bool with_metadata = false) {
  const std::uint32_t width = 64;
  return images::make_png(width, kilobytes * 1024 / (width * 3), with_metadata);
}

}  // namespace

TEST_CASE("a PNG and a JPEG upload in chunks and come back stored, the JPEG without its Exif "
          "GPS data") {
  Partnership p;
  auto shop = p.device("shop-chatham-1");
  const std::string png = big_png(100, true);  // 7 chunks, with a tEXt naming a place
  const std::string jpeg = images::make_jpeg(true);
  REQUIRE(png.size() > 6 * kChunk);
  REQUIRE(contains(jpeg, "GPS"));
  REQUIRE(contains(jpeg, "Exif"));

  const v1::UploadStatus png_done = shop->upload(png);
  CHECK(png_done.done());
  CHECK(png_done.error().empty());
  CHECK(png_done.sha256() == sha256_hex(png));
  CHECK(png_done.mime() == "image/png");
  CHECK(png_done.stored_sha256() != png_done.sha256());  // the tEXt chunk is gone

  const v1::UploadStatus jpeg_done = shop->upload(jpeg);
  CHECK(jpeg_done.done());
  CHECK(jpeg_done.mime() == "image/jpeg");
  CHECK(jpeg_done.stored_sha256() != sha256_hex(jpeg));

  // Both files exist under the hub's blobs folder, named by the SHA-256 of what they hold.
  for (const auto* done : {&png_done, &jpeg_done}) {
    const std::string& stored = done->stored_sha256();
    const fs::path file = p.blobs() / stored.substr(0, 2) / stored;
    REQUIRE(fs::is_regular_file(file));
    CHECK(sha256_hex(read_file(file)) == stored);
    CHECK(p.count("SELECT count(*) FROM blobs WHERE sha256 = ?", stored) == 1);
    CHECK(p.count("SELECT count(*) FROM image_uploads WHERE stored_sha256 = ?", stored) == 1);
  }
  const std::string stored_jpeg = read_file(p.blobs() / jpeg_done.stored_sha256().substr(0, 2) /
                                            jpeg_done.stored_sha256());
  CHECK_FALSE(contains(stored_jpeg, "GPS"));
  CHECK_FALSE(contains(stored_jpeg, "Exif"));
  CHECK(stored_jpeg.substr(0, 2) == "\xFF\xD8");
  const std::string stored_png = read_file(p.blobs() / png_done.stored_sha256().substr(0, 2) /
                                           png_done.stored_sha256());
  CHECK_FALSE(contains(stored_png, "GPS"));
  CHECK(std::holds_alternative<CheckedImage>(check_image(stored_png)));
  CHECK(p.count("SELECT size FROM blobs WHERE sha256 = ?", png_done.stored_sha256()) ==
        static_cast<std::int64_t>(stored_png.size()));
  CHECK(p.partial_files().empty());  // nothing left half-way
}

TEST_CASE("a text file renamed to .jpg is refused with a reason, and the connection carries on") {
  Partnership p;
  auto shop = p.device("shop-chatham-1");
  const std::string text = "Dear manager, the suspect left by the north exit at 14:05.\n";
  const std::string why = refusal_of(*shop, text);
  CHECK(contains(why, "not a JPEG, PNG or WebP image"));
  CHECK(p.count("SELECT count(*) FROM blobs") == 0);
  CHECK(p.image_files().empty());
  CHECK(p.partial_files().empty());

  // A truncated image is refused too; then a good one goes through on the same connection.
  const std::string png = images::make_png(8, 8, false);
  CHECK(contains(refusal_of(*shop, png.substr(0, png.size() - 10)), "PNG"));
  CHECK(shop->upload(png).done());
  CHECK(p.count("SELECT count(*) FROM blobs") == 1);
}

TEST_CASE("an upload declared larger than the image cap, empty or with a malformed SHA-256 is "
          "refused at once") {
  Partnership p([](server::HubConfig& c) { c.image_cap_bytes = 64 * 1024; });
  auto shop = p.device("shop-chatham-1");
  const std::string png = big_png(80);
  REQUIRE(png.size() > 64 * 1024);
  const std::string sha = sha256_hex(png);

  shop->upload_begin(sha, png.size());
  auto oversize = shop->upload_status(sha);
  REQUIRE(oversize);
  CHECK_FALSE(oversize->done());
  CHECK(oversize->error() == "size: an image of " + std::to_string(png.size()) +
                                 " bytes exceeds the 65536-byte cap");
  // The same through the client: refused before a single chunk is sent.
  CHECK(contains(refusal_of(*shop, png), "exceeds the 65536-byte cap"));

  shop->upload_begin(sha, 0);
  auto empty = shop->upload_status(sha);
  REQUIRE(empty);
  CHECK(contains(empty->error(), "empty file"));

  const std::string upper = "ABCDEF" + sha.substr(6);
  shop->upload_begin(upper, 100);
  auto malformed = shop->upload_status(upper);
  REQUIRE(malformed);
  CHECK(contains(malformed->error(), "sha256: must be 64 lower-case hex digits"));

  CHECK(p.partial_files().empty());
  CHECK(p.hub->hub->stats().refusals >= 4);
  CHECK(shop->upload(images::make_png(8, 8, false)).done());  // still connected
}

TEST_CASE("chunks that do not hash to the declared SHA-256 are refused and nothing is kept") {
  Partnership p;
  auto shop = p.device("shop-chatham-1");
  const std::string png = big_png(40);
  const std::string declared = sha256_hex(images::make_png(9, 9, false));  // another image
  shop->upload_begin(declared, png.size());
  auto started = shop->upload_status(declared);
  REQUIRE(started);
  REQUIRE(started->error().empty());
  CHECK(started->next_offset() == 0);
  for (std::size_t offset = 0; offset < png.size(); offset += kChunk) {
    shop->upload_chunk(declared, offset, png.substr(offset, kChunk));
  }
  auto refused = shop->upload_status(declared);
  REQUIRE(refused);
  CHECK_FALSE(refused->done());
  CHECK(contains(refused->error(), "SHA-256 mismatch"));
  CHECK(p.count("SELECT count(*) FROM blobs") == 0);
  CHECK(p.count("SELECT count(*) FROM image_uploads") == 0);
  CHECK(p.image_files().empty());
  CHECK(p.partial_files().empty());

  // Forgotten: beginning again starts from zero.
  shop->upload_begin(declared, png.size());
  auto again = shop->upload_status(declared);
  REQUIRE(again);
  CHECK(again->error().empty());
  CHECK(again->next_offset() == 0);
}

TEST_CASE("a chunk above 16 KiB is refused and the upload forgotten, and a wrong offset names "
          "the expected one and the upload stays open") {
  Partnership p;
  auto shop = p.device("shop-chatham-1");
  const std::string png = big_png(60);
  const std::string sha = sha256_hex(png);
  shop->upload_begin(sha, png.size());
  REQUIRE(shop->upload_status(sha));

  shop->upload_chunk(sha, 0, png.substr(0, kChunk));
  shop->upload_chunk(sha, 3 * kChunk, png.substr(3 * kChunk, kChunk));
  auto wrong = shop->upload_status(sha);
  REQUIRE(wrong);
  CHECK(wrong->next_offset() == kChunk);
  CHECK(contains(wrong->error(), "expected offset " + std::to_string(kChunk)));
  CHECK(p.partial_files().size() == 2);  // the data and its .meta: still open

  shop->upload_chunk(sha, kChunk, png.substr(kChunk, kChunk + 1));
  auto big = shop->upload_status(sha);
  REQUIRE(big);
  CHECK(contains(big->error(), "exceeds the 16 384-byte chunk limit"));
  CHECK(p.partial_files().empty());  // forgotten
  shop->upload_chunk(sha, kChunk, png.substr(kChunk, kChunk));
  auto gone = shop->upload_status(sha);
  REQUIRE(gone);
  CHECK(contains(gone->error(), "no upload of this sha256 is open"));
}

TEST_CASE("at most 4 uploads are open at once on one connection") {
  Partnership p;
  auto shop = p.device("shop-chatham-1");
  std::vector<std::string> shas;
  for (std::uint32_t i = 0; i < 5; ++i) {
    const std::string png = images::make_png(10 + i, 10, false);
    shas.push_back(sha256_hex(png));
    shop->upload_begin(shas.back(), png.size());
    auto status = shop->upload_status(shas.back());
    REQUIRE(status);
    if (i < 4) {
      CHECK(status->error().empty());
    } else {
      CHECK(contains(status->error(), "too many uploads at once on this connection (at most 4)"));
    }
  }
}

TEST_CASE("the same image uploaded twice, even by two devices, is stored once and the second "
          "begin answers done at once") {
  Partnership p;
  auto shop = p.device("shop-chatham-1");
  auto cctv = p.device("cctv-01");
  const std::string jpeg = images::make_jpeg(true);
  const std::string sha = sha256_hex(jpeg);
  const v1::UploadStatus first = shop->upload(jpeg);
  REQUIRE(first.done());
  {
    // Make the image look long stored: answering "held" restarts the purge's grace period.
    SQLite::Database db(p.hub->config.db.string(), SQLite::OPEN_READWRITE);
    db.setBusyTimeout(5000);
    SQLite::Statement age(db, "UPDATE blobs SET stored_at_ms = 1 WHERE sha256 = ?");
    age.bind(1, first.stored_sha256());
    REQUIRE(age.exec() == 1);
  }

  // Another device: UploadBegin alone, and the answer is done with the same stored image.
  cctv->upload_begin(sha, jpeg.size());
  auto second = cctv->upload_status(sha);
  REQUIRE(second);
  CHECK(second->done());
  CHECK(second->error().empty());
  CHECK(second->stored_sha256() == first.stored_sha256());
  CHECK(second->mime() == "image/jpeg");
  CHECK(p.count("SELECT count(*) FROM blobs WHERE sha256 = ? AND stored_at_ms > 1",
                first.stored_sha256()) == 1);
  // The same device again, through the client, and the cleaned bytes themselves: all held.
  CHECK(shop->upload(jpeg).stored_sha256() == first.stored_sha256());
  const std::string cleaned = std::get<CheckedImage>(check_image(jpeg)).bytes;
  CHECK(cctv->upload(cleaned).stored_sha256() == first.stored_sha256());

  CHECK(p.count("SELECT count(*) FROM blobs") == 1);
  CHECK(p.image_files().size() == 1);
  CHECK(p.count("SELECT count(*) FROM image_uploads WHERE declared_sha256 = ?", sha) == 1);
  SQLite::Database db(p.hub->config.db.string(), SQLite::OPEN_READONLY);
  SQLite::Statement sender(db, "SELECT first_sender FROM image_uploads WHERE declared_sha256 = ?");
  sender.bind(1, sha);
  REQUIRE(sender.executeStep());
  CHECK(sender.getColumn(0).getString() == "shop-chatham-1");
}

TEST_CASE("an upload cut off half-way resumes on a new connection from the last byte received, "
          "not from zero") {
  Partnership p;
  const std::string png = big_png(160);  // 10 chunks
  const std::string sha = sha256_hex(png);
  const std::size_t chunks = (png.size() + kChunk - 1) / kChunk;
  REQUIRE(chunks >= 8);
  const std::size_t half = chunks / 2 * kChunk;
  {
    auto shop = p.device("shop-chatham-1");
    shop->upload_begin(sha, png.size());
    auto started = shop->upload_status(sha);
    REQUIRE(started);
    REQUIRE(started->next_offset() == 0);
    for (std::size_t offset = 0; offset < half; offset += kChunk) {
      shop->upload_chunk(sha, offset, png.substr(offset, kChunk));
    }
    // A chunk at a wrong offset: its answer says how far the hub got, i.e. that the first
    // half has arrived, before the connection is cut.
    shop->upload_chunk(sha, 0, png.substr(0, kChunk));
    auto got = shop->upload_status(sha);
    REQUIRE(got);
    REQUIRE(got->next_offset() == half);
  }  // the handset goes out of range: the connection drops without a goodbye

  auto again = p.device("shop-chatham-1");
  std::optional<v1::UploadStatus> resumed;
  for (int attempt = 0; attempt < 100; ++attempt) {
    again->upload_begin(sha, png.size());
    resumed = again->upload_status(sha);
    REQUIRE(resumed);
    if (!resumed->busy()) break;  // the hub has not yet seen the old connection end
    std::this_thread::sleep_for(20ms);
  }
  CHECK(resumed->error().empty());
  CHECK_FALSE(resumed->done());
  CHECK(resumed->next_offset() == half);

  for (std::size_t offset = half; offset < png.size(); offset += kChunk) {
    again->upload_chunk(sha, offset, png.substr(offset, kChunk));
  }
  auto done = again->upload_status(sha);
  REQUIRE(done);
  CHECK(done->error().empty());
  CHECK(done->done());
  CHECK(done->stored_sha256() == sha);  // no metadata: stored as sent
  CHECK(read_file(p.blobs() / sha.substr(0, 2) / sha) == png);
  CHECK(p.partial_files().empty());
}

TEST_CASE("a form citing an uploaded still is accepted, and one citing an image never uploaded "
          "is refused") {
  Partnership p;
  auto shop = p.device("shop-chatham-1");
  const v1::UploadStatus still = shop->upload(images::make_jpeg(true));
  REQUIRE(still.done());

  const std::uint64_t id = shop->send(form_with_stills("form-still-0001", {still.stored_sha256()}));
  auto confirmed = shop->wait_for([id](const v1::Envelope& e) {
    return e.has_form_confirmed() || (e.has_error() && e.error().in_reply_to() == id);
  });
  REQUIRE(confirmed);
  INFO((confirmed->has_error() ? confirmed->error().message() : ""));
  REQUIRE(confirmed->has_form_confirmed());
  CHECK(p.count("SELECT count(*) FROM form_stills WHERE sha256 = ?", still.stored_sha256()) == 1);

  const std::string never = sha256_hex("never uploaded");
  const std::uint64_t id2 = shop->send(form_with_stills("form-still-0002", {never}));
  auto refused = shop->wait_for([id2](const v1::Envelope& e) {
    return e.has_error() && e.error().in_reply_to() == id2;
  });
  REQUIRE(refused);
  CHECK(contains(refused->error().message(), "not uploaded"));
}
