// Uploading an image (a CCTV still, an offender photo) from a device to the hub, as
// docs/protocol.md ("Image uploads") describes: UploadBegin, then chunks of at most 16 KiB from
// the offset the hub names (so an interrupted upload resumes where it stopped, even on a new
// connection), then the hub's final UploadStatus, which comes only once the image is checked
// and its record committed.
//
// Thread contract: as Client's. While it runs, envelopes other than this upload's status that
// arrive on the client are taken and dropped: call it before listening for anything else.
#pragma once

#include "client/client.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <string>

namespace saferlink::client {

// The hub refused the image (not an image, too large, SHA-256 mismatch, ...): sending it again
// will not help. what() carries the hub's reason.
struct UploadRefused : ClientFinalError {
  using ClientFinalError::ClientFinalError;
};

// Largest piece of an image in one UploadChunk (shared/SPEC.md section 4).
inline constexpr std::size_t kUploadChunkBytes = 16 * 1024;

// Uploads `bytes` over a connected client and returns the hub's final UploadStatus (done; its
// stored_sha256 is the name to cite in a form). Throws UploadRefused on a refusal, and
// ClientError when the connection is lost, the hub does not answer within `timeout` (per
// answer awaited) or the hub still has this upload open on an earlier connection (busy): those
// are worth a retry on a new connection, which resumes from what the hub holds.
boost::asio::awaitable<v1::UploadStatus> upload_image(
    Client& client, std::string bytes,
    std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace saferlink::client
