// Hostile and broken input against a real hub on loopback: bad certificates, plain TCP, bytes
// that are not frames, frames that are not envelopes, messages a role may not send. Each case
// ends by proving the hub still serves well-behaved devices: a CCTV operator connected before
// the bad input receives a panic that a Chatham shop sends after it.
#include "core/envelope.hpp"
#include "core/frame.hpp"
#include "core/tls.hpp"
#include "tests/support/device.hpp"
#include "tests/support/hub_fixture.hpp"
#include "tests/support/pki.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <doctest/doctest.h>
#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace v1 = saferlink::v1;
using asio::ip::tcp;
using saferlink::Role;
using saferlink::client::ClientError;
using saferlink::test::HubFixture;
using saferlink::test::is_panic;
using saferlink::test::TempDir;
using saferlink::test::TestDevice;
using saferlink::test::TestPki;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kDeadline = 5s;  // the longest any single step may take

tcp::endpoint hub_endpoint(std::uint16_t port) {
  return tcp::endpoint(asio::ip::make_address("127.0.0.1"), port);
}

// One envelope, framed as a device would send it.
std::string framed(v1::Envelope envelope, std::uint64_t msg_id) {
  envelope.set_msg_id(msg_id);
  envelope.set_sent_at_ms(saferlink::now_ms());
  return saferlink::frame_bytes(envelope.SerializeAsString());
}

std::string hello_frame(std::uint64_t msg_id = 1) {
  v1::Envelope e;
  e.mutable_hello()->set_protocol_version(saferlink::kProtocolVersion);
  e.mutable_hello()->add_capabilities("alerts");
  return framed(std::move(e), msg_id);
}

std::string status_frame(const std::string& alert_id, v1::RecipientStatusKind kind,
                         std::uint64_t msg_id) {
  v1::Envelope e;
  e.mutable_status()->set_alert_id(alert_id);
  e.mutable_status()->set_status(kind);
  return framed(std::move(e), msg_id);
}

std::string prefix(std::uint32_t length) {
  std::string out = saferlink::frame_bytes("");
  out[0] = static_cast<char>((length >> 24) & 0xff);
  out[1] = static_cast<char>((length >> 16) & 0xff);
  out[2] = static_cast<char>((length >> 8) & 0xff);
  out[3] = static_cast<char>(length & 0xff);
  return out;
}

// A TLS client that writes raw bytes and reads frames back, on its own io_context driven from
// the test thread with deadlines. No retries, no hello unless the test writes one.
class RawTls {
 public:
  RawTls(std::shared_ptr<ssl::context> context, std::uint16_t port)
      : context_(std::move(context)), stream_(io_, *context_), decoder_(16 * 1024 * 1024) {
    stream_.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
    stream_.lowest_layer().connect(hub_endpoint(port));
  }

  // With the certificate of `id` from a CA directory, as a device would.
  RawTls(const TestPki& pki, const std::string& id, std::uint16_t port)
      : RawTls(saferlink::make_client_context(saferlink::tls_files(pki.dir(), id)), port) {}

  // The client side of the TLS handshake. In TLS 1.3 the server checks the client's
  // certificate after the client has finished, so a refusal may show only on the next read.
  boost::system::error_code handshake() {
    auto result = std::make_shared<std::optional<boost::system::error_code>>();
    stream_.async_handshake(ssl::stream_base::client,
                            [result](const boost::system::error_code& ec) { *result = ec; });
    run_until([&] { return result->has_value(); });
    REQUIRE_MESSAGE(result->has_value(), "TLS handshake did not finish in time");
    return **result;
  }

  boost::system::error_code write(const std::string& bytes) {
    auto data = std::make_shared<std::string>(bytes);
    auto result = std::make_shared<std::optional<boost::system::error_code>>();
    asio::async_write(stream_, asio::buffer(*data),
                      [data, result](const boost::system::error_code& ec, std::size_t) {
                        *result = ec;
                      });
    run_until([&] { return result->has_value(); });
    REQUIRE_MESSAGE(result->has_value(), "write did not finish in time");
    return **result;
  }

