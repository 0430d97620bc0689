#include "server/blob_store.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;
using saferlink::CheckedImage;
using saferlink::sha256_hex;
using saferlink::server::BlobStore;
using saferlink::server::ChunkVerdict;
using saferlink::server::Upload;
using saferlink::server::UploadError;

// A directory of its own under the system temp dir, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device random;
    path = fs::temp_directory_path() /
           ("saferlink-blob-test-" + std::to_string(::getpid()) + "-" + std::to_string(random()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// ---- a real PNG, with a tEXt chunk naming a place -------------------------------------------

std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>((v >> 16) & 0xFF),
          static_cast<char>((v >> 8) & 0xFF), static_cast<char>(v & 0xFF)};
}
std::string le16(std::uint32_t v) {
  return {static_cast<char>(v & 0xFF), static_cast<char>((v >> 8) & 0xFF)};
}

std::string zlib_stored(std::string_view raw) {
  std::uint32_t a = 1, b = 0;
  for (char c : raw) {
    a = (a + static_cast<unsigned char>(c)) % 65521;
    b = (b + a) % 65521;
  }
  std::string out = "\x78\x01"s;
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min<std::size_t>(65535, raw.size() - pos);
    out.push_back(pos + n == raw.size() ? '\x01' : '\x00');
    out += le16(static_cast<std::uint32_t>(n)) + le16(~static_cast<std::uint32_t>(n) & 0xFFFF);
    out.append(raw.substr(pos, n));
    pos += n;
  } while (pos < raw.size());
  return out + be32(b << 16 | a);
}

std::string png_chunk(std::string_view type, std::string_view data) {
  const std::string body = std::string(type) + std::string(data);
  return be32(static_cast<std::uint32_t>(data.size())) + body + be32(saferlink::crc32(body));
}

const std::string kPlace = "GPS 51.3890N 0.5050E";

// An RGB PNG of width x height (200 x 120 is about 72 KB: five 16 KiB chunks). `shade` varies
// the pixels so that different calls can make different images.
std::string make_png(std::uint32_t width, std::uint32_t height, char shade = 0) {
  std::string raw;
  for (std::uint32_t y = 0; y < height; ++y) {
    raw.push_back('\0');
    for (std::uint32_t x = 0; x < width * 3; ++x)
      raw.push_back(static_cast<char>(static_cast<char>(x * 7 + y * 13) ^ shade));
  }
  return "\x89PNG\r\n\x1a\n"s +
         png_chunk("IHDR", be32(width) + be32(height) + "\x08\x02\x00\x00\x00"s) +
         png_chunk("tEXt", "Location\0"s + kPlace) + png_chunk("IDAT", zlib_stored(raw)) +
         png_chunk("IEND", "");
}

CheckedImage checked(std::string_view bytes) {
  auto result = saferlink::check_image(bytes);
  REQUIRE(std::holds_alternative<CheckedImage>(result));
  return std::get<CheckedImage>(std::move(result));
}

Upload open_upload(const BlobStore& store, std::string_view id, std::string_view bytes) {
  auto opened = Upload::open(store, id, bytes.size(), sha256_hex(bytes));
  if (const auto* error = std::get_if<UploadError>(&opened))
    FAIL("open refused: " << error->reason);
  return std::get<Upload>(std::move(opened));
}

// Sends bytes [from, to) in chunks of at most `chunk` bytes, each of which must be accepted.
void send(Upload& upload, std::string_view bytes, std::size_t from, std::size_t to,
          std::size_t chunk = Upload::kMaxChunkBytes) {
  for (std::size_t at = from; at < to; at += chunk) {
    const ChunkVerdict verdict = upload.accept(at, bytes.substr(at, std::min(chunk, to - at)));
    REQUIRE_MESSAGE(verdict.accepted, verdict.reason);
    REQUIRE(verdict.next_offset == std::min(at + chunk, to));
  }
}

std::size_t files_under(const fs::path& dir) {
  std::size_t n = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file()) ++n;
  return n;
}

