// Client: one device's link to the hub — TLS 1.3 with the device's certificate, hello and
// welcome, then envelopes both ways. Used by the `saferlink` CLI (and the simulator).
//
// Thread contract: a Client lives on one io_context; call its coroutines from that context
// (single-threaded io_context, or the client's own strand). Incoming envelopes are queued and
// taken with next(); a received panic alert is answered `delivered` automatically, as a
// handset does.
#pragma once

#include "core/envelope.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace saferlink::client {

// A one-line reason for a person: unreachable hub, refused certificate, lost connection.
struct ClientError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A ClientError that retrying cannot cure.
struct ClientFinalError : ClientError {
  using ClientError::ClientError;
};

// Missing or unreadable certificate, key or input file.
struct ClientSetupError : ClientFinalError {
  using ClientFinalError::ClientFinalError;
};

// Where a device stands in the hub's store-and-forward stream: the highest sequence number it
// processed in each lane (alerts overtake sightings, so order holds per lane).
struct Cursors {
  std::uint64_t alert = 0;  // PanicAlert, CancelAlert
  std::uint64_t other = 0;  // Sighting
  bool operator==(const Cursors&) const = default;
};

// Duplicate detection by sequence number (Envelope.seq): a sequenced message at or below the
// highest one accepted so far in its lane is a duplicate (a replay of one already received).
// Messages without a sequence number (0) are never duplicates.
class SequenceFilter {
 public:
  explicit SequenceFilter(Cursors start = {}) : cursors_(start) {}
  // True when the message is new (and then its lane's cursor moves to it).
  bool accept(const v1::Envelope& envelope) {
    if (envelope.seq() == 0) return true;
    const bool alert_lane = envelope.has_panic() || envelope.has_cancel();
    std::uint64_t& cursor = alert_lane ? cursors_.alert : cursors_.other;
    if (envelope.seq() <= cursor) {
      ++duplicates_;
      return false;
    }
    cursor = envelope.seq();
    return true;
  }
  const Cursors& cursors() const { return cursors_; }
  std::uint64_t duplicates() const { return duplicates_; }

 private:
  Cursors cursors_;
  std::uint64_t duplicates_ = 0;
};

struct ClientOptions {
  std::string hub = "127.0.0.1:7443";  // HOST:PORT
  std::filesystem::path certs;         // DIR with ca.crt and issued/ID.{crt,key}
  std::string id;                      // whose certificate to use
  std::chrono::milliseconds connect_timeout{10'000};
  bool auto_delivered = true;          // answer relayed panics with `delivered`
  // Store-and-forward: ask the hub to replay what this device missed since `resume_cursor`
  // (the highest Envelope.seq it processed in each lane), as a handset does.
  bool resume = false;
  Cursors resume_cursor;
  // Gallery sync: ask for the gallery's changes since `gallery_version` (client/gallery.hpp).
  bool gallery = false;
  std::uint64_t gallery_version = 0;
};

class Client {
 public:
  Client(boost::asio::any_io_executor executor, ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects, handshakes, says hello and waits for the welcome. Throws ClientError.
  boost::asio::awaitable<v1::Welcome> connect();

  // Sends an envelope (msg_id and time are stamped if unset); returns its msg_id.
  std::uint64_t send(v1::Envelope envelope);

  // The next envelope from the hub (heartbeats are swallowed), or nullopt when `timeout`
  // passes first. Throws ClientError when the connection is lost.
  boost::asio::awaitable<std::optional<v1::Envelope>> next(std::chrono::milliseconds timeout);

  // Closes the connection (what is queued is sent first).
  void close();
  // Cuts the connection now, as a lost link would (nothing more is sent).
  void abort();

  // Frames queued to the hub and not yet written (0 before connect). A sender of bulk data
  // (client/upload.hpp) keeps this small instead of queueing a whole file.
  std::size_t queued_messages() const;

  // The largest frame the hub accepts, as its welcome said (0 before connect).
  std::uint32_t hub_max_frame_bytes() const;

  // The highest Envelope.seq received so far per lane (starts at options.resume_cursor). A
  // sequenced message at or below it is a duplicate (a replay of one already received): it is
  // dropped before next() sees it, and a duplicate panic is answered `delivered` again.
  Cursors cursor() const;
  std::uint64_t duplicates() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Human-readable one-line description of an event (for `saferlink listen` and `panic`).
std::string describe(const v1::Envelope& envelope);

// One JSON object (no newline) describing an event: type, alert_id, from_id, from_role, town,
// status, sent_at_ms, received_at_ms and the type's own fields.
std::string event_json(const v1::Envelope& envelope, std::int64_t received_at_ms);

}  // namespace saferlink::client
