#include "server/uploads.hpp"

#include "server/audit.hpp"

#include "core/envelope.hpp"
#include "core/image.hpp"
#include "server/store.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <utility>
#include <variant>

namespace saferlink::server {

namespace asio = boost::asio;

// ---- SQL --------------------------------------------------------------------------------------

namespace uploads {

namespace {

void refresh_stored_at(SQLite::Database& db, const std::string& sha256, std::int64_t now_ms) {
  SQLite::Statement update(db,
                           "UPDATE blobs SET stored_at_ms = max(stored_at_ms, ?2) "
                           "WHERE sha256 = ?1");
  update.bind(1, sha256);
  update.bind(2, now_ms);
  update.exec();
}

}  // namespace

std::optional<HeldImage> find_image(SQLite::Database& db, const std::string& declared_sha256,
                                    std::int64_t now_ms) {
  std::optional<HeldImage> held;
  {
    SQLite::Statement mapped(db,
                             "SELECT u.stored_sha256, b.mime FROM image_uploads u "
                             "JOIN blobs b ON b.sha256 = u.stored_sha256 "
                             "WHERE u.declared_sha256 = ?");
    mapped.bind(1, declared_sha256);
    if (mapped.executeStep()) {
      held = HeldImage{mapped.getColumn(0).getString(), mapped.getColumn(1).getString()};
    }
  }
  if (!held) {
    // Sent already clean (the stored bytes themselves), or stored by another path.
    SQLite::Statement stored(db, "SELECT sha256, mime FROM blobs WHERE sha256 = ?");
    stored.bind(1, declared_sha256);
    if (stored.executeStep()) {
      held = HeldImage{stored.getColumn(0).getString(), stored.getColumn(1).getString()};
    }
  }
  if (held) refresh_stored_at(db, held->stored_sha256, now_ms);
  return held;
}

void record_image(SQLite::Database& db, const std::string& declared_sha256,
                  const std::string& stored_sha256, const std::string& mime, std::uint64_t size,
                  const Identity& sender, std::int64_t now_ms) {
  SQLite::Statement blob(db,
                         "INSERT INTO blobs (sha256, mime, size, stored_at_ms) "
                         "VALUES (?1, ?2, ?3, ?4) "
                         "ON CONFLICT (sha256) DO UPDATE "
                         "SET stored_at_ms = max(stored_at_ms, excluded.stored_at_ms)");
  blob.bind(1, stored_sha256);
  blob.bind(2, mime);
  blob.bind(3, static_cast<std::int64_t>(size));
  blob.bind(4, now_ms);
  blob.exec();

  // The same bytes always clean to the same image; should a newer hub clean differently, the
  // mapping follows the image stored last.
  SQLite::Statement mapping(db,
                            "INSERT INTO image_uploads "
                            "(declared_sha256, stored_sha256, first_sender, at_ms) "
                            "VALUES (?1, ?2, ?3, ?4) "
                            "ON CONFLICT (declared_sha256) DO UPDATE "
                            "SET stored_sha256 = excluded.stored_sha256");
  mapping.bind(1, declared_sha256);
  mapping.bind(2, stored_sha256);
  mapping.bind(3, sender.id);
  mapping.bind(4, now_ms);
  mapping.exec();
  audit::append(db, {now_ms, sender.id, std::string(to_string(sender.role)), "upload", "photo",
                     stored_sha256, mime});
}

}  // namespace uploads

// ---- SessionUploads ---------------------------------------------------------------------------

namespace {

std::string reason_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown error";
  }
}

// What a log line or an answer may quote of an untrusted SHA-256 field.
std::string quoted(const std::string& text) { return text.substr(0, 80); }

v1::UploadStatus status_of(const std::string& sha256, std::uint64_t next_offset) {
  v1::UploadStatus status;
  status.set_sha256(quoted(sha256));
  status.set_next_offset(next_offset);
  return status;
}

v1::UploadStatus done_status(const std::string& sha256, std::uint64_t size,
                             const uploads::HeldImage& held) {
  v1::UploadStatus status = status_of(sha256, size);
  status.set_done(true);
  status.set_stored_sha256(held.stored_sha256);
  status.set_mime(held.mime);
  return status;
}

}  // namespace

SessionUploads::SessionUploads(UploadServices services, Identity sender, std::string log_name,
                               asio::any_io_executor strand, Send send)
    : services_(std::move(services)),
      sender_(std::move(sender)),
      log_name_(std::move(log_name)),
      strand_(std::move(strand)),
      send_(std::move(send)) {}

SessionUploads::~SessionUploads() = default;