  // The next envelope from the hub (heartbeats skipped); nullopt when the connection ended
  // (closed() is then true) or the deadline passed.
  std::optional<v1::Envelope> next(std::chrono::milliseconds timeout = kDeadline) {
    const auto until = Clock::now() + timeout;
    for (;;) {
      switch (decoder_.next()) {
        case saferlink::FrameDecoder::Status::frame: {
          v1::Envelope e;
          REQUIRE_MESSAGE(e.ParseFromArray(decoder_.body().data(),
                                           static_cast<int>(decoder_.body().size())),
                          "the hub sent a frame that is not an envelope");
          if (e.has_heartbeat()) continue;
          return e;
        }
        case saferlink::FrameDecoder::Status::empty:
          FAIL("the hub sent an empty frame");
          break;
        case saferlink::FrameDecoder::Status::too_large:
          FAIL("the hub sent a frame over 16 MiB");
          break;
        case saferlink::FrameDecoder::Status::need_more:
          break;
      }
      if (closed_) return std::nullopt;
      if (!reading_) start_read();
      if (!step(until)) return std::nullopt;
    }
  }

  // Waits for an Error envelope (others are kept in `received`).
  std::optional<v1::Error> next_error(std::chrono::milliseconds timeout = kDeadline) {
    const auto until = Clock::now() + timeout;
    for (;;) {
      auto e = next(std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()));
      if (!e) return std::nullopt;
      if (e->has_error()) return e->error();
      received.push_back(std::move(*e));
    }
  }

  // True once the hub has ended the connection within `timeout` (frames before it are kept).
  bool wait_closed(std::chrono::milliseconds timeout = kDeadline) {
    const auto until = Clock::now() + timeout;
    while (!closed_ && Clock::now() < until) {
      auto e = next(std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()));
      if (e) received.push_back(std::move(*e));
    }
    return closed_;
  }

  bool closed() const { return closed_; }
  const boost::system::error_code& ending() const { return ending_; }
  std::vector<v1::Envelope> received;

 private:
  void start_read() {
    reading_ = true;
    stream_.async_read_some(asio::buffer(buffer_),
                            [this](const boost::system::error_code& ec, std::size_t n) {
                              reading_ = false;
                              if (n > 0) decoder_.feed(buffer_.data(), n);
                              if (ec) {
                                closed_ = true;
                                ending_ = ec;
                              }
                            });
  }

  // Runs one handler, or waits until `until`. False once the deadline has passed.
  bool step(Clock::time_point until) {
    if (Clock::now() >= until) return false;
    io_.restart();
    io_.run_one_until(until);
    return true;
  }

  void run_until(const std::function<bool()>& done) {
    const auto until = Clock::now() + kDeadline;
    while (!done() && step(until)) {
    }
  }

  asio::io_context io_;
  std::shared_ptr<ssl::context> context_;
  ssl::stream<tcp::socket> stream_;
  saferlink::FrameDecoder decoder_;
  std::array<char, 4096> buffer_{};
  bool reading_ = false;
  bool closed_ = false;
  boost::system::error_code ending_;
};

// Opens a plain TCP connection, writes `bytes`, and reports whether the hub closed it within
// the deadline (reading whatever it sends until then).
bool plain_tcp_closed_after(std::uint16_t port, const std::string& bytes) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(hub_endpoint(port));
  asio::write(socket, asio::buffer(bytes));
  bool closed = false;
  std::array<char, 1024> buffer{};
  std::function<void(const boost::system::error_code&, std::size_t)> on_read =
      [&](const boost::system::error_code& ec, std::size_t) {
        if (ec) {
          closed = true;
          return;
        }
        socket.async_read_some(asio::buffer(buffer), on_read);
      };
  socket.async_read_some(asio::buffer(buffer), on_read);
  const auto until = Clock::now() + kDeadline;
  while (!closed && Clock::now() < until) {
    io.restart();
    io.run_one_until(until);
  }
  return closed;
}

