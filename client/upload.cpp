#include "client/upload.hpp"

#include "core/image.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace saferlink::client {

namespace asio = boost::asio;
using asio::awaitable;
using std::chrono::milliseconds;

namespace {

// Chunks queued on the client before the sender waits for the connection to write them. Small:
// the file is never queued whole, and the outgoing queue's bounds are never approached.
constexpr std::size_t kQueuedChunks = 8;

// Room for the envelope around a chunk's data (msg_id, time, sha256, offset, tags).
constexpr std::size_t kChunkOverhead = 256;

// This upload's status, or nullopt for anything else (dropped).
std::optional<v1::UploadStatus> status_for(const std::string& sha256,
                                           const std::optional<v1::Envelope>& e) {
  if (!e || !e->has_upload_status() || e->upload_status().sha256() != sha256) return std::nullopt;
  return e->upload_status();
}

void throw_if_refused(const v1::UploadStatus& status) {
  if (status.error().empty()) return;
  // Busy: the hub has not yet seen our previous connection end; a retry shortly resumes.
  if (status.busy()) throw ClientError("the hub is busy with this image: " + status.error());
  throw UploadRefused("the hub refused the image: " + status.error());
}

awaitable<v1::UploadStatus> wait_status(Client& client, const std::string& sha256,
                                        milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(until - std::chrono::steady_clock::now());
    if (left <= milliseconds(0)) throw ClientError("the hub did not answer the upload in time");
    const std::optional<v1::Envelope> e = co_await client.next(left);
    if (auto status = status_for(sha256, e)) co_return *status;
  }
}

}  // namespace

awaitable<v1::UploadStatus> upload_image(Client& client, std::string bytes,
                                         milliseconds timeout) {
  const std::string sha256 = sha256_hex(bytes);
  v1::Envelope begin;
  begin.mutable_upload_begin()->set_sha256(sha256);
  begin.mutable_upload_begin()->set_size(bytes.size());
  client.send(std::move(begin));

  v1::UploadStatus status = co_await wait_status(client, sha256, timeout);
  throw_if_refused(status);
  if (status.done()) co_return status;  // the hub holds this image already
  if (status.next_offset() > bytes.size()) {
    throw ClientError("the hub asked for offset " + std::to_string(status.next_offset()) +
                      " of a " + std::to_string(bytes.size()) + "-byte image");
  }

  // A hub configured with frames smaller than a full chunk gets smaller chunks.
  std::size_t chunk_bytes = kUploadChunkBytes;
  if (const std::uint32_t cap = client.hub_max_frame_bytes(); cap > 0) {
    chunk_bytes = std::min(chunk_bytes, cap > 2 * kChunkOverhead ? cap - kChunkOverhead
                                                                  : std::size_t{kChunkOverhead});
  }
  const auto executor = co_await asio::this_coro::executor;
  for (std::size_t offset = status.next_offset(); offset < bytes.size();) {
    const std::size_t n = std::min(chunk_bytes, bytes.size() - offset);
    v1::Envelope envelope;
    auto* chunk = envelope.mutable_upload_chunk();
    chunk->set_sha256(sha256);
    chunk->set_offset(offset);
    chunk->set_data(bytes.data() + offset, n);
    client.send(std::move(envelope));  // bulk priority (priority_of)
    offset += n;
    // Let the connection take the chunk, then wait while it has enough to write. A refusal
    // that arrives meanwhile ends the upload; intermediate chunks are not answered.
    co_await asio::post(executor, asio::use_awaitable);
    while (client.queued_messages() >= kQueuedChunks) {
      const std::optional<v1::Envelope> e = co_await client.next(milliseconds(2));
      if (auto early = status_for(sha256, e)) throw_if_refused(*early);
    }
  }

  for (;;) {
    status = co_await wait_status(client, sha256, timeout);
    throw_if_refused(status);
    if (status.done()) co_return status;
  }
}

}  // namespace saferlink::client