std::string error_of(const std::variant<CheckedImage, UploadError>& result) {
  if (std::holds_alternative<CheckedImage>(result)) return "(accepted)";
  return std::get<UploadError>(result).reason;
}

}  // namespace

TEST_CASE("blob store keeps a checked image once, under ROOT/ab/<sha>, readable by the hub only") {
  TempDir dir;
  const BlobStore store(dir.path / "blobs");
  CHECK((fs::status(dir.path / "blobs").permissions() & fs::perms::all) == fs::perms::owner_all);

  const CheckedImage image = checked(make_png(4, 3));
  const std::string sha = store.put(image);
  CHECK(sha == sha256_hex(image.bytes));
  const fs::path path = dir.path / "blobs" / sha.substr(0, 2) / sha;
  CHECK(store.path_of(sha) == path);
  REQUIRE(fs::is_regular_file(path));
  CHECK((fs::status(path).permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write));
  CHECK((fs::status(path.parent_path()).permissions() & fs::perms::all) == fs::perms::owner_all);
  CHECK(store.has(sha));
  CHECK(store.read(sha) == image.bytes);

  CHECK(store.put(image) == sha);
  CHECK(store.list() == std::vector<std::string>{sha});
  CHECK(files_under(dir.path / "blobs") == 1);  // no temporary files left behind

  const std::string other = store.put(checked(make_png(4, 3, 0x55)));
  CHECK(other != sha);
  auto expected = std::vector<std::string>{sha, other};
  std::sort(expected.begin(), expected.end());
  CHECK(store.list() == expected);
}

TEST_CASE("blob store answers 'not held' for unknown or malformed SHA-256s and removes images") {
  TempDir dir;
  const BlobStore store(dir.path);
  const std::string sha = store.put(checked(make_png(2, 2)));
  const std::string unknown = sha256_hex("not stored");

  CHECK_FALSE(store.has(unknown));
  CHECK_FALSE(store.read(unknown).has_value());
  CHECK_FALSE(store.remove(unknown));
  for (const std::string& bad :
       {"../../etc/passwd"s, sha.substr(0, 63), ""s, "A" + sha.substr(1)}) {
    CHECK_FALSE(store.has(bad));
    CHECK_FALSE(store.read(bad).has_value());
    CHECK_FALSE(store.remove(bad));
    CHECK_THROWS_AS(store.path_of(bad), std::invalid_argument);
  }

  CHECK(store.remove(sha));
  CHECK_FALSE(store.has(sha));
  CHECK_FALSE(fs::exists(store.path_of(sha)));
  CHECK_FALSE(store.remove(sha));
  CHECK(store.list().empty());
}