// Polls `condition` until it holds or the deadline passes.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds within = kDeadline) {
  const auto until = Clock::now() + within;
  while (!condition()) {
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

const std::string kCctv = "cctv-01";
const std::string kShop = "shop-chatham-01";

// A hub with a CCTV operator already on air, and a Chatham shop to prove that others are still
// served after the bad input.
struct BadInput {
  BadInput() {
    pki.issue(Role::cctv, "all", kCctv, "Medway CCTV");
    pki.issue(Role::shop, "chatham", kShop, "Pentagon Centre Boots");
    hub = std::make_unique<HubFixture>(pki);
    cctv = std::make_unique<TestDevice>(pki.dir(), kCctv, hub->address());
    cctv->connect();
  }

  std::uint16_t port() const { return hub->hub->port(); }
  std::uint64_t handshake_failures() const { return hub->hub->stats().handshake_failures; }

  // A Chatham shop connects and panics; the CCTV operator connected before gets the alert.
  void others_still_served() {
    TestDevice shop(pki.dir(), kShop, hub->address());
    REQUIRE_NOTHROW(shop.connect());
    ++seq;
    const std::string alert_id = kShop + ":" + std::to_string(seq);
    shop.panic(seq);
    const auto accepted = shop.wait_for([&](const v1::Envelope& e) {
      return e.has_accepted() && e.accepted().alert_id() == alert_id;
    });
    CHECK_MESSAGE(accepted.has_value(), "the shop's panic was not accepted");
    const auto relayed = cctv->wait_for(is_panic(alert_id));
    CHECK_MESSAGE(relayed.has_value(), "the CCTV operator did not receive the panic");
  }

  TestPki pki;
  std::unique_ptr<HubFixture> hub;
  std::unique_ptr<TestDevice> cctv;
  std::uint64_t seq = 0;
};

// A TestDevice with the certificate of `id` from `certs`: connect() must throw.
void check_connect_refused(const std::filesystem::path& certs, const std::string& id,
                           const std::string& address) {
  TestDevice device(certs, id, address);
  CHECK_THROWS_AS(device.connect(), ClientError);
}

}  // namespace

TEST_CASE_FIXTURE(BadInput, "a client without a certificate fails the TLS handshake and the hub keeps serving others") {
  const auto failures_before = handshake_failures();
  auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_3_VERSION);
  context->load_verify_file((pki.dir() / "ca.crt").string());
  context->set_verify_mode(ssl::verify_peer);
  {
    RawTls raw(context, port());
    const auto ec = raw.handshake();
    if (!ec) {
      // TLS 1.3: the client finishes first; the hub's refusal arrives as an alert.
      raw.write(hello_frame());
      CHECK(raw.wait_closed());
      CHECK(raw.received.empty());  // no welcome, nothing
    }
  }
  CHECK(eventually([&] { return handshake_failures() > failures_before; }));
  others_still_served();
}

TEST_CASE_FIXTURE(BadInput, "a certificate from another CA is refused by the hub and the hub keeps serving others") {
  TestPki other;
  other.issue(Role::shop, "chatham", "shop-chatham-07", "Elsewhere Ltd");

  SUBCASE("the client trusts the hub, so the refusal is the hub's") {
    // The partnership's CA certificate (to trust the hub) with the foreign device certificate.
    TempDir mixed;
    std::filesystem::create_directories(mixed.path / "issued");
    std::filesystem::copy_file(pki.dir() / "ca.crt", mixed.path / "ca.crt");
    for (const char* ext : {".crt", ".key"}) {
      std::filesystem::copy_file(other.dir() / "issued" / (std::string("shop-chatham-07") + ext),
                                 mixed.path / "issued" / (std::string("shop-chatham-07") + ext));
    }
    const auto failures_before = handshake_failures();
    check_connect_refused(mixed.path, "shop-chatham-07", hub->address());
    CHECK(eventually([&] { return handshake_failures() > failures_before; }));
  }
  SUBCASE("a device of the other CA as issued") {
    check_connect_refused(other.dir(), "shop-chatham-07", hub->address());
  }
  others_still_served();
}

TEST_CASE_FIXTURE(BadInput, "revoking a certificate drops its live session and refuses it afterwards") {
  pki.issue(Role::shop, "chatham", "shop-chatham-lost", "Lost Handset Ltd");
  TestDevice lost(pki.dir(), "shop-chatham-lost", hub->address());
  REQUIRE_NOTHROW(lost.connect());

  pki.revoke("shop-chatham-lost");
  // The hub polls the CRL every 100 ms (HubFixture); the session must end within seconds.
  bool dropped = false;
  const auto until = Clock::now() + kDeadline;
  while (!dropped && Clock::now() < until) {
    try {
      lost.next(100ms);
    } catch (const ClientError&) {
      dropped = true;
    }
  }
  CHECK_MESSAGE(dropped, "the revoked handset's session is still live");

  const auto failures_before = handshake_failures();
  check_connect_refused(pki.dir(), "shop-chatham-lost", hub->address());
  CHECK(eventually([&] { return handshake_failures() > failures_before; }));
  others_still_served();
}

