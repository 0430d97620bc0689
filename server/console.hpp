// ConsoleServer: the hub's console for CCTV operators, police and coordinators — HTTPS
// (HTTP/1.1 over TLS 1.3, Boost.Beast) on its own port (HubConfig::console_listen,
// `--console`), with the same TLS context and client-certificate rules as the device port:
// a person's certificate (saferlink-ca export makes a PKCS#12 bundle for the browser) is the
// login, and the role and town in it decide what is allowed. A request without a certificate
// is refused at the TLS layer.
//
// Today it serves (docs/operations.md, "Console"):
//   GET  /, /index.html, /app.js, /style.css   the page (console/, compiled in)
//   GET  /api/me                                who the certificate says you are
//   POST /api/coord/OP                          coordinators only (403 otherwise): the query OP
//                                               of docs/protocol.md section 5.8 with the JSON
//                                               object body as its arguments
// Every answer carries strict security headers (a CSP without inline script, frame-ancestors
// 'none', nosniff, no referrer); API answers are no-store. Errors are JSON
// {"error": "..."} with 400 (bad input), 403, 404, 405, 413 (body above 64 KiB) or 500.
//
// Threads and executors: the acceptor lives on the hub strand (bind, start, close there or
// before the io_context runs); each connection runs on its own strand; queries run on the
// store thread and their answers come back to the connection's strand.
#pragma once

#include "server/hub.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace saferlink::server {

class ConsoleServer {
 public:
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

  ConsoleServer(Hub& hub, boost::asio::io_context& io, Strand strand);
  ConsoleServer(const ConsoleServer&) = delete;
  ConsoleServer& operator=(const ConsoleServer&) = delete;

  // Binds and listens on HOST:PORT (port 0: any); returns the bound port. Throws ConfigError
  // naming console_listen when the address is not an IP address or cannot be bound.
  std::uint16_t bind(const std::string& host_port);
  std::string bound_address() const;
  void start();
  void close();

 private:
  boost::asio::awaitable<void> accept_loop();

  Hub& hub_;
  boost::asio::io_context& io_;
  Strand strand_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<std::atomic<unsigned>> active_ = std::make_shared<std::atomic<unsigned>>(0);
};

}  // namespace saferlink::server
