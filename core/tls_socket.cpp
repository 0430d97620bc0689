#include "core/tls_socket.hpp"

#include "core/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstdint>

namespace saferlink {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;

namespace {

error_code ssl_error(unsigned long code) {
  return error_code(static_cast<int>(code), asio::error::get_ssl_category());
}

// A BIO on the descriptor like OpenSSL's socket BIO, except that it sends with MSG_NOSIGNAL:
// writing to a peer that has gone must be an error for that connection, not SIGPIPE for the
// whole process (the CLI, the tests and any program using Connection).
int descriptor_of(BIO* bio) {
  return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
}

bool would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

int bio_write(BIO* bio, const char* data, int size) {
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::send(descriptor_of(bio), data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
  if (n >= 0) return static_cast<int>(n);
  if (would_block(errno)) BIO_set_retry_write(bio);
  return -1;
}

int bio_read(BIO* bio, char* data, int size) {
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::recv(descriptor_of(bio), data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
  if (n >= 0) return static_cast<int>(n);  // 0: the peer closed
  if (would_block(errno)) BIO_set_retry_read(bio);
  return -1;
}

long bio_ctrl(BIO* /*bio*/, int command, long /*number*/, void* /*pointer*/) {
  return command == BIO_CTRL_FLUSH ? 1 : 0;  // nothing is buffered here
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* socket_method() {
  static const BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "saferlink socket");
    if (m == nullptr || BIO_meth_set_write(m, bio_write) != 1 ||
        BIO_meth_set_read(m, bio_read) != 1 || BIO_meth_set_ctrl(m, bio_ctrl) != 1 ||
        BIO_meth_set_create(m, bio_create) != 1) {
      throw TlsError("cannot make the socket BIO");
    }
    return m;
  }();
  return method;
}

}  // namespace

void TlsSocket::SslFree::operator()(SSL* ssl) const { SSL_free(ssl); }

TlsSocket::TlsSocket(Socket socket, asio::ssl::context& context)
    : socket_(std::move(socket)), ssl_(SSL_new(context.native_handle())) {
  if (!ssl_) throw TlsError("cannot make a TLS session (out of memory?)");
}

void TlsSocket::verify_host(const std::string& host) {
  error_code not_ip;
  asio::ip::make_address(host, not_ip);
  const int named = not_ip ? SSL_set1_host(ssl_.get(), host.c_str())
                           : X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()),
                                                           host.c_str());
  if (named != 1) throw TlsError("cannot check the hub's name " + host);
}

error_code TlsSocket::classify(int result, bool* wait_read, bool* wait_write) {
  const int saved_errno = errno;
  switch (SSL_get_error(ssl_.get(), result)) {
    case SSL_ERROR_WANT_READ:
      *wait_read = true;
      return {};
    case SSL_ERROR_WANT_WRITE:
      *wait_write = true;
      return {};
    case SSL_ERROR_ZERO_RETURN:  // close_notify
      return asio::error::eof;
    case SSL_ERROR_SYSCALL: {
      const unsigned long queued = ERR_get_error();
      ERR_clear_error();
      if (queued != 0) return ssl_error(queued);
      if (saved_errno != 0) return error_code(saved_errno, asio::error::get_system_category());
      return asio::ssl::error::stream_truncated;  // EOF without close_notify
    }
    case SSL_ERROR_SSL: {
      const unsigned long queued = ERR_get_error();
      ERR_clear_error();
      if (ERR_GET_LIB(queued) == ERR_LIB_SSL &&
          ERR_GET_REASON(queued) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        return asio::ssl::error::stream_truncated;
      }
      return ssl_error(queued);
    }
    default:
      ERR_clear_error();
      return asio::error::fault;
  }
}

awaitable<error_code> TlsSocket::wait(bool for_read) {
  auto [ec] = co_await socket_.async_wait(
      for_read ? Socket::wait_read : Socket::wait_write, asio::as_tuple(use_awaitable));
  co_return ec;
}