TEST_CASE("blob store refuses to hand out a file whose bytes no longer match its name") {
  TempDir dir;
  const BlobStore store(dir.path);
  const std::string sha = store.put(checked(make_png(2, 2)));
  fs::permissions(store.path_of(sha), fs::perms::owner_write, fs::perm_options::add);
  {
    std::fstream file(store.path_of(sha), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(40);
    file.put('\x5A');
  }
  CHECK_THROWS_AS(store.read(sha), std::runtime_error);
}

TEST_CASE("blob store stores an image once when several threads put it at the same time") {
  TempDir dir;
  const BlobStore store(dir.path);
  const CheckedImage image = checked(make_png(50, 40));
  std::vector<std::string> shas(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < shas.size(); ++i)
    threads.emplace_back([&, i] { shas[i] = store.put(image); });
  for (std::thread& t : threads) t.join();
  for (const std::string& sha : shas) CHECK(sha == sha256_hex(image.bytes));
  CHECK(files_under(dir.path) == 1);
  CHECK(store.read(shas[0]) == image.bytes);
}

TEST_CASE("upload assembles 16 KiB chunks, checks the SHA-256 and returns the image without GPS") {
  TempDir dir;
  const BlobStore store(dir.path);
  const std::string original = make_png(200, 120);
  REQUIRE(original.size() > 4 * Upload::kMaxChunkBytes);

  Upload upload = open_upload(store, "dev-1", original);
  CHECK(upload.received() == 0);
  send(upload, original, 0, original.size());
  CHECK(upload.received() == original.size());

  auto result = upload.complete();
  REQUIRE_MESSAGE(std::holds_alternative<CheckedImage>(result), error_of(result));
  const CheckedImage& image = std::get<CheckedImage>(result);
  CHECK(image.mime == "image/png");
  CHECK(image.width == 200);
  CHECK(image.bytes.find(kPlace) == std::string::npos);
  CHECK(image.bytes == checked(original).bytes);
  CHECK_FALSE(upload.is_open());
  CHECK(fs::is_empty(store.partial_dir()));  // the partial is gone once complete

  const std::string sha = store.put(image);
  CHECK(store.read(sha) == image.bytes);
}

TEST_CASE("upload refuses a chunk sequence whose SHA-256 is not the declared one") {
  TempDir dir;
  const BlobStore store(dir.path);
  const std::string original = make_png(200, 120);
  std::string altered = original;
  altered[20000] = static_cast<char>(altered[20000] ^ 0x01);

  Upload upload = open_upload(store, "dev-1", original);  // declares the original's SHA-256
  send(upload, altered, 0, altered.size());
  const std::string reason = error_of(upload.complete());
  CHECK(reason == "SHA-256 mismatch: declared " + sha256_hex(original) + ", received " +
                      sha256_hex(altered));
  CHECK_FALSE(upload.is_open());
  CHECK(fs::is_empty(store.partial_dir()));
  CHECK(store.list().empty());
}

TEST_CASE("upload refuses a chunk over 16 KiB") {
  TempDir dir;
  const BlobStore store(dir.path);
  const std::string original = make_png(200, 120);
  Upload upload = open_upload(store, "dev-1", original);

  const ChunkVerdict big = upload.accept(0, std::string_view(original).substr(0, 16 * 1024 + 1));
  CHECK_FALSE(big.accepted);
  CHECK(big.reason == "chunk of 16 385 bytes exceeds the 16 384-byte chunk limit");
  CHECK(big.next_offset == 0);
  CHECK(upload.received() == 0);
  CHECK(upload.accept(0, std::string_view(original).substr(0, 16 * 1024)).accepted);
  CHECK_FALSE(upload.accept(16 * 1024, "").accepted);
}

TEST_CASE("upload refuses an out-of-order chunk and names the offset it expects") {
  TempDir dir;
  const BlobStore store(dir.path);
  const std::string original = make_png(200, 120);
  const std::string_view bytes = original;
  Upload upload = open_upload(store, "dev-1", original);
  REQUIRE(upload.accept(0, bytes.substr(0, 16384)).accepted);

  const ChunkVerdict skipped = upload.accept(32768, bytes.substr(32768, 16384));
  CHECK_FALSE(skipped.accepted);
  CHECK(skipped.next_offset == 16384);
  CHECK(skipped.reason == "chunk at offset 32 768, expected offset 16 384");

  const ChunkVerdict repeated = upload.accept(0, bytes.substr(0, 16384));
  CHECK_FALSE(repeated.accepted);
  CHECK(repeated.next_offset == 16384);
  CHECK(upload.received() == 16384);

  send(upload, original, 16384, original.size());
  CHECK(std::holds_alternative<CheckedImage>(upload.complete()));
}

TEST_CASE("upload refuses data past the declared size and a complete() before the last byte") {
  TempDir dir;
  const BlobStore store(dir.path);
  const std::string original = make_png(10, 10);
  Upload upload = open_upload(store, "dev-1", original);
  send(upload, original, 0, original.size() - 10);

  const std::string tail = original.substr(original.size() - 10) + "extra";
  const ChunkVerdict past = upload.accept(original.size() - 10, tail);
  CHECK_FALSE(past.accepted);
  CHECK(past.reason == "chunk runs past the declared size of " + std::to_string(original.size()) +
                           " bytes");

  auto early = upload.complete();
  REQUIRE(std::holds_alternative<UploadError>(early));
  CHECK(std::get<UploadError>(early).can_resume);
  CHECK(std::get<UploadError>(early).reason ==
        "upload incomplete: " + std::to_string(original.size() - 10) + " of " +
            std::to_string(original.size()) + " bytes received");
  CHECK(upload.is_open());

  send(upload, original, original.size() - 10, original.size());
  CHECK(std::holds_alternative<CheckedImage>(upload.complete()));
}

TEST_CASE("upload interrupted half-way resumes from the bytes already received, not from zero") {
  TempDir dir;
  const BlobStore store(dir.path);
  const std::string original = make_png(200, 120);
  const std::size_t chunk = Upload::kMaxChunkBytes;
  const std::size_t half = (original.size() + chunk - 1) / chunk / 2 * chunk;
  REQUIRE(half > 0);
  const std::string id = Upload::id_for("shop-chatham-01", sha256_hex(original));

  {
    Upload first = open_upload(store, id, original);
    send(first, original, 0, half);
  }  // the connection drops: the Upload is destroyed, its partial stays
  CHECK(fs::file_size(store.partial_dir() / id) == half);

  Upload resumed = open_upload(store, id, original);
  CHECK(resumed.received() == half);
  const ChunkVerdict from_zero = resumed.accept(0, std::string_view(original).substr(0, 16384));
  CHECK_FALSE(from_zero.accepted);
  CHECK(from_zero.next_offset == half);

  send(resumed, original, half, original.size());
  auto result = resumed.complete();
  REQUIRE_MESSAGE(std::holds_alternative<CheckedImage>(result), error_of(result));
  CHECK(std::get<CheckedImage>(result).bytes == checked(original).bytes);
}

TEST_CASE("upload under an id whose partial was for another image starts again from zero") {
  TempDir dir;
  const BlobStore store(dir.path);
  const std::string first_image = make_png(200, 120), second_image = make_png(200, 120, 0x33);
  {
    Upload first = open_upload(store, "dev-1", first_image);
    send(first, first_image, 0, 32768);
  }
  Upload second = open_upload(store, "dev-1", second_image);
  CHECK(second.received() == 0);
  send(second, second_image, 0, second_image.size());
  auto result = second.complete();
  REQUIRE_MESSAGE(std::holds_alternative<CheckedImage>(result), error_of(result));
  CHECK(std::get<CheckedImage>(result).bytes == checked(second_image).bytes);
}

TEST_CASE("upload refuses a second open of an id while the first is open") {
  TempDir dir;
  const BlobStore store(dir.path);
  const std::string original = make_png(20, 20);
  std::optional<Upload> first(open_upload(store, "dev-1", original));
  send(*first, original, 0, 100, 50);

  auto second = Upload::open(store, "dev-1", original.size(), sha256_hex(original));
  REQUIRE(std::holds_alternative<UploadError>(second));
  CHECK(std::get<UploadError>(second).reason ==
        "upload dev-1 is already open on another connection");
  CHECK(std::get<UploadError>(second).can_resume);

  first.reset();
  Upload third = open_upload(store, "dev-1", original);
  CHECK(third.received() == 100);
}

TEST_CASE("upload refuses a bad id, a bad SHA-256, an empty or an oversize declaration") {
  TempDir dir;
  const BlobStore store(dir.path);
  const std::string sha = sha256_hex("x");
  const auto reason = [&](std::string_view id, std::uint64_t size, std::string_view declared) {
    auto opened = Upload::open(store, id, size, declared);
    return std::holds_alternative<UploadError>(opened) ? std::get<UploadError>(opened).reason
                                                       : "(opened)"s;
  };
  for (const std::string_view bad_id : {"../escape", "", "a.meta", "with space"})
    CHECK(reason(bad_id, 10, sha) ==
          "upload id must be 1 to 128 characters of A-Z, a-z, 0-9, _ and -");
  CHECK(reason(std::string(129, 'a'), 10, sha).starts_with("upload id must be"));
  CHECK(reason("dev-1", 10, "abc") == "declared SHA-256 must be 64 lower-case hex digits");
  CHECK(reason("dev-1", 0, sha) == "declared size is 0: an empty file is not an image");
  CHECK(reason("dev-1", 8 * 1024 * 1024 + 1, sha) ==
        "image of 8 388 609 bytes exceeds the 8 388 608-byte cap");
  CHECK(reason("dev-1", 8 * 1024 * 1024, sha) == "(opened)");
  CHECK(fs::exists(store.partial_dir()));
  CHECK_FALSE(fs::exists(dir.path.parent_path() / "escape"));
}

TEST_CASE("upload refuses a renamed text file at completion and forgets it") {
  TempDir dir;
  const BlobStore store(dir.path);
  const std::string text = "Dear coordinator, the photo is attached.\n";
  Upload upload = open_upload(store, "dev-1", text);
  send(upload, text, 0, text.size());
  auto result = upload.complete();
  REQUIRE(std::holds_alternative<UploadError>(result));
  CHECK(std::get<UploadError>(result).reason == "not a JPEG, PNG or WebP image");
  CHECK_FALSE(std::get<UploadError>(result).can_resume);
  CHECK(fs::is_empty(store.partial_dir()));
  CHECK_FALSE(upload.accept(text.size(), "more").accepted);
}

TEST_CASE("the same image uploaded twice is stored once") {
  TempDir dir;
  const BlobStore store(dir.path);
  const std::string original = make_png(200, 120);
  std::vector<std::string> stored;
  for (const std::string_view sender : {"shop-chatham-01", "cctv-chatham-02"}) {
    Upload upload = open_upload(store, Upload::id_for(sender, sha256_hex(original)), original);
    send(upload, original, 0, original.size(), 8192);
    auto result = upload.complete();
    REQUIRE(std::holds_alternative<CheckedImage>(result));
    stored.push_back(store.put(std::get<CheckedImage>(result)));
  }
  CHECK(stored[0] == stored[1]);
  CHECK(store.list() == std::vector<std::string>{stored[0]});
  CHECK(files_under(dir.path) == 1);
}

TEST_CASE("stale partial uploads are removed, unless an upload has them open") {
  TempDir dir;
  const BlobStore store(dir.path);
  const std::string original = make_png(20, 20);
  {
    Upload abandoned = open_upload(store, "abandoned", original);
    send(abandoned, original, 0, 100);
  }
  Upload in_use = open_upload(store, "in-use", original);
  send(in_use, original, 0, 100);
  {
    Upload recent = open_upload(store, "recent", original);
    send(recent, original, 0, 100);
  }
  const auto now = fs::file_time_type::clock::now();
  const auto old = now - std::chrono::hours(48);
  fs::last_write_time(store.partial_dir() / "abandoned", old);
  fs::last_write_time(store.partial_dir() / "in-use", old);

  CHECK(store.remove_stale_partials(now - std::chrono::hours(24)) == 1);
  CHECK_FALSE(fs::exists(store.partial_dir() / "abandoned"));
  CHECK_FALSE(fs::exists(store.partial_dir() / "abandoned.meta"));
  CHECK(fs::exists(store.partial_dir() / "in-use"));
  CHECK(fs::exists(store.partial_dir() / "recent"));
  send(in_use, original, 100, original.size());
  CHECK(std::holds_alternative<CheckedImage>(in_use.complete()));
}

TEST_CASE("upload ids are private to a sender and an image") {
  const std::string sha = sha256_hex("photo");
  const std::string id = Upload::id_for("shop-chatham-01", sha);
  CHECK(id == Upload::id_for("shop-chatham-01", sha));
  CHECK(id != Upload::id_for("shop-strood-01", sha));
  CHECK(id != Upload::id_for("shop-chatham-01", sha256_hex("other photo")));
  CHECK(saferlink::is_sha256_hex(id));
}