void SessionUploads::begin(const v1::UploadBegin& begin) {
  const std::string& sha = begin.sha256();
  if (!is_sha256_hex(sha)) {
    return refuse(sha, 0, "sha256: must be 64 lower-case hex digits");
  }
  if (begin.size() == 0) {
    return refuse(sha, 0, "size: 0 bytes; an empty file is not an image");
  }
  if (begin.size() > services_.image_cap_bytes) {
    return refuse(sha, 0,
                  "size: an image of " + std::to_string(begin.size()) + " bytes exceeds the " +
                      std::to_string(services_.image_cap_bytes) + "-byte cap");
  }
  if (auto it = uploads_.find(sha); it != uploads_.end()) {
    // Asked again: an open upload says where it stands; otherwise the answer is on its way.
    if (it->second.state == Entry::State::open) {
      answer(status_of(sha, it->second.upload->received()));
    }
    return;
  }
  if (uploads_.size() >= kMaxUploads) {
    return refuse(sha, 0,
                  "too many uploads at once on this connection (at most " +
                      std::to_string(kMaxUploads) + "); finish one first");
  }
  uploads_.emplace(sha, Entry{Entry::State::looking_up, begin.size(), std::nullopt});

  // Held already? One store job; the answer comes back to this strand.
  auto held = std::make_shared<std::optional<uploads::HeldImage>>();
  const std::int64_t now = now_ms();
  services_.store.submit(
      [sha, now, held](SQLite::Database& db) { *held = uploads::find_image(db, sha, now); },
      [self = shared_from_this(), sha, held](std::exception_ptr error) {
        asio::post(self->strand_, [self, sha, held, error] {
          self->looked_up(sha, std::move(*held), error);
        });
      });
}

void SessionUploads::looked_up(const std::string& sha256, std::optional<uploads::HeldImage> held,
                               std::exception_ptr error) {
  if (closed_) return;
  auto it = uploads_.find(sha256);
  if (it == uploads_.end() || it->second.state != Entry::State::looking_up) return;
  const std::uint64_t size = it->second.declared_size;
  if (error) {
    uploads_.erase(it);
    spdlog::error("{}: upload {} from {}: the store failed: {}", log_name_, sha256, sender_.id,
                  reason_of(error));
    return refuse(sha256, 0, "the hub could not look the image up; send upload_begin again");
  }
  // A row whose file is gone (damaged or half-purged) is not "held": take the bytes again.
  if (held && services_.blobs.has(held->stored_sha256)) {
    uploads_.erase(it);
    spdlog::info("{}: upload {} from {}: held already as {}; nothing to send", log_name_, sha256,
                 sender_.id, held->stored_sha256);
    return answer(done_status(sha256, size, *held));
  }
  try {
    auto opened = Upload::open(services_.blobs, Upload::id_for(sender_.id, sha256), size, sha256,
                               services_.image_cap_bytes);
    if (auto* refused = std::get_if<UploadError>(&opened)) {
      uploads_.erase(it);
      // can_resume here means: open on another connection of this sender.
      return refuse(sha256, 0, refused->reason, refused->can_resume);
    }
    it->second.upload.emplace(std::get<Upload>(std::move(opened)));
  } catch (const std::exception& e) {
    uploads_.erase(it);
    spdlog::error("{}: upload {} from {}: {}", log_name_, sha256, sender_.id, e.what());
    return refuse(sha256, 0, "the hub could not open the upload; send upload_begin again");
  }
  it->second.state = Entry::State::open;
  const std::uint64_t received = it->second.upload->received();
  spdlog::info("{}: upload {} from {}: {} of {} bytes, {}", log_name_, sha256, sender_.id,
               received, size, received > 0 ? "resuming" : "starting");
  answer(status_of(sha256, received));
  // Every byte arrived before a disconnect, but the check never ran: run it now.
  if (received == size) start_completion(it);
}

void SessionUploads::chunk(const v1::UploadChunk& chunk) {
  const std::string& sha = chunk.sha256();
  auto it = uploads_.find(sha);
  if (it == uploads_.end() || it->second.state == Entry::State::looking_up) {
    return refuse(sha, 0, "no upload of this sha256 is open on this connection; send "
                          "upload_begin and wait for its answer");
  }
  if (it->second.state == Entry::State::completing) {
    // Bytes after the last one: the check of what arrived goes on and will answer.
    return refuse(sha, it->second.declared_size,
                  "every byte has arrived already; the upload is being checked");
  }
  Upload& upload = *it->second.upload;
  const std::uint64_t expected = upload.received();
  if (chunk.offset() != expected) {
    // The upload stays open: the sender continues from `expected`.
    return refuse(sha, expected,
                  "chunk at offset " + std::to_string(chunk.offset()) + "; expected offset " +
                      std::to_string(expected));
  }
  ChunkVerdict verdict;
  try {
    verdict = upload.accept(chunk.offset(), chunk.data());
  } catch (const std::exception& e) {
    // The partial is kept consistent with received(): a new upload_begin resumes it.
    spdlog::error("{}: upload {} from {}: {}", log_name_, sha, sender_.id, e.what());
    uploads_.erase(it);
    return refuse(sha, expected, "the hub could not write the chunk; send upload_begin again");
  }
  if (!verdict.accepted) {
    upload.discard();
    uploads_.erase(it);
    return refuse(sha, 0, verdict.reason);
  }
  if (upload.received() == upload.declared_size()) start_completion(it);
}

