// Image files on disk: a content-addressed store of checked images, and the assembler of
// resumable chunked uploads that feeds it.
//
// BlobStore keeps each image once, named by the SHA-256 of its (already cleaned) bytes:
//   ROOT/ab/abcdef...            64 hex digits, mode 0600, directories 0700
// A file is written under a temporary name in its directory, fsynced, renamed into place and
// the directory fsynced, so a name only ever refers to complete bytes; files are never modified
// after that. No SQL here: the caller records the `blobs` row (server/migrations.cpp) after
// put() returns, and deletes the row before remove(). Every method may be called from any
// thread. I/O failures (disk full, permissions) throw std::system_error; a malformed SHA-256
// from the network is an ordinary "not held" answer.
//
// Upload assembles one image sent in chunks of at most 16 KiB (SPEC section 4):
//
//   open(id, size, sha) --> receiving --accept(offset == received(), chunk)--> receiving
//        |  (an earlier partial with the same id, size and SHA-256 is resumed at its length)
//        v
//   receiving --complete()--> done: SHA-256 of the received bytes equals the declared one and
//                             check_image() passed; the partial is deleted; CheckedImage out
//   receiving --complete() before all bytes--> receiving (error, can_resume)
//   receiving --complete() with a bad SHA-256 or a refused image--> closed, partial deleted
//   receiving --discard()--> closed, partial deleted
//   destroyed while receiving --> the partial stays on disk for a later open() on the same id
//
// The partial bytes live in ROOT/partial/<id> (with <id>.meta naming the declared size and
// SHA-256). They are not fsynced: a partial damaged by a power cut is caught by the SHA-256 check
// at complete() and the sender starts again. While an Upload is open it holds an exclusive lock
// on its partial, so a second open() of the same id (a reconnect racing the old session's
// teardown) is refused until the first is closed. One Upload is used by one thread at a time.
#pragma once

#include "core/image.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace saferlink::server {

class BlobStore {
 public:
  // Creates ROOT and ROOT/partial (mode 0700) when missing; throws std::system_error when it
  // cannot (bad configuration: fail at start-up).
  explicit BlobStore(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path partial_dir() const { return root_ / "partial"; }

  // Where the image with this SHA-256 lives (whether or not it is held). Throws
  // std::invalid_argument unless `sha256` is 64 lower-case hex digits: check untrusted ids
  // with is_sha256_hex() first.
  std::filesystem::path path_of(std::string_view sha256) const;

  // False for a malformed SHA-256.
  bool has(std::string_view sha256) const;

  // The stored bytes; nullopt when not held (or the SHA-256 is malformed). Throws
  // std::runtime_error when the file no longer hashes to its name (damaged on disk).
  std::optional<std::string> read(std::string_view sha256) const;

  // Stores the checked (cleaned) image unless an identical one is already held, and returns the
  // SHA-256 of image.bytes: the name to record in `blobs` and to send to devices.
  std::string put(const CheckedImage& image) const;

  // Deletes the image; false when it was not held.
  bool remove(std::string_view sha256) const;

  // Every SHA-256 held, sorted (for a purge that looks for files without a `blobs` row).
  std::vector<std::string> list() const;

  // Deletes partial uploads last written before `cutoff` that no Upload has open; returns how
  // many it deleted.
  std::size_t remove_stale_partials(std::filesystem::file_time_type cutoff) const;

 private:
  std::filesystem::path root_;
};

struct UploadError {
  std::string reason;       // one line for a person: "SHA-256 mismatch: ..."
  bool can_resume = false;  // the partial is kept: send the rest from received()
};

// The answer to one chunk.
struct ChunkVerdict {
  bool accepted = false;
  std::uint64_t next_offset = 0;  // where the next chunk must start (== received())
  std::string reason;             // why the chunk was refused; empty when accepted
};

class Upload {
 public:
  static constexpr std::size_t kMaxChunkBytes = 16 * 1024;

  // Opens upload `id` of `declared_size` bytes whose SHA-256 is `declared_sha256` (of the bytes
  // as sent, before any cleaning), resuming a partial left by an earlier Upload with the same
  // id, size and SHA-256 (otherwise starting from zero). Refuses a malformed id or SHA-256, a
  // size of 0 or above `cap`, and an id another Upload holds open. Ids are 1..128 characters of
  // [A-Za-z0-9_-]; id_for() makes one. I/O failures throw std::system_error.
  static std::variant<Upload, UploadError> open(const BlobStore& store, std::string_view id,
                                                std::uint64_t declared_size,
                                                std::string_view declared_sha256,
                                                std::size_t cap = kImageCapBytes);

  // An upload id private to one sender and one image: senders cannot touch each other's
  // partials, and the same sender resumes the same image under the same id.
  static std::string id_for(std::string_view sender_id, std::string_view declared_sha256);

  Upload(Upload&& other) noexcept;
  Upload& operator=(Upload&& other) noexcept;
  Upload(const Upload&) = delete;
  Upload& operator=(const Upload&) = delete;
  ~Upload();  // closes (the partial stays, unless completed or discarded)

  // Appends `chunk` if it starts at received(), is 1..kMaxChunkBytes long and does not run past
  // the declared size; otherwise refuses it and names the offset expected next.
  ChunkVerdict accept(std::uint64_t offset, std::string_view chunk);

  // Once every byte is in: checks the SHA-256, then the image (check_image with the cap), and
  // returns the cleaned image. See the state diagram above for what each failure leaves behind.
  std::variant<CheckedImage, UploadError> complete();

  // Deletes the partial and closes the upload.
  void discard();

  const std::string& id() const { return id_; }
  std::uint64_t declared_size() const { return declared_size_; }
  const std::string& declared_sha256() const { return declared_sha256_; }
  std::uint64_t received() const { return received_; }
  bool is_open() const { return fd_ >= 0; }

 private:
  Upload() = default;
  void close_and_delete();

  std::filesystem::path data_path_;
  std::filesystem::path meta_path_;
  std::string id_;
  std::string declared_sha256_;
  std::uint64_t declared_size_ = 0;
  std::uint64_t received_ = 0;
  std::size_t cap_ = kImageCapBytes;
  int fd_ = -1;  // the partial, locked (flock) while open; -1 once closed
};

}  // namespace saferlink::server
