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
class PanicAlert;
class CancelAlert;
class RecipientStatus;
class Sighting;
}  // namespace v1
struct Identity;
}  // namespace saferlink

namespace saferlink::server {

class Hub;

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
