// TlsSocket (core/tls_socket.hpp): TLS run by OpenSSL on the descriptor, over real loopback
// TCP with certificates the test makes.
#include "core/connection.hpp"
#include "core/tls.hpp"
#include "core/tls_socket.hpp"
#include "tests/support/pki.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <doctest/doctest.h>

#include <array>
#include <memory>
#include <string>

using namespace saferlink;
using namespace saferlink::test;

namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using boost::system::error_code;

constexpr std::size_t kBytes = 1024 * 1024;

char pattern_at(std::size_t i, int salt) { return static_cast<char>((i * 31 + salt) & 0xff); }

// A hub-side and a shop-side TlsSocket over one loopback TCP connection, handshaken.
struct Pair {
  explicit Pair(const std::string& host = "127.0.0.1") {
    pki.issue(Role::shop, "chatham", "shop-1");
    server_tls = make_server_context(tls_files(pki.dir(), "hub"));
    client_tls = make_client_context(tls_files(pki.dir(), "shop-1"));
    tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    tcp::socket client_socket(io);
    client_socket.connect(acceptor.local_endpoint());
    server = std::make_unique<TlsSocket>(acceptor.accept(), *server_tls);
    client = std::make_unique<TlsSocket>(std::move(client_socket), *client_tls);
    client->verify_host(host);
    asio::co_spawn(io, shake(*server, asio::ssl::stream_base::server, server_shaken), asio::detached);
    asio::co_spawn(io, shake(*client, asio::ssl::stream_base::client, client_shaken), asio::detached);
    io.run();
    io.restart();
  }
  static awaitable<void> shake(TlsSocket& s, asio::ssl::stream_base::handshake_type type,
                               error_code& out) {
    out = co_await s.handshake(type);
    if (out) s.close();  // the other side then fails too instead of waiting
  }
  TestPki pki;
  asio::io_context io;
  std::shared_ptr<asio::ssl::context> server_tls;
  std::shared_ptr<asio::ssl::context> client_tls;
  std::unique_ptr<TlsSocket> server;
  std::unique_ptr<TlsSocket> client;
  error_code server_shaken = asio::error::would_block;
  error_code client_shaken = asio::error::would_block;
};

awaitable<void> send_pattern(TlsSocket& s, int salt, error_code& out) {
  std::string bytes(kBytes, '\0');
  for (std::size_t i = 0; i < kBytes; ++i) bytes[i] = pattern_at(i, salt);
  // In uneven pieces, so that records and writes do not line up with reads.
  std::size_t done = 0;
  std::size_t piece = 1;
  while (done < kBytes && !out) {
    const std::size_t n = std::min(piece, kBytes - done);
    out = co_await s.write_all(bytes.data() + done, n);
    done += n;
    piece = piece * 3 + 7;
    if (piece > 200'000) piece = 5;
  }
}

awaitable<void> receive_pattern(TlsSocket& s, int salt, std::size_t& matching, error_code& out) {
  std::array<char, 3000> buffer{};
  std::size_t at = 0;
  while (at < kBytes) {
    auto [ec, n] = co_await s.read_some(buffer.data(), buffer.size());
    if (ec) {
      out = ec;
      co_return;
    }
    for (std::size_t i = 0; i < n; ++i, ++at) {
      if (at < kBytes && buffer[i] == pattern_at(at, salt)) ++matching;
    }
  }
}

awaitable<void> read_once(TlsSocket& s, error_code& out) {
  std::array<char, 512> buffer{};
  auto [ec, n] = co_await s.read_some(buffer.data(), buffer.size());
  (void)n;
  out = ec;
}

awaitable<void> write_until_error(TlsSocket& s, int& writes, error_code& out) {
  const std::string chunk(64 * 1024, 'x');
  for (writes = 0; writes < 200 && !out; ++writes) {
    out = co_await s.write_all(chunk.data(), chunk.size());
  }
}

}  // namespace

TEST_SUITE("tls socket") {

TEST_CASE("a TLS socket pair sends a megabyte each way at once, byte for byte, and knows who "
          "is at the other end") {
  Pair pair;
  REQUIRE_FALSE(pair.server_shaken);
  REQUIRE_FALSE(pair.client_shaken);
  std::string why;
  const auto who = peer_identity(pair.server->native_handle(), &why);
  REQUIRE(who.has_value());
  CHECK(who->id == "shop-1");

  error_code sent_up, sent_down, read_up, read_down;
  std::size_t up = 0;
  std::size_t down = 0;
  asio::co_spawn(pair.io, send_pattern(*pair.client, 1, sent_up), asio::detached);
  asio::co_spawn(pair.io, send_pattern(*pair.server, 2, sent_down), asio::detached);
  asio::co_spawn(pair.io, receive_pattern(*pair.server, 1, up, read_up), asio::detached);
  asio::co_spawn(pair.io, receive_pattern(*pair.client, 2, down, read_down), asio::detached);
  pair.io.run();
  pair.io.restart();
  CHECK_FALSE(sent_up);
  CHECK_FALSE(sent_down);
  CHECK_FALSE(read_up);
  CHECK_FALSE(read_down);
  CHECK(up == kBytes);
  CHECK(down == kBytes);

  // The shop goes away without a TLS goodbye: the hub reads a truncated stream, an expected
  // ending.
  pair.client->close();
  error_code ended;
  asio::co_spawn(pair.io, read_once(*pair.server, ended), asio::detached);
  pair.io.run();
  CHECK(ended == asio::ssl::error::stream_truncated);
  CHECK(expected_ending(ended));
}

TEST_CASE("writing to a peer that has gone is an error for that socket, not SIGPIPE for the "
          "process") {
  Pair pair;
  REQUIRE_FALSE(pair.client_shaken);
  pair.server->close();  // unread data and a reset follow the first writes
  int writes = 0;
  error_code failed;
  asio::co_spawn(pair.io, write_until_error(*pair.client, writes, failed), asio::detached);
  pair.io.run();
  // Without MSG_NOSIGNAL the process would have died of SIGPIPE before getting here.
  CHECK(failed);
  CHECK(writes < 200);
  CHECK(expected_ending(failed));
}

TEST_CASE("a client refuses a hub whose certificate does not name the host it dialled") {
  Pair pair("127.0.0.2");  // the hub's certificate is for 127.0.0.1
  CHECK(pair.client_shaken);
  CHECK(pair.client_shaken.category() == asio::error::get_ssl_category());
  CHECK(handshake_failure(pair.client->native_handle(), pair.client_shaken.message())
            .find("mismatch") != std::string::npos);
}

TEST_CASE("closing the socket while a read waits ends the read, and nothing reads it again") {
  Pair pair;
  REQUIRE_FALSE(pair.server_shaken);
  error_code first = asio::error::would_block;
  asio::co_spawn(pair.io, read_once(*pair.server, first), asio::detached);
  asio::post(pair.io, [&pair] { pair.server->close(); });
  pair.io.run();
  pair.io.restart();
  CHECK(first == asio::error::operation_aborted);
  error_code again;
  asio::co_spawn(pair.io, read_once(*pair.server, again), asio::detached);
  pair.io.run();
  CHECK(again == asio::error::operation_aborted);
}

}  // TEST_SUITE
