// TlsSocket: TLS run by OpenSSL directly on a TCP socket's descriptor (a BIO that sends and
// receives on it, non-blocking, waiting for readiness with async_wait), for the connections that carry the
// protocol (core/connection.hpp).
//
// Why not asio::ssl::stream: the stream keeps two 17 KiB buffers and a 2 x 17 KiB BIO pair for
// the connection's whole life, most of the memory of ten thousand idle handsets. Here, with
// SSL_MODE_RELEASE_BUFFERS on the context (core/tls.cpp sets it), an idle connection holds
// only OpenSSL's own state.
//
// Errors come back as error codes the way asio::ssl::stream reports them: a clean TLS close is
// asio::error::eof, the peer vanishing without close_notify is asio::ssl::error::
// stream_truncated, socket errors are system errors, TLS failures are in the SSL category.
//
// Safety: once the socket is closed its descriptor number may belong to another connection,
// so no SSL_* call that does I/O is made after close(); every operation checks first. The
// object is not thread-safe: use it from one strand (the socket's executor). One reader and
// one writer may be under way at once (OpenSSL allows SSL_read and SSL_write interleaved on a
// non-blocking descriptor); two of the same kind may not.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/system/error_code.hpp>

#include <openssl/types.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace boost::asio::ssl {
class context;
}

namespace saferlink {

class TlsSocket {
 public:
  using Socket = boost::asio::ip::tcp::socket;
  using executor_type = Socket::executor_type;

  // Makes the SSL object from `context` (which must outlive nothing: OpenSSL counts its
  // references). The socket may be connected later, before handshake(). Throws TlsError.
  TlsSocket(Socket socket, boost::asio::ssl::context& context);
  TlsSocket(TlsSocket&&) noexcept = default;
  TlsSocket& operator=(TlsSocket&&) noexcept = default;
  ~TlsSocket() = default;

  Socket& lowest_layer() { return socket_; }
  executor_type get_executor() { return socket_.get_executor(); }
  SSL* native_handle() { return ssl_.get(); }

  // Client side: the hub's certificate must name `host` (a DNS name or an IP address).
  // Throws TlsError when OpenSSL cannot take the name.
  void verify_host(const std::string& host);

  // The TLS handshake over the connected socket.
  boost::asio::awaitable<boost::system::error_code> handshake(
      boost::asio::ssl::stream_base::handshake_type type);

  // Reads at least one byte of application data (waiting for it).
  boost::asio::awaitable<std::pair<boost::system::error_code, std::size_t>> read_some(
      char* data, std::size_t size);

  // Reads at least one byte into a buffer of the thread that runs the read (16 KiB, a whole
  // TLS record), for many connections that would otherwise each keep a buffer while idle. The
  // view is valid only until the caller next suspends: use it before awaiting anything.
  static constexpr std::size_t kSharedReadBytes = 16 * 1024;
  boost::asio::awaitable<std::pair<boost::system::error_code, std::string_view>>
  read_some_shared();

  // Writes all of `size` bytes (waiting as needed); on success the whole buffer is sent.
  boost::asio::awaitable<boost::system::error_code> write_all(const char* data,
                                                              std::size_t size);

  // Closes the socket (no TLS close_notify: the protocol ends on its own terms).
  void close();

  // Non-suspending steps, for code that waits with handlers rather than coroutines (a
  // connection then keeps no coroutine frame while it is idle). A step either moved bytes,
  // failed, or says what readiness to wait for (lowest_layer().async_wait) before trying again.
  struct Step {
    boost::system::error_code error;
    std::size_t bytes = 0;
    enum class Wait { none, read, write } wait = Wait::none;
  };
  // One SSL_read_ex into `data`.
  Step read_now(char* data, std::size_t size);
  // One SSL_write_ex of `size` bytes: all of them, or none (then call again with the same bytes
  // after the wait, as OpenSSL asks).
  Step write_now(const char* data, std::size_t size);
  // The calling thread's 16 KiB read buffer (kSharedReadBytes), for read_now: whatever it
  // holds is valid only until the thread runs anything else.
  static char* shared_read_buffer();

 private:
  struct SslFree {
    void operator()(SSL* ssl) const;
  };
  // What an SSL_* result other than success means: want read/write (wait and retry), or an
  // error code. `wait` is set to the readiness to wait for, if any.
  boost::system::error_code classify(int result, bool* wait_read, bool* wait_write);
  boost::asio::awaitable<boost::system::error_code> wait(bool for_read);
  // After an SSL_* call that did not succeed: the error, or waits for what OpenSSL wants and
  // returns no error (call again).
  boost::asio::awaitable<boost::system::error_code> wait_to_retry(int result);
  // One SSL_write_ex (writing) or SSL_read_ex.
  Step io_step(bool writing, char* data, std::size_t size);
  // Waits for what a step asked for.
  boost::asio::awaitable<boost::system::error_code> wait_for(Step::Wait what);

  Socket socket_;
  std::unique_ptr<SSL, SslFree> ssl_;
  bool attached_ = false;  // the BIO on the descriptor is set (on the first handshake)
};

}  // namespace saferlink
