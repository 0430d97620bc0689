// Session: one device's connection to the hub, from TLS handshake to close.
//
// run_session is co_spawned on a fresh strand per accepted socket. It performs the TLS
// handshake within the handshake deadline, reads the identity from the verified certificate,
// then runs a Connection (core/connection.hpp) whose message handler — on that strand —
// checks each message (hello first, authorisation by role, field validation) and hands the
// accepted ones to the Hub, or image uploads to the session's SessionUploads
// (server/uploads.hpp). Exactly one catch per session, which logs with the session id.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace saferlink {
namespace v1 {
class Envelope;
class PanicAlert;
class CancelAlert;
class RecipientStatus;
class Sighting;
}  // namespace v1
struct Identity;
class Link;
}  // namespace saferlink

namespace saferlink::server {

class Hub;

// What a device's messages go through once its link is up, whatever carries them (a handset's
// Connection, the console's WebSocket): hello first, authorisation by role, field validation,
// then the Hub or the session's uploads. Call it on the link's strand only; when the link has
// ended, destroy it there, then call Hub::detach if attached() (a hello was accepted).
class DeviceSession {
 public:
  DeviceSession(Hub& hub, std::uint64_t session_id, const Identity& identity,
                std::shared_ptr<Link> link);
  ~DeviceSession();
  DeviceSession(const DeviceSession&) = delete;
  DeviceSession& operator=(const DeviceSession&) = delete;
  void operator()(v1::Envelope&& envelope);
  bool attached() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

boost::asio::awaitable<void> run_session(Hub& hub, std::shared_ptr<boost::asio::ssl::context> tls,
                                         boost::asio::ip::tcp::socket socket,
                                         std::uint64_t session_id);

// Field checks of device messages: nullopt when fine, else "field: what is wrong".
// Pure; exposed for tests.
std::optional<std::string> check_panic(const Identity& sender, const v1::PanicAlert& panic);
std::optional<std::string> check_cancel(const v1::CancelAlert& cancel);
std::optional<std::string> check_status(const v1::RecipientStatus& status);
// A sighting from `sender`, for a hub serving `towns`: id "<sender id>:<device_seq>", text
// 1..500 bytes, location ≤ 200, heading ≤ 100, profile_id ≥ 0, photo a SHA-256 or empty, town
// required from a sender with town "all" (one of `towns`) and otherwise empty or the sender's.
std::optional<std::string> check_sighting(const Identity& sender, const v1::Sighting& sighting,
                                          const std::vector<std::string>& towns);

}  // namespace saferlink::server
