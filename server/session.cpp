#include "server/session.hpp"

#include "core/envelope.hpp"
#include "core/image.hpp"
#include "core/tls.hpp"
#include "core/towns.hpp"
#include "server/hub.hpp"
#include "server/routing.hpp"
#include "server/uploads.hpp"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <charconv>

namespace saferlink::server {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace {

constexpr std::size_t kMaxNote = 500;
constexpr std::size_t kMaxReason = 200;
constexpr std::size_t kMaxAlertId = 100;
constexpr std::size_t kMaxSightingText = 500;
constexpr std::size_t kMaxLocation = 200;
constexpr std::size_t kMaxHeading = 100;

}  // namespace

// Handles one session's messages, on the session's strand.
struct DeviceSession::Impl {
 public:
  Impl(Hub& hub, Hub::SessionRef ref) : hub_(hub), ref_(std::move(ref)) {}
  // On the session strand, once the connection has ended.
  ~Impl() {
    if (uploads_) uploads_->close();
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void operator()(v1::Envelope&& envelope) {
    const auto body = envelope.body_case();
    if (!said_hello_) {
      if (body != v1::Envelope::kHello) {
        refuse(envelope.msg_id(), v1::EXPECTED_HELLO, "the first message must be hello");
        ref_.connection->close("no hello");
        return;
      }
      hello(envelope);
      return;
    }
    if (!may_send(ref_.identity.role, body)) {
      refuse(envelope.msg_id(), v1::NOT_ALLOWED, refusal_reason(ref_.identity.role, body));
      return;
    }
    switch (body) {
      case v1::Envelope::kPanic:
        if (auto bad = check_panic(ref_.identity, envelope.panic())) {
          refuse(envelope.msg_id(), v1::INVALID, *bad);
          return;
        }
        hub_.on_panic(ref_, envelope.msg_id(), envelope.panic());
        return;
      case v1::Envelope::kCancel:
        if (auto bad = check_cancel(envelope.cancel())) {
          refuse(envelope.msg_id(), v1::INVALID, *bad);
          return;
        }
        hub_.on_cancel(ref_, envelope.msg_id(), envelope.cancel());
        return;
      case v1::Envelope::kStatus:
        if (auto bad = check_status(envelope.status())) {
          refuse(envelope.msg_id(), v1::INVALID, *bad);
          return;
        }
        if (!may_report(ref_.identity.role, envelope.status().status())) {
          refuse(envelope.msg_id(), v1::NOT_ALLOWED,
                 refusal_reason(ref_.identity.role, envelope.status().status()));
          return;
        }
        hub_.on_status(ref_, envelope.msg_id(), envelope.status());
        return;
      case v1::Envelope::kSighting:
        if (auto bad = check_sighting(ref_.identity, envelope.sighting(), hub_.towns())) {
          refuse(envelope.msg_id(), v1::INVALID, *bad);
          return;
        }
        hub_.on_sighting(ref_, envelope.msg_id(), envelope.sighting());
        return;
      case v1::Envelope::kForm:
        hub_.on_form(ref_, envelope.msg_id(), envelope.form());
        return;
      case v1::Envelope::kQuery:
        if (envelope.query().op().empty() || envelope.query().op().size() > 64) {
          refuse(envelope.msg_id(), v1::INVALID, "op: required, at most 64 bytes");
          return;
        }
        hub_.on_query(ref_, envelope.msg_id(), envelope.query());
        return;
      case v1::Envelope::kUploadBegin:
        uploads().begin(envelope.upload_begin());
        return;
      case v1::Envelope::kUploadChunk:
        uploads().chunk(envelope.upload_chunk());
        return;
      case v1::Envelope::kGalleryRemoved:
        if (envelope.gallery_removed().notice_id() <= 0) {
          refuse(envelope.msg_id(), v1::INVALID, "notice_id: required (a positive notice id)");
          return;
        }
        hub_.on_gallery_removed(ref_, envelope.msg_id(), envelope.gallery_removed().notice_id());
        return;
      case v1::Envelope::kPhotoRequest:
        if (!is_sha256_hex(envelope.photo_request().sha256())) {
          refuse(envelope.msg_id(), v1::INVALID, "sha256: must be 64 lower-case hex digits");
          return;
        }
        hub_.on_photo_request(ref_, envelope.msg_id(), envelope.photo_request());
        return;
      case v1::Envelope::kHeartbeat:
        hub_.on_heartbeat(ref_.id, envelope.heartbeat().battery_percent());
        return;
      case v1::Envelope::kError:
        spdlog::info("session {}: {} reports error {}: {}", ref_.id, ref_.identity.id,
                     static_cast<int>(envelope.error().code()), envelope.error().message());
        return;
      case v1::Envelope::kHello:
        refuse(envelope.msg_id(), v1::INVALID, "hello was already received");
        return;
      default:
        refuse(envelope.msg_id(), v1::NOT_ALLOWED, refusal_reason(ref_.identity.role, body));
        return;
    }
  }

  bool attached() const { return said_hello_; }

 private:
  void hello(const v1::Envelope& envelope) {
    const auto& hello = envelope.hello();
    if (hello.protocol_version() != kProtocolVersion) {
      refuse(envelope.msg_id(), v1::UNSUPPORTED_VERSION,
             "protocol version " + std::to_string(hello.protocol_version()) +
                 " is not supported; this hub speaks " + std::to_string(kProtocolVersion));
      ref_.connection->close("unsupported protocol version");
      return;
    }
    said_hello_ = true;
    v1::Envelope reply;
    auto* welcome = reply.mutable_welcome();
    welcome->set_protocol_version(kProtocolVersion);
    for (const char* capability :
         {"alerts", "forms", "queries", "uploads", "sightings", "resume", "gallery", "photos",
          "board"}) {
      welcome->add_capabilities(capability);
    }
    welcome->set_device_id(ref_.identity.id);
    welcome->set_role(std::string(to_string(ref_.identity.role)));
    welcome->set_town(ref_.identity.town);
    welcome->set_member(ref_.identity.member);
    const auto& config = hub_.config();
    welcome->set_heartbeat_interval_ms(static_cast<std::uint32_t>(config.heartbeat_interval.count()));
    welcome->set_max_frame_bytes(config.max_frame_bytes);
    welcome->set_server_time_ms(now_ms());
    ref_.connection->send(reply);
    Hub::HelloInfo info;
    for (const auto& capability : hello.capabilities()) {
      if (capability == "resume") info.resume = true;
      if (capability == "gallery") info.gallery = true;
      if (capability == "board") info.board = true;
    }
    // What it runs, for the console's list of handsets: at most 100 bytes, cut at a UTF-8
    // character boundary (protobuf checked the string is UTF-8).
    std::size_t keep = std::min<std::size_t>(hello.software().size(), 100);
    while (keep > 0 && keep < hello.software().size() &&
           (static_cast<unsigned char>(hello.software()[keep]) & 0xC0) == 0x80) {
      --keep;
    }
    info.software = hello.software().substr(0, keep);
    info.cursor = {hello.resume_cursor(), hello.resume_cursor_other()};
    info.gallery_version = hello.gallery_version();
    hub_.attach(ref_, info);
  }

  void refuse(std::uint64_t msg_id, v1::ErrorCode code, const std::string& why) {
    spdlog::warn("session {}: refused from {} ({}): {}", ref_.id, ref_.identity.id,
                 to_string(ref_.identity.role), why);
    hub_.count_refusal();
    v1::Envelope error = make_error(msg_id, code, why);
    ref_.connection->send(error);
  }

  Hub& hub_;
  Hub::SessionRef ref_;
  // This connection's uploads, made on the first one (most handsets never upload).
  SessionUploads& uploads() {
    if (!uploads_) {
      uploads_ = std::make_shared<SessionUploads>(
          hub_.upload_services(), ref_.identity, "session " + std::to_string(ref_.id),
          ref_.connection->executor(),
          [connection = ref_.connection](v1::Envelope& e) { connection->send(e); });
    }
    return *uploads_;
  }
  std::shared_ptr<SessionUploads> uploads_;  // [session strand] this connection's uploads
  bool said_hello_ = false;
};

DeviceSession::DeviceSession(Hub& hub, std::uint64_t session_id, const Identity& identity,
                             std::shared_ptr<Link> link)
    : impl_(std::make_unique<Impl>(hub, Hub::SessionRef{session_id, identity, std::move(link)})) {}
DeviceSession::~DeviceSession() = default;
void DeviceSession::operator()(v1::Envelope&& envelope) { (*impl_)(std::move(envelope)); }
bool DeviceSession::attached() const { return impl_->attached(); }

namespace {

std::optional<std::string> check_alert_id(const std::string& alert_id) {
  if (alert_id.empty()) return "alert_id: required";
  if (alert_id.size() > kMaxAlertId) return "alert_id: longer than 100 bytes";
  return std::nullopt;
}

}  // namespace

std::optional<std::string> check_panic(const Identity& sender, const v1::PanicAlert& panic) {
  if (auto bad = check_alert_id(panic.alert_id())) return bad;
  if (panic.device_seq() == 0) return "device_seq: required (a positive device sequence number)";
  const std::string expected = sender.id + ":" + std::to_string(panic.device_seq());
  if (panic.alert_id() != expected) {
    return "alert_id: must be \"<your device id>:<device_seq>\", here \"" + expected + "\"";
  }
  if (panic.note().size() > kMaxNote) return "note: longer than 500 bytes";
  if (!v1::AlertStatusKind_IsValid(panic.status())) return "status: unknown value";
  if (!v1::Severity_IsValid(panic.severity())) return "severity: unknown value";
  if (panic.pressed_at_ms() < 0) return "pressed_at_ms: negative";
  if (panic.expires_at_ms() < 0) return "expires_at_ms: negative";
  return std::nullopt;
}

std::optional<std::string> check_cancel(const v1::CancelAlert& cancel) {
  if (auto bad = check_alert_id(cancel.alert_id())) return bad;
  if (cancel.reason().size() > kMaxReason) return "reason: longer than 200 bytes";
  return std::nullopt;
}

std::optional<std::string> check_status(const v1::RecipientStatus& status) {
  if (auto bad = check_alert_id(status.alert_id())) return bad;
  if (!v1::RecipientStatusKind_IsValid(status.status()) ||
      status.status() == v1::RECIPIENT_STATUS_UNSPECIFIED) {
    return "status: must be delivered, acknowledged, en_route, on_scene or resolved";
  }
  return std::nullopt;
}

std::optional<std::string> check_sighting(const Identity& sender, const v1::Sighting& sighting,
                                          const std::vector<std::string>& towns) {
  if (sighting.sighting_id().empty()) return "sighting_id: required";
  if (sighting.sighting_id().size() > kMaxAlertId) return "sighting_id: longer than 100 bytes";
  if (sighting.device_seq() == 0) {
    return "device_seq: required (a positive device sequence number)";
  }
  const std::string expected = sender.id + ":" + std::to_string(sighting.device_seq());
  if (sighting.sighting_id() != expected) {
    return "sighting_id: must be \"<your device id>:<device_seq>\", here \"" + expected + "\"";
  }
  if (sighting.text().empty()) return "text: required (what was seen)";
  if (sighting.text().size() > kMaxSightingText) return "text: longer than 500 bytes";
  if (sighting.location().size() > kMaxLocation) return "location: longer than 200 bytes";
  if (sighting.heading().size() > kMaxHeading) return "heading: longer than 100 bytes";
  if (sighting.profile_id() < 0) return "profile_id: negative";
  if (!sighting.photo_sha256().empty() && !is_sha256_hex(sighting.photo_sha256())) {
    return "photo_sha256: must be 64 lower-case hex digits";
  }
  if (sighting.seen_at_ms() < 0) return "seen_at_ms: negative";
  if (sender.all_towns()) {
    if (sighting.town().empty()) {
      return "town: required (your certificate covers all towns: name where it was seen)";
    }
    if (sighting.town().size() > 64) return "town: longer than 64 bytes";
    if (!known_town(towns, sighting.town())) {
      return "town: unknown town '" + sighting.town() + "'";
    }
  } else if (!sighting.town().empty() && sighting.town() != sender.town) {
    return "town: must be your own town (" + sender.town + ") or left out";
  }
  return std::nullopt;
}

awaitable<void> run_session(Hub& hub, std::shared_ptr<asio::ssl::context> tls,
                            asio::ip::tcp::socket socket, std::uint64_t session_id) {
  using namespace asio::experimental::awaitable_operators;
  const auto& config = hub.config();
  std::string peer = "?";
  {
    boost::system::error_code ec;
    auto endpoint = socket.remote_endpoint(ec);
    if (!ec) peer = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  }
  // Frees this connection's handshake slot once the handshake phase is over, however it ends.
  struct HandshakeSlot {
    Hub& hub;
    bool held = true;
    void release() {
      if (held) hub.handshake_done();
      held = false;
    }
    ~HandshakeSlot() { release(); }
  } slot{hub};
  Connection::Stream stream(std::move(socket), *tls);

  // TLS handshake, raced against the handshake deadline.
  asio::steady_timer deadline(stream.get_executor(), config.handshake_timeout);
  auto outcome = co_await (stream.handshake(asio::ssl::stream_base::server) ||
                           deadline.async_wait(asio::as_tuple(use_awaitable)));
  std::string failure;
  if (outcome.index() == 1) {
    failure = "handshake deadline passed";
  } else if (const auto ec = std::get<0>(outcome); ec) {
    failure = handshake_failure(stream.native_handle(), ec.message());
  }
  std::optional<Identity> identity;
  if (failure.empty()) {
    identity = peer_identity(stream.native_handle(), &failure);
  }
  if (!identity) {
    hub.count_handshake_failure();
    spdlog::warn("session {}: TLS from {} refused: {}", session_id, peer, failure);
    boost::system::error_code ignored;
    stream.lowest_layer().close(ignored);
    co_return;
  }
  if (!hub.serves_town(identity->town)) {
    hub.count_handshake_failure();
    spdlog::warn("session {}: {} ({}) belongs to town '{}', which this hub does not serve; "
                 "refused",
                 session_id, identity->id, peer, identity->town);
    boost::system::error_code ignored;
    stream.lowest_layer().close(ignored);
    co_return;
  }
  if (identity->role == Role::hub) {
    hub.count_handshake_failure();
    spdlog::warn("session {}: {} presented a hub certificate as a client; refused", session_id,
                 peer);
    boost::system::error_code ignored;
    stream.lowest_layer().close(ignored);
    co_return;
  }

  slot.release();
  Connection::Options options;
  options.max_frame_bytes = config.max_frame_bytes;
  options.heartbeat_interval = config.heartbeat_interval;
  options.idle_timeout = config.idle_timeout;
  options.write_timeout = config.write_timeout;
  options.first_message_timeout = config.handshake_timeout;
  options.limits = {config.queue_max_bytes, config.queue_max_messages};
  auto connection = std::make_shared<Connection>(std::move(stream), options,
                                                 "session " + std::to_string(session_id));
  spdlog::info("session {}: connected {} from {} (role {}, town {}, member \"{}\")", session_id,
               identity->id, peer, to_string(identity->role), identity->town, identity->member);

  // The handler lives in this coroutine frame; the connection calls it only while run() below
  // is running, so a plain pointer suffices and no ownership cycle forms.
  DeviceSession handler(hub, session_id, *identity, connection);
  std::string ending;
  bool expected = true;
  try {
    // Named, not a temporary in the co_await expression: GCC 12 destroys such temporaries
    // twice (a use-after-free seen under valgrind).
    Connection::Handler on_message = [h = &handler](v1::Envelope&& e) { (*h)(std::move(e)); };
    co_await connection->run(std::move(on_message));
  } catch (const ConnectionEnded& e) {
    ending = e.what();
    expected = e.expected;
  } catch (const boost::system::system_error& e) {
    ending = e.what();
    expected = expected_ending(e.code());
  } catch (const std::exception& e) {
    ending = e.what();
    expected = false;
  }
  if (handler.attached()) hub.detach(session_id);
  boost::system::error_code ignored;
  connection->stream().lowest_layer().close(ignored);
  if (expected) {
    spdlog::info("session {}: {} disconnected: {}", session_id, identity->id, ending);
  } else {
    hub.count_session_dropped();
    spdlog::warn("session {}: {} dropped: {}", session_id, identity->id, ending);
  }
}

}  // namespace saferlink::server