TEST_CASE_FIXTURE(BadInput, "an expired certificate is refused and the hub keeps serving others") {
  pki.issue_expired(Role::shop, "chatham", "shop-chatham-old");
  const auto failures_before = handshake_failures();
  check_connect_refused(pki.dir(), "shop-chatham-old", hub->address());
  CHECK(eventually([&] { return handshake_failures() > failures_before; }));
  others_still_served();
}

TEST_CASE_FIXTURE(BadInput, "plain TCP garbage without TLS is closed and the hub keeps serving others") {
  const auto failures_before = handshake_failures();
  CHECK(plain_tcp_closed_after(port(), "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  std::string binary(512, '\0');
  std::mt19937 rng(7);
  for (auto& c : binary) c = static_cast<char>(rng() & 0xff);
  // Not a TLS record header (nor an SSLv2 hello), so the hub has no reason to wait for more.
  binary[0] = 'B';
  binary[1] = 'B';
  CHECK(plain_tcp_closed_after(port(), binary));
  CHECK(eventually([&] { return handshake_failures() >= failures_before + 2; }));
  others_still_served();
}

TEST_CASE_FIXTURE(BadInput, "random bytes inside a valid TLS session are answered with an Error or a close and the hub keeps serving others") {
  bool after_hello = false;
  SUBCASE("before hello") {}
  SUBCASE("after hello") { after_hello = true; }
  for (std::uint32_t seed = 1; seed <= 6; ++seed) {
    CAPTURE(seed);
    RawTls raw(pki, kShop, port());
    REQUIRE(!raw.handshake());
    if (after_hello) {
      REQUIRE(!raw.write(hello_frame()));
      const auto welcome = raw.next();
      REQUIRE(welcome.has_value());
      REQUIRE(welcome->has_welcome());
    }
    std::mt19937 rng(seed);
    std::string garbage(100 + rng() % 2000, '\0');
    for (auto& c : garbage) c = static_cast<char>(rng() & 0xff);
    if (seed % 2 == 0) {
      // A length within the cap and covering every byte sent: a frame with a garbage body.
      garbage.replace(0, 4, prefix(static_cast<std::uint32_t>(garbage.size() - 4)));
    }
    raw.write(garbage);  // may fail if the hub has already closed
    const auto error = raw.next_error();  // nullopt: closed, or the deadline passed
    CHECK_MESSAGE((error.has_value() || raw.closed()), "the hub neither answered nor closed");
    if (error) {
      INFO("error: " << error->message());
      CHECK((error->code() == v1::MALFORMED || error->code() == v1::FRAME_TOO_LARGE ||
             error->code() == v1::EXPECTED_HELLO));
      if (error->code() == v1::FRAME_TOO_LARGE) CHECK(raw.wait_closed());
    }
  }
  others_still_served();
}

TEST_CASE_FIXTURE(BadInput, "a length prefix over the cap is answered with FRAME_TOO_LARGE and then the connection closes") {
  RawTls raw(pki, kShop, port());
  REQUIRE(!raw.handshake());
  SUBCASE("as the first frame") {}
  SUBCASE("after hello") {
    REQUIRE(!raw.write(hello_frame()));
    const auto welcome = raw.next();
    REQUIRE(welcome.has_value());
    REQUIRE(welcome->has_welcome());
    CHECK(welcome->welcome().max_frame_bytes() == 64 * 1024);
  }
  // 1 MiB announced; the hub must not wait for (or allocate) the body.
  REQUIRE(!raw.write(prefix(0x00100000)));
  const auto error = raw.next_error();
  REQUIRE(error.has_value());
  CHECK(error->code() == v1::FRAME_TOO_LARGE);
  CHECK(error->message().find("1048576") != std::string::npos);
  CHECK(raw.wait_closed());
  others_still_served();
}

TEST_CASE_FIXTURE(BadInput, "a frame whose body does not decode is answered MALFORMED and the connection stays open") {
  RawTls raw(pki, kShop, port());
  REQUIRE(!raw.handshake());
  REQUIRE(!raw.write(hello_frame(1)));
  const auto welcome = raw.next();
  REQUIRE(welcome.has_value());
  REQUIRE(welcome->has_welcome());

  SUBCASE("a truncated varint") { REQUIRE(!raw.write(saferlink::frame_bytes("\x08\xff\xff"))); }
  SUBCASE("an envelope without a message") {
    v1::Envelope bare;
    REQUIRE(!raw.write(framed(bare, 2)));
  }
  SUBCASE("a zero-length frame") { REQUIRE(!raw.write(prefix(0))); }
  const auto malformed = raw.next_error();
  REQUIRE(malformed.has_value());
  CHECK(malformed->code() == v1::MALFORMED);

  // Still in step and still served: a status for an alert nobody sent is looked up and refused.
  REQUIRE(!raw.write(status_frame("shop-chatham-99:1", v1::ACKNOWLEDGED, 3)));
  const auto unknown = raw.next_error();
  REQUIRE(unknown.has_value());
  CHECK(unknown->code() == v1::UNKNOWN_ALERT);
  CHECK(unknown->in_reply_to() == 3);
  CHECK(!raw.closed());
  others_still_served();
}

TEST_CASE_FIXTURE(BadInput, "a message the sender's role may not send is refused NOT_ALLOWED and the connection stays open") {
  std::string id;
  std::string reason;
  v1::Envelope refused;
  SUBCASE("a CCTV operator sends a panic") {
    id = "cctv-02";
    pki.issue(Role::cctv, "all", id, "Medway CCTV");
    refused.mutable_panic()->set_alert_id(id + ":1");
    refused.mutable_panic()->set_device_seq(1);
    reason = "role cctv may not send panic";
  }
  SUBCASE("a shop reports en_route") {
    id = "shop-chatham-02";
    pki.issue(Role::shop, "chatham", id, "Chatham Greggs");
    refused.mutable_status()->set_alert_id("shop-chatham-01:1");
    refused.mutable_status()->set_status(v1::EN_ROUTE);
    reason = "role shop may not send status en_route";
  }
  SUBCASE("a coordinator sends a cancel") {
    id = "coord-01";
    pki.issue(Role::coordinator, "all", id, "Safer Medway Partnership");
    refused.mutable_cancel()->set_alert_id("shop-chatham-01:1");
    reason = "role coordinator may not send cancel";
  }
  CAPTURE(id);
  TestDevice device(pki.dir(), id, hub->address());
  REQUIRE_NOTHROW(device.connect());
  const auto msg_id = device.send(refused);
  const auto reply = device.wait_for(saferlink::test::is_reply(msg_id));
  REQUIRE(reply.has_value());
  REQUIRE(reply->has_error());
  CHECK(reply->error().code() == v1::NOT_ALLOWED);
  CHECK(reply->error().message().find(reason) != std::string::npos);

  // The connection is still open and still answered.
  const auto status_id = device.status("shop-chatham-99:1", v1::DELIVERED);
  const auto unknown = device.wait_for(saferlink::test::is_reply(status_id));
  REQUIRE(unknown.has_value());
  REQUIRE(unknown->has_error());
  CHECK(unknown->error().code() == v1::UNKNOWN_ALERT);
  others_still_served();
}

TEST_CASE_FIXTURE(BadInput, "a first message that is not hello is answered EXPECTED_HELLO and the connection closes") {
  RawTls raw(pki, kShop, port());
  REQUIRE(!raw.handshake());
  v1::Envelope panic;
  panic.mutable_panic()->set_alert_id(kShop + ":1");
  panic.mutable_panic()->set_device_seq(1);
  REQUIRE(!raw.write(framed(panic, 77)));
  const auto error = raw.next_error();
  REQUIRE(error.has_value());
  CHECK(error->code() == v1::EXPECTED_HELLO);
  CHECK(error->in_reply_to() == 77);
  CHECK(raw.wait_closed());
  // The panic sent before hello was not relayed.
  CHECK(!cctv->wait_for(is_panic(kShop + ":1"), 300ms).has_value());
  seq = 1;  // others_still_served() uses the next sequence number
  others_still_served();
}