void SessionUploads::start_completion(Entries::iterator entry) {
  entry->second.state = Entry::State::completing;
  auto upload = std::make_shared<Upload>(std::move(*entry->second.upload));
  entry->second.upload.reset();
  asio::post(services_.blob_executor,
             [self = shared_from_this(), sha = entry->first, upload = std::move(upload)] {
               self->complete(sha, upload);
             });
}

void SessionUploads::complete(const std::string& sha256, std::shared_ptr<Upload> upload) {
  const std::uint64_t size = upload->declared_size();
  const auto fail = [&](const std::string& why) {
    spdlog::warn("{}: upload {} from {} refused: {}", log_name_, sha256, sender_.id, why);
    if (services_.count_refusal) services_.count_refusal();
    v1::UploadStatus status = status_of(sha256, 0);
    status.set_error(why);
    finish(sha256, std::move(status));
  };

  CheckedImage image;
  std::string stored;
  try {
    auto result = upload->complete();  // SHA-256, content check, metadata strip
    upload.reset();                    // closed: the partial is gone or kept, as complete() says
    if (auto* refused = std::get_if<UploadError>(&result)) return fail(refused->reason);
    image = std::get<CheckedImage>(std::move(result));
    stored = services_.blobs.put(image);  // written, fsynced, renamed, directory fsynced
  } catch (const std::exception& e) {
    spdlog::error("{}: upload {} from {}: {}", log_name_, sha256, sender_.id, e.what());
    return fail("the hub could not store the image; send upload_begin again");
  }

  const uploads::HeldImage held{stored, image.mime};
  const std::uint64_t stored_size = image.bytes.size();
  std::string removed;
  for (const auto& what : image.removed) removed += (removed.empty() ? "" : ", ") + what;
  image = CheckedImage{};  // up to image_cap bytes: not kept while the store works
  const std::int64_t now = now_ms();
  services_.store.submit(
      [sha256, held, stored_size, sender = sender_, now](SQLite::Database& db) {
        uploads::record_image(db, sha256, held.stored_sha256, held.mime, stored_size, sender,
                              now);
      },
      [self = shared_from_this(), sha256, size, held, removed](std::exception_ptr error) {
        if (error) {
          spdlog::error("{}: upload {} from {}: could not record the image: {}", self->log_name_,
                        sha256, self->sender_.id, reason_of(error));
          v1::UploadStatus status = status_of(sha256, 0);
          status.set_error("the hub could not record the image; send upload_begin again");
          return self->finish(sha256, std::move(status));
        }
        spdlog::info("{}: upload {} from {} stored as {} ({}; removed: {})", self->log_name_,
                     sha256, self->sender_.id, held.stored_sha256, held.mime,
                     removed.empty() ? "nothing" : removed);
        self->finish(sha256, done_status(sha256, size, held));
      });
}

void SessionUploads::finish(const std::string& sha256, v1::UploadStatus status) {
  // Forget the upload on the strand before answering, so that an UploadBegin sent after the
  // answer never finds it still completing.
  asio::post(strand_, [self = shared_from_this(), sha256, status = std::move(status)]() mutable {
    if (auto it = self->uploads_.find(sha256);
        it != self->uploads_.end() && it->second.state == Entry::State::completing) {
      self->uploads_.erase(it);
    }
    self->answer(std::move(status));
  });
}

void SessionUploads::answer(v1::UploadStatus status) {
  v1::Envelope envelope;
  *envelope.mutable_upload_status() = std::move(status);
  send_(envelope);
}

void SessionUploads::refuse(const std::string& sha256, std::uint64_t next_offset,
                            const std::string& why, bool busy) {
  spdlog::warn("{}: upload {} from {} refused: {}", log_name_, quoted(sha256), sender_.id, why);
  if (services_.count_refusal) services_.count_refusal();
  v1::UploadStatus status = status_of(sha256, next_offset);
  status.set_error(why);
  status.set_busy(busy);
  answer(std::move(status));
}

void SessionUploads::close() {
  closed_ = true;
  uploads_.clear();  // closes open uploads; their partials stay for a resume
}

}  // namespace saferlink::server
