// Image uploads from devices to the hub (shared/SPEC.md sections 3 and 4): the per-connection
// state machine that turns UploadBegin and UploadChunk messages into checked, content-addressed
// images, and the two SQL steps behind it.
//
// Design note. Each upload of a connection is keyed by the SHA-256 its sender declared, and is
// in one of these states (SessionUploads::Entry::State):
//
//   (none) --UploadBegin, fields valid--> looking_up        store thread: find_image()
//   looking_up --held already--> (none)                      answer done at once
//   looking_up --not held--> open                            Upload::open() (resumes a partial);
//                                                            answer next_offset
//   open --UploadChunk at next_offset--> open                no answer (the sender streams)
//   open --UploadChunk at another offset--> open             answer error "expected offset N"
//   open --UploadChunk refused (> 16 KiB, empty, past the declared size)--> (none)
//                                                            partial deleted; answer error
//   open --last byte in--> completing                        blob pool: Upload::complete()
//                                                            (SHA-256, content check, metadata
//                                                            strip), BlobStore::put() (fsync)
//   completing --refused (SHA-256 mismatch, not an image)--> (none)   answer error
//   completing --file stored--> recording                    store thread: record_image(), the
//                                                            `blobs` row and the mapping in one
//                                                            job
//   recording --committed--> (none)                          answer done (ack after commit)
//   any --connection ends (close())--> open uploads closed; their partials stay on disk, so
//                                                            the same sender's next UploadBegin
//                                                            resumes where this one stopped
//
// An UploadBegin for an upload already looking_up or completing is not answered (its answer is
// on the way); for an open one it is answered with next_offset. At most kMaxUploads uploads
// of one connection are looking_up, open or completing at a time. Every refusal is an
// UploadStatus with `error` set and a log line; none closes the connection.
//
// Threads: a SessionUploads belongs to one session's strand. begin(), chunk() and close() must
// be called there, and completions come back there (posted). Upload::complete() and the file
// write run on the hub's blob pool (one thread), never on a network thread; SQL runs on the
// store thread. `send` must be callable from any thread (Connection::send is).
#pragma once

#include "core/identity.hpp"
#include "proto/saferlink.pb.h"
#include "server/blob_store.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace SQLite {
class Database;
}

namespace saferlink::server {

class Store;

namespace uploads {

// An image the hub holds, as devices should name it.
struct HeldImage {
  std::string stored_sha256;
  std::string mime;
};

// The image held for `declared_sha256`: the one an earlier upload of those bytes was stored
// as (image_uploads), or a stored image that has that very SHA-256 (`blobs`). Its `blobs` row's
// stored_at_ms is raised to `now_ms`, so the purge's grace for unreferenced images (which lets a
// still uploaded just before its form survive) counts from this answer. nullopt: not held.
std::optional<HeldImage> find_image(SQLite::Database& db, const std::string& declared_sha256,
                                    std::int64_t now_ms);

// Records a stored image: its `blobs` row (inserted; if the image was already held, its
// stored_at_ms raised to `now_ms`) and the mapping from `declared_sha256` (the first sender is
// kept when the mapping exists), and an audit row (action "upload", object "photo"). Run as
// one store job, so they commit together.
void record_image(SQLite::Database& db, const std::string& declared_sha256,
                  const std::string& stored_sha256, const std::string& mime, std::uint64_t size,
                  const Identity& sender, std::int64_t now_ms);

}  // namespace uploads

// What the hub lends each connection's uploads. All of it outlives every SessionUploads.
struct UploadServices {
  Store& store;
  const BlobStore& blobs;
  boost::asio::any_io_executor blob_executor;  // the hub's blob pool: one thread
  std::size_t image_cap_bytes;
  std::function<void()> count_refusal;  // any thread; may be empty
};

class SessionUploads : public std::enable_shared_from_this<SessionUploads> {
 public:
  static constexpr std::size_t kMaxUploads = 4;
  using Send = std::function<void(v1::Envelope&)>;  // thread-safe

  // `strand` is the session's strand; `log_name` prefixes log lines ("session 12").
  SessionUploads(UploadServices services, Identity sender, std::string log_name,
                 boost::asio::any_io_executor strand, Send send);
  ~SessionUploads();
  SessionUploads(const SessionUploads&) = delete;
  SessionUploads& operator=(const SessionUploads&) = delete;

  // The session's messages (strand). Callers have checked the sender's role (may_send).
  void begin(const v1::UploadBegin& begin);
  void chunk(const v1::UploadChunk& chunk);

  // The connection ended (strand): open uploads are closed, their partials kept; answers still
  // on the way are sent to the closed connection, where they are dropped.
  void close();

  // Uploads looking_up, open or completing (strand; for tests and logs).
  std::size_t active() const { return uploads_.size(); }

 private:
  struct Entry {
    enum class State { looking_up, open, completing };
    State state = State::looking_up;
    std::uint64_t declared_size = 0;
    std::optional<Upload> upload;  // while open
  };
  using Entries = std::map<std::string, Entry>;

  void looked_up(const std::string& sha256, std::optional<uploads::HeldImage> held,
                 std::exception_ptr error);                        // strand
  void start_completion(Entries::iterator entry);                  // strand
  void complete(const std::string& sha256, std::shared_ptr<Upload> upload);  // blob pool
  void finish(const std::string& sha256, v1::UploadStatus status);  // any thread
  void answer(v1::UploadStatus status);                             // any thread
  void refuse(const std::string& sha256, std::uint64_t next_offset, const std::string& why,
              bool busy = false);

  const UploadServices services_;
  const Identity sender_;
  const std::string log_name_;
  const boost::asio::any_io_executor strand_;
  const Send send_;
  Entries uploads_;     // [strand] by declared SHA-256
  bool closed_ = false;  // [strand]
};

}  // namespace saferlink::server
