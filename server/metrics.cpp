#include "server/metrics.hpp"

#include "core/metrics.hpp"
#include "server/config.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <string_view>

namespace saferlink::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

namespace {

// A scrape request is one short line and a few headers; nothing bigger is read.
constexpr std::size_t kMaxRequestBytes = 4096;
// The whole exchange (read the request, gather, write the answer) must fit in this.
constexpr std::chrono::seconds kDeadline{5};
// Connections beyond this many at once are closed unanswered.
constexpr unsigned kMaxConnections = 8;

constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

enum class Kind { counter, gauge };

void add(std::string& out, std::string_view name, Kind kind, std::string_view help,
         std::uint64_t value) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += kind == Kind::counter ? " counter\n" : " gauge\n";
  out += name;
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

// Decrements the shared count of open connections when the connection's coroutine ends.
class ActiveSlot {
 public:
  explicit ActiveSlot(std::shared_ptr<std::atomic<unsigned>> active) : active_(std::move(active)) {}
  ~ActiveSlot() { active_->fetch_sub(1); }
  ActiveSlot(const ActiveSlot&) = delete;
  ActiveSlot& operator=(const ActiveSlot&) = delete;

 private:
  std::shared_ptr<std::atomic<unsigned>> active_;
};

awaitable<MetricsSample> take_sample(Hub& hub) {
  MetricsSample sample;
  sample.hub = hub.stats();
  sample.queues = co_await hub.queue_depths();
  const NetCounters& net = net_counters();
  sample.slow_consumer_disconnects = net.slow_consumer_disconnects.load();
  sample.write_stall_disconnects = net.write_stall_disconnects.load();
  sample.idle_disconnects = net.idle_disconnects.load();
  sample.frames_sent = net.frames_sent.load();
  sample.frames_received = net.frames_received.load();
  sample.malformed_frames = net.malformed_frames.load();
  sample.oversize_frames = net.oversize_frames.load();
  co_return sample;
}

// True for the errors of a request that arrived but is not valid HTTP (answered 400), as
// opposed to a peer that went away or ran out of time (closed unanswered).
bool bad_request(const beast::error_code& ec) {
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) return false;
  return ec.category() == beast::error_code(http::error::bad_version).category();
}

// One request, one answer, then close.
awaitable<void> serve_one(Hub& hub, tcp::socket socket,
                          std::shared_ptr<std::atomic<unsigned>> active) {
  ActiveSlot slot(std::move(active));
  beast::tcp_stream stream(std::move(socket));
  stream.expires_after(kDeadline);
  beast::flat_buffer buffer(kMaxRequestBytes);
  http::request_parser<http::empty_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(kMaxRequestBytes));
  parser.body_limit(0);
  auto [read_error, read_bytes] =
      co_await http::async_read(stream, buffer, parser, asio::as_tuple(use_awaitable));
  (void)read_bytes;

  http::response<http::string_body> response;
  response.version(11);
  response.keep_alive(false);
  response.set(http::field::server, "saferlink-hub");
  response.set(http::field::content_type, "text/plain; charset=utf-8");
  if (read_error) {
    if (!bad_request(read_error)) co_return;  // gone, timed out or too slow: just close
    response.result(http::status::bad_request);
    response.body() = "bad request: " + read_error.message() + "\n";
  } else {
    const auto& request = parser.get();
    std::string_view target(request.target().data(), request.target().size());
    target = target.substr(0, target.find('?'));
    if (target != "/metrics") {
      response.result(http::status::not_found);
      response.body() = "not found: the only resource here is /metrics\n";
    } else if (request.method() != http::verb::get) {
      response.result(http::status::method_not_allowed);
      response.set(http::field::allow, "GET");
      response.body() = "method not allowed: use GET\n";
    } else {
      const MetricsSample sample = co_await take_sample(hub);
      response.result(http::status::ok);
      response.set(http::field::content_type, kContentType);
      response.body() = render_metrics(sample);
    }
  }
  response.prepare_payload();
  auto [write_error, written] =
      co_await http::async_write(stream, response, asio::as_tuple(use_awaitable));
  (void)written;
  if (write_error) co_return;
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace

std::string render_metrics(const MetricsSample& s) {
  std::string out;
  out.reserve(4096);
  const auto& h = s.hub;
  add(out, "saferlink_sessions_live", Kind::gauge, "Device sessions currently attached.",
      h.sessions_live);
  add(out, "saferlink_handshakes_in_flight", Kind::gauge,
      "TLS handshakes running now (at most limits.max_handshakes).", h.handshakes_in_flight);
  add(out, "saferlink_sessions_dropped_total", Kind::counter,
      "Device sessions that ended unexpectedly (a fault, not a clean close or timeout).",
      h.sessions_dropped);
  add(out, "saferlink_handshake_failures_total", Kind::counter,
      "TLS handshakes refused or failed.", h.handshake_failures);
  add(out, "saferlink_alerts_accepted_total", Kind::counter,
      "Panic alerts stored and relayed.", h.alerts_accepted);
  add(out, "saferlink_alerts_duplicate_total", Kind::counter,
      "Panic alerts received again and answered without relaying.", h.alerts_duplicate);
  add(out, "saferlink_escalations_total", Kind::counter,
      "Escalation rounds of unacknowledged alerts.", h.escalations);
  add(out, "saferlink_sightings_accepted_total", Kind::counter,
      "Sightings stored and relayed (repeats not counted).", h.sightings_accepted);
  add(out, "saferlink_replayed_total", Kind::counter,
      "Store-and-forward messages replayed to devices that reconnected.", h.replayed);
  add(out, "saferlink_gallery_entries_sent_total", Kind::counter,
      "Gallery entries sent to handsets (syncs and live changes).", h.gallery_entries_sent);
  add(out, "saferlink_gallery_removals_sent_total", Kind::counter,
      "Gallery removals sent to handsets.", h.gallery_removals_sent);
  add(out, "saferlink_photo_bytes_sent_total", Kind::counter,
      "Image bytes sent to devices in photo chunks (bulk priority).", h.photo_bytes_sent);
  add(out, "saferlink_forms_stored_total", Kind::counter,
      "Incident forms stored (repeats not counted).", h.forms_stored);
  add(out, "saferlink_queries_total", Kind::counter,
      "Queries to the intelligence store answered (results, refusals and failures).",
      h.queries);
  add(out, "saferlink_refusals_total", Kind::counter,
      "Messages refused as invalid or not allowed.", h.refusals);
  add(out, "saferlink_slow_consumer_disconnects_total", Kind::counter,
      "Connections closed because their outgoing queue overflowed (peer not reading).",
      s.slow_consumer_disconnects);
  add(out, "saferlink_write_stall_disconnects_total", Kind::counter,
      "Connections closed because a write stayed stalled beyond the write deadline.",
      s.write_stall_disconnects);
  add(out, "saferlink_idle_disconnects_total", Kind::counter,
      "Connections closed because nothing was received within the idle deadline.",
      s.idle_disconnects);
  add(out, "saferlink_frames_sent_total", Kind::counter, "Frames written to connections.",
      s.frames_sent);
  add(out, "saferlink_frames_received_total", Kind::counter,
      "Well-formed frames received from connections.", s.frames_received);
  add(out, "saferlink_malformed_frames_total", Kind::counter,
      "Frames received that were empty or not a SaferLink envelope.", s.malformed_frames);
  add(out, "saferlink_oversize_frames_total", Kind::counter,
      "Frames refused because their length was above the frame cap.", s.oversize_frames);
  add(out, "saferlink_queue_messages", Kind::gauge,
      "Messages waiting in the outgoing queues of all live sessions.",
      s.queues.total_messages);
  add(out, "saferlink_queue_messages_max", Kind::gauge,
      "Messages waiting in the deepest outgoing queue of a single live session.",
      s.queues.max_messages);
  return out;
}

MetricsServer::MetricsServer(Hub& hub, asio::io_context& io, Strand strand)
    : hub_(hub), io_(io), strand_(std::move(strand)), acceptor_(strand_) {}

std::uint16_t MetricsServer::bind(const std::string& host_port) {
  const HostPort where = parse_host_port(host_port, "metrics_listen");
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(where.host, ec);
  if (ec) throw ConfigError("metrics_listen: '" + where.host + "' is not an IP address");
  const tcp::endpoint endpoint(address, where.port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint, ec);
  if (ec) throw ConfigError("metrics_listen: cannot bind " + host_port + ": " + ec.message());
  acceptor_.listen(asio::socket_base::max_listen_connections);
  return acceptor_.local_endpoint().port();
}

std::string MetricsServer::bound_address() const {
  boost::system::error_code ec;
  const auto endpoint = acceptor_.local_endpoint(ec);
  if (ec) return "(not bound)";
  const auto address = endpoint.address();
  const std::string host =
      address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

void MetricsServer::start() { asio::co_spawn(strand_, accept_loop(), asio::detached); }

void MetricsServer::close() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

awaitable<void> MetricsServer::accept_loop() {
  for (;;) {
    auto [ec, socket] =
        co_await acceptor_.async_accept(asio::make_strand(io_), asio::as_tuple(use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      spdlog::warn("metrics: accept failed: {}", ec.message());
      continue;
    }
    if (active_->fetch_add(1) >= kMaxConnections) {
      active_->fetch_sub(1);
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    auto executor = socket.get_executor();
    asio::co_spawn(executor, serve_one(hub_, std::move(socket), active_), asio::detached);
  }
}

}  // namespace saferlink::server