awaitable<error_code> TlsSocket::wait_to_retry(int result) {
  bool want_read = false;
  bool want_write = false;
  const error_code failed = classify(result, &want_read, &want_write);
  if (failed) co_return failed;
  co_return co_await wait(want_read);
}

awaitable<error_code> TlsSocket::handshake(asio::ssl::stream_base::handshake_type type) {
  if (!socket_.is_open()) co_return asio::error::bad_descriptor;
  if (!attached_) {
    error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) co_return ec;
    ERR_clear_error();
    BIO* bio = BIO_new(socket_method());
    if (bio == nullptr) co_return ssl_error(ERR_get_error());
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(socket_.native_handle())));
    SSL_set_bio(ssl_.get(), bio, bio);  // one reference, now the SSL's
    if (type == asio::ssl::stream_base::client) {
      SSL_set_connect_state(ssl_.get());
    } else {
      SSL_set_accept_state(ssl_.get());
    }
    attached_ = true;
  }
  for (;;) {
    if (!socket_.is_open()) co_return asio::error::operation_aborted;
    ERR_clear_error();
    errno = 0;
    const int r = SSL_do_handshake(ssl_.get());
    if (r == 1) co_return error_code{};
    const error_code failed = co_await wait_to_retry(r);
    if (failed) co_return failed;
  }
}

TlsSocket::Step TlsSocket::io_step(bool writing, char* data, std::size_t size) {
  Step step;
  if (!socket_.is_open() || !attached_) {
    step.error = asio::error::operation_aborted;
    return step;
  }
  ERR_clear_error();
  errno = 0;
  const int done = writing ? SSL_write_ex(ssl_.get(), data, size, &step.bytes)
                           : SSL_read_ex(ssl_.get(), data, size, &step.bytes);
  if (done == 1) return step;
  step.bytes = 0;
  bool want_read = false;
  bool want_write = false;
  step.error = classify(0, &want_read, &want_write);
  if (!step.error) step.wait = want_read ? Step::Wait::read : Step::Wait::write;
  return step;
}

TlsSocket::Step TlsSocket::read_now(char* data, std::size_t size) {
  return io_step(false, data, size);
}

TlsSocket::Step TlsSocket::write_now(const char* data, std::size_t size) {
  return io_step(true, const_cast<char*>(data), size);  // SSL_write_ex only reads it
}

char* TlsSocket::shared_read_buffer() {
  thread_local std::array<char, kSharedReadBytes> shared;
  return shared.data();
}

awaitable<error_code> TlsSocket::wait_for(Step::Wait what) {
  return wait(what == Step::Wait::read);
}

awaitable<std::pair<error_code, std::size_t>> TlsSocket::read_some(char* data, std::size_t size) {
  for (;;) {
    const Step step = read_now(data, size);
    if (step.wait == Step::Wait::none) {
      co_return std::pair<error_code, std::size_t>(step.error, step.bytes);
    }
    const error_code waited = co_await wait_for(step.wait);
    if (waited) co_return std::pair<error_code, std::size_t>(waited, 0);
  }
}

awaitable<std::pair<error_code, std::string_view>> TlsSocket::read_some_shared() {
  for (;;) {
    // The buffer of the thread running now: after a wait this may be another thread.
    char* const buffer = shared_read_buffer();
    const Step step = read_now(buffer, kSharedReadBytes);
    if (step.wait == Step::Wait::none) {
      co_return std::pair<error_code, std::string_view>(step.error,
                                                        std::string_view(buffer, step.bytes));
    }
    const error_code waited = co_await wait_for(step.wait);
    if (waited) co_return std::pair<error_code, std::string_view>(waited, std::string_view());
  }
}

awaitable<error_code> TlsSocket::write_all(const char* data, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    const Step step = write_now(data + done, size - done);
    done += step.bytes;
    if (step.wait == Step::Wait::none) {
      if (step.error) co_return step.error;
      continue;
    }
    const error_code waited = co_await wait_for(step.wait);
    if (waited) co_return waited;
  }
  co_return error_code{};
}

void TlsSocket::close() {
  error_code ignored;
  socket_.close(ignored);
}

}  // namespace saferlink
