#include "client/client.hpp"

#include "core/connection.hpp"
#include "core/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <deque>

namespace saferlink::client {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

struct Client::Impl : std::enable_shared_from_this<Client::Impl> {
  asio::any_io_executor executor;
  ClientOptions options;
  std::shared_ptr<asio::ssl::context> tls;
  std::shared_ptr<Connection> connection;
  std::deque<v1::Envelope> inbox;
  asio::steady_timer arrived;  // cancelled whenever inbox grows or the connection ends
  bool ended = false;
  std::string ending;
  std::uint32_t hub_max_frame_bytes = 0;  // from the welcome

  Impl(asio::any_io_executor ex, ClientOptions o)
      : executor(asio::make_strand(ex)),
        options(std::move(o)),
        arrived(executor),
        sequence(options.resume_cursor) {}

  SequenceFilter sequence;  // drops replays of what was already received

  void deliver(v1::Envelope&& envelope) {
    if (envelope.has_heartbeat()) return;
    const bool duplicate = !sequence.accept(envelope);
    if (envelope.has_panic() && options.auto_delivered) {
      // Acknowledged again when it is a duplicate: the first `delivered` may be what was lost.
      v1::Envelope status;
      status.mutable_status()->set_alert_id(envelope.panic().alert_id());
      status.mutable_status()->set_status(v1::DELIVERED);
      connection->send(status);
    }
    if (duplicate) return;
    inbox.push_back(std::move(envelope));
    arrived.cancel();
  }
};

namespace {

std::pair<std::string, std::string> split_host_port(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    throw ClientError("--hub must be HOST:PORT, got '" + text + "'");
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return {host, text.substr(colon + 1)};
}

}  // namespace

Client::Client(asio::any_io_executor executor, ClientOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

Client::~Client() {
  if (impl_->connection) impl_->connection->abort("client gone");
}

awaitable<v1::Welcome> Client::connect() {
  using namespace asio::experimental::awaitable_operators;
  auto impl = impl_;
  const auto& options = impl->options;
  try {
    impl->tls = make_client_context(tls_files(options.certs, options.id));
  } catch (const TlsError& e) {
    throw ClientSetupError(e.what());
  }
  const auto [host, port] = split_host_port(options.hub);

  asio::ip::tcp::resolver resolver(impl->executor);
  auto [rec, endpoints] =
      co_await resolver.async_resolve(host, port, asio::as_tuple(use_awaitable));
  if (rec) throw ClientError("cannot resolve hub " + options.hub + ": " + rec.message());

  Connection::Stream stream(asio::ip::tcp::socket(impl->executor), *impl->tls);
  try {
    stream.verify_host(host);
  } catch (const TlsError& e) {
    throw ClientSetupError(e.what());
  }
  asio::steady_timer deadline(impl->executor, options.connect_timeout);

  auto connected = co_await (asio::async_connect(stream.lowest_layer(), endpoints,
                                                 asio::as_tuple(use_awaitable)) ||
                             deadline.async_wait(asio::as_tuple(use_awaitable)));
  if (connected.index() == 1) throw ClientError("hub " + options.hub + " did not answer in time");
  if (auto ec = std::get<0>(std::get<0>(connected)); ec) {
    throw ClientError("cannot reach hub " + options.hub + ": " + ec.message());
  }
  boost::system::error_code ignored;
  stream.lowest_layer().set_option(asio::ip::tcp::no_delay(true), ignored);

  auto shaken = co_await (stream.handshake(asio::ssl::stream_base::client) ||
                          deadline.async_wait(asio::as_tuple(use_awaitable)));
  if (shaken.index() == 1) throw ClientError("TLS handshake with hub " + options.hub + " timed out");
  if (const auto ec = std::get<0>(shaken); ec) {
    throw ClientError("TLS handshake with hub " + options.hub + " failed: " +
                      handshake_failure(stream.native_handle(), ec.message()));
  }

  Connection::Options connection_options;
  // Query results (lists, exports) can be larger than what the hub accepts from devices.
  connection_options.max_frame_bytes = kMaxResultFrameBytes;
  impl->connection = std::make_shared<Connection>(std::move(stream), connection_options,
                                                  "client " + options.id);
  // Named, not a temporary lambda in the call: GCC 12 destroys such temporaries passed to a
  // coroutine twice.
  Connection::Handler on_message = [weak = std::weak_ptr<Impl>(impl)](v1::Envelope&& e) {
    if (auto self = weak.lock()) self->deliver(std::move(e));
  };
  asio::co_spawn(
      impl->executor, impl->connection->run(std::move(on_message)),
      [impl](std::exception_ptr error) {
        impl->ended = true;
        impl->ending = "connection to the hub closed";
        try {
          if (error) std::rethrow_exception(error);
        } catch (const ConnectionEnded& e) {
          impl->ending = std::string("connection to the hub lost: ") + e.what();
        } catch (const std::exception& e) {
          impl->ending = std::string("connection to the hub lost: ") + e.what();
        }
        boost::system::error_code ignore;
        impl->connection->stream().lowest_layer().close(ignore);
        impl->arrived.cancel();
      });

  v1::Envelope hello;
  auto* h = hello.mutable_hello();
  h->set_protocol_version(kProtocolVersion);
  for (const char* capability : {"alerts", "forms", "queries", "uploads", "sightings"}) {
    h->add_capabilities(capability);
  }
  if (options.resume) {
    h->add_capabilities("resume");
    h->set_resume_cursor(impl->sequence.cursors().alert);
    h->set_resume_cursor_other(impl->sequence.cursors().other);
  }
  if (options.gallery) {
    h->add_capabilities("gallery");
    h->set_gallery_version(options.gallery_version);
  }
  h->set_software("saferlink-cli 0.1.0");
  send(std::move(hello));

  for (;;) {
    auto reply = co_await next(options.connect_timeout);
    if (!reply) throw ClientError("hub " + options.hub + " did not say welcome in time");
    if (reply->has_welcome()) {
      impl->hub_max_frame_bytes = reply->welcome().max_frame_bytes();
      co_return reply->welcome();
    }
    if (reply->has_error()) throw ClientError("hub refused hello: " + reply->error().message());
  }
}

std::uint64_t Client::send(v1::Envelope envelope) {
  if (!impl_->connection) throw ClientError("not connected");
  const Priority p = priority_of(envelope);
  Frame frame = encode(envelope);
  impl_->connection->send(std::move(frame), p);
  return envelope.msg_id();
}

awaitable<std::optional<v1::Envelope>> Client::next(std::chrono::milliseconds timeout) {
  auto impl = impl_;
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (!impl->inbox.empty()) {
      v1::Envelope e = std::move(impl->inbox.front());
      impl->inbox.pop_front();
      co_return e;
    }
    if (impl->ended) throw ClientError(impl->ending);
    if (std::chrono::steady_clock::now() >= until) co_return std::nullopt;
    impl->arrived.expires_at(until);
    co_await impl->arrived.async_wait(asio::as_tuple(use_awaitable));
  }
}

void Client::close() {
  if (impl_->connection) impl_->connection->close("client closing");
}

std::size_t Client::queued_messages() const {
  return impl_->connection ? impl_->connection->queued_messages() : 0;
}

std::uint32_t Client::hub_max_frame_bytes() const { return impl_->hub_max_frame_bytes; }

Cursors Client::cursor() const { return impl_->sequence.cursors(); }

std::uint64_t Client::duplicates() const { return impl_->sequence.duplicates(); }

void Client::abort() {
  if (impl_->connection) impl_->connection->abort("link cut");
}

}  // namespace saferlink::client
