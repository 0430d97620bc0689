// MetricsServer: the hub's /metrics endpoint — Prometheus text exposition (format 0.0.4) over
// plain HTTP/1.1 on a loopback port (HubConfig::metrics_listen; validate() refuses any other
// address). It shows counts and gauges only: no identities, no message content.
//
// One request per connection, then close. Each connection has a deadline for the whole
// exchange, a small cap on the request head, no request body, and there are at most a few
// connections at a time; anything beyond is closed at once. GET /metrics answers 200, another
// path 404, another method 405, a malformed request 400.
//
// Threads and executors: the acceptor lives on the hub strand (the executor given to the
// constructor): bind(), start() and close() are called there, or before the io_context runs.
// Each HTTP connection runs on its own strand; a scrape reads the hub's atomics and the
// process's NetCounters directly and gathers queue depths with Hub::queue_depths() (one pass
// on the hub strand).
#pragma once

#include "server/hub.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace saferlink::server {

// What one scrape shows.
struct MetricsSample {
  Hub::Stats hub;
  Hub::QueueDepths queues;
  // A copy of the process's NetCounters (core/metrics.hpp).
  std::uint64_t slow_consumer_disconnects = 0;
  std::uint64_t write_stall_disconnects = 0;
  std::uint64_t idle_disconnects = 0;
  std::uint64_t frames_sent = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t malformed_frames = 0;
  std::uint64_t oversize_frames = 0;
};

// The exposition text of a sample: for each metric a # HELP line, a # TYPE line and the value.
// Counters end in _total; every name starts with saferlink_.
std::string render_metrics(const MetricsSample& sample);

class MetricsServer {
 public:
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

  MetricsServer(Hub& hub, boost::asio::io_context& io, Strand strand);
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds and listens on HOST:PORT (port 0: any); returns the bound port. Throws ConfigError
  // naming metrics_listen when the address is not an IP address or cannot be bound.
  std::uint16_t bind(const std::string& host_port);
  // "HOST:PORT" as bound, for the log.
  std::string bound_address() const;
  // Starts accepting (spawns the accept loop on the strand).
  void start();
  // Stops accepting; connections in flight finish within their deadline. On the strand.
  void close();

 private:
  boost::asio::awaitable<void> accept_loop();

  Hub& hub_;
  boost::asio::io_context& io_;
  Strand strand_;
  boost::asio::ip::tcp::acceptor acceptor_;
  // Open HTTP connections; shared with them so that one outliving this object is harmless.
  std::shared_ptr<std::atomic<unsigned>> active_ = std::make_shared<std::atomic<unsigned>>(0);
};

}  // namespace saferlink::server
