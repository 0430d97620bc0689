#include "firmware-sim/device.hpp"

#include "core/envelope.hpp"
#include "core/frame.hpp"
#include "firmware-sim/flash_file.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <deque>
#include <limits>

namespace saferlink::sim {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace {

constexpr std::uint32_t kMaxFrameBytes = 1024 * 1024;
constexpr std::int64_t kReleaseExtraMs = 100;

std::chrono::steady_clock::time_point steady_at(std::int64_t wall_ms) {
  const std::int64_t delta = wall_ms - now_ms();
  return std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max<std::int64_t>(delta, 0));
}

// What OpenSSL says went wrong, for a log line.
std::string ssl_failure(SSL* ssl, int error) {
  if (error == SSL_ERROR_ZERO_RETURN) return "closed by the hub";
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
  }
  const unsigned long code = ERR_get_error();
  if (code != 0) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
  }
  if (error == SSL_ERROR_SYSCALL) return "connection reset";
  return "TLS error " + std::to_string(error);
}

}  // namespace

std::shared_ptr<asio::ssl::context> make_device_tls_context(const std::filesystem::path& ca_file) {
  // OpenSSL writes to the sockets itself (Session): a write to a link the hub has just closed
  // must be an error for that link, not SIGPIPE for the whole process.
  std::signal(SIGPIPE, SIG_IGN);
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* native = ctx->native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(native, TLS1_3_VERSION) != 1) {
    throw std::runtime_error("cannot restrict TLS to 1.3");
  }
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // Thousands of idle connections: give OpenSSL's record buffers back while idle.
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  boost::system::error_code ec;
  ctx->load_verify_file(ca_file.string(), ec);
  if (ec) throw std::runtime_error("cannot load CA " + ca_file.string() + ": " + ec.message());
  ctx->set_verify_mode(asio::ssl::verify_peer);
  return ctx;
}

LinkEnv make_link_env(asio::any_io_executor executor, const std::string& hub,
                      const std::filesystem::path& ca_file) {
  const auto colon = hub.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == hub.size()) {
    throw std::runtime_error("--hub must be HOST:PORT, got '" + hub + "'");
  }
  std::string host = hub.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  LinkEnv env;
  env.executor = executor;
  env.tls = make_device_tls_context(ca_file);
  env.host = host;
  asio::ip::tcp::resolver resolver(executor);
  boost::system::error_code ec;
  auto results = resolver.resolve(host, hub.substr(colon + 1), ec);
  if (ec) throw std::runtime_error("cannot resolve hub " + hub + ": " + ec.message());
  for (const auto& entry : results) env.endpoints.push_back(entry.endpoint());
  if (env.endpoints.empty()) throw std::runtime_error("hub " + hub + " resolves to nothing");
  return env;
}

// One connection attempt and, once it is up, the link. Owned by the device (while current) and
// by its coroutines (until they end).
//
// TLS runs directly on the socket (SSL_set_fd, non-blocking, waiting with async_wait), not
// through asio::ssl::stream: the stream keeps two 17 KiB buffers and a 2 x 17 KiB BIO pair
// per connection for its whole life, which for ten thousand idle handsets is most of the
// memory. With SSL_MODE_RELEASE_BUFFERS an idle link then holds only OpenSSL's own state.
// The SSL object is made after the TCP connection is up, so a dial the hub refuses (a hub
// restarting under ten thousand handsets) costs a socket and nothing else.
// Never call SSL_* once `closed`: the descriptor may already belong to another socket.
struct Device::Session {
  struct Out {
    Frame frame;
    Priority priority;
    std::int64_t due_ms;
  };
  struct SslFree {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
  };
  explicit Session(asio::any_io_executor ex) : socket(ex), wake(ex), decoder(kMaxFrameBytes) {}
  asio::ip::tcp::socket socket;
  std::unique_ptr<SSL, SslFree> ssl;
  asio::steady_timer wake;  // the writer sleeps on it
  std::deque<Out> out;
  FrameDecoder decoder;
  std::int64_t last_out_due = 0;
  std::int64_t last_in_due = 0;
  bool hung_up = false;      // the device ended it: report nothing more to the handset
  bool closed = false;       // the socket is closed (hung up, broken or cut by a drop-out)
  void close() {
    closed = true;
    boost::system::error_code ignored;
    socket.close(ignored);
    wake.cancel();
  }
};

Device::Device(LinkEnv& env, Credentials credentials, HandsetConfig config, Flash flash,
               LinkProfile link, DeviceObserver* observer, std::size_t index,
               std::optional<std::filesystem::path> flash_file)
    : env_(env),
      credentials_(std::move(credentials)),
      handset_(std::move(config), std::move(flash)),
      link_(link),
      observer_(observer),
      index_(index),
      flash_file_(std::move(flash_file)),
      timer_(env.executor),
      rng_(handset_.config().seed ^ 0x9e3779b97f4a7c15ULL) {}

Device::~Device() = default;

void Device::shutdown() {
  shut_ = true;
  timer_.cancel();
  if (session_) {
    session_->hung_up = true;
    session_->close();
  }
  session_.reset();
}

void Device::power_on() { apply(handset_.power_on(now_ms())); }
void Device::power_off() { apply(handset_.power_off(now_ms())); }
void Device::button(bool down) { apply(handset_.button(now_ms(), down)); }
void Device::sighting(const std::string& text) { apply(handset_.sighting(now_ms(), text)); }
void Device::charge(double percent) { apply(handset_.charge(now_ms(), percent)); }
void Device::set_signal(int bars) { apply(handset_.set_signal(now_ms(), bars)); }

void Device::press() {
  if (handset_.button_held()) return;
  release_at_ = now_ms() + handset_.config().hold_ms + kReleaseExtraMs;
  button(true);
}

void Device::dropout(std::int64_t duration_ms) {
  no_coverage_until_ = std::max(no_coverage_until_, now_ms() + duration_ms);
  if (session_ && !session_->closed) {
    // The radio link is gone: the socket dies under the handset, which notices by itself.
    session_->close();
  }
}

void Device::set_coverage(bool on) {
  if (on) {
    no_coverage_until_ = 0;
    return;
  }
  dropout(std::int64_t{365} * 24 * 3600 * 1000);
}

void Device::respond(const std::string& alert_id, v1::RecipientStatusKind status) {
  apply(handset_.respond(now_ms(), alert_id, status));
}

void Device::stall(std::int64_t duration_ms) {
  stalled_until_ = std::max(stalled_until_, now_ms() + duration_ms);
}

std::int64_t Device::delay_ms() {
  if (link_.latency_ms <= 0 && link_.jitter_ms <= 0) return 0;
  std::uniform_real_distribution<double> jitter(0.0, std::max(link_.jitter_ms, 0.0));
  return static_cast<std::int64_t>(link_.latency_ms + jitter(rng_));
}

void Device::apply(Actions actions) {
  if (shut_) return;
  for (Action& a : actions) {
    switch (a.kind) {
      case Action::Kind::send: {
        if (!session_ || session_->closed) break;  // the link went meanwhile
        const Priority p = priority_of(a.message);
        Frame frame = encode(a.message);
        const std::int64_t now = now_ms();
        std::int64_t due = now + delay_ms();
        due = std::max(due, session_->last_out_due);
        session_->last_out_due = due;
        session_->out.push_back(Session::Out{std::move(frame), p, due});
        session_->wake.cancel();
        break;
      }
      case Action::Kind::dial:
        start_session();
        break;
      case Action::Kind::hang_up:
        hang_up();
        break;
      case Action::Kind::save_flash:
        if (flash_file_) {
          try {
            write_flash_file(*flash_file_, handset_.flash());
          } catch (const std::exception& e) {
            spdlog::error("{}: {}", id(), e.what());
          }
        }
        break;
      case Action::Kind::event:
        if (a.event == Action::Event::link_online) ever_online_ = true;
        if (observer_) observer_->on_event(*this, a);
        break;
    }
  }
  rearm();
}

void Device::rearm() {
  if (shut_) return;
  std::int64_t wake = handset_.next_wakeup();
  if (release_at_ != 0) wake = std::min(wake, release_at_);
  if (wake == std::numeric_limits<std::int64_t>::max()) {
    if (armed_for_ != 0) timer_.cancel();
    armed_for_ = 0;
    return;
  }
  if (armed_for_ == wake) return;
  armed_for_ = wake;
  timer_.expires_at(steady_at(wake));
  auto self = weak_from_this();
  timer_.async_wait([self, wake](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto device = self.lock(); device && device->armed_for_ == wake) {
      device->armed_for_ = 0;
      device->on_timer();
    }
  });
}

void Device::on_timer() {
  const std::int64_t now = now_ms();
  if (release_at_ != 0 && now >= release_at_) {
    release_at_ = 0;
    Actions actions = handset_.tick(now);  // the long press fires at hold_ms, before the release
    Actions up = handset_.button(now, false);
    actions.insert(actions.end(), up.begin(), up.end());
    apply(std::move(actions));
    return;
  }
  apply(handset_.tick(now));
}

void Device::hang_up() {
  if (session_) {
    session_->hung_up = true;
    session_->close();
  }
  session_.reset();
}

void Device::start_session() {
  hang_up();
  session_ = std::make_shared<Session>(env_.executor);
  asio::co_spawn(env_.executor, run_session(session_), asio::detached);
}

awaitable<void> Device::run_session(std::shared_ptr<Session> session) {
  using namespace asio::experimental::awaitable_operators;
  auto self = shared_from_this();
  std::string why = "link closed";
  bool was_up = false;
  try {
    if (now_ms() < no_coverage_until_) {
      why = "no coverage (drop-out)";
      throw std::runtime_error(why);
    }
    auto [cec, endpoint] = co_await asio::async_connect(session->socket, env_.endpoints,
                                                        asio::as_tuple(use_awaitable));
    if (cec) {
      why = "cannot reach the hub: " + cec.message();
      throw std::runtime_error(why);
    }
    if (session->closed) throw std::runtime_error("link closed");
    boost::system::error_code ignored;
    session->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    session->socket.non_blocking(true, ignored);
    session->ssl.reset(SSL_new(env_.tls->native_handle()));
    SSL* ssl = session->ssl.get();
    if (ssl == nullptr || SSL_use_certificate(ssl, credentials_.cert.get()) != 1 ||
        SSL_use_PrivateKey(ssl, credentials_.key.get()) != 1 ||
        SSL_set_fd(ssl, session->socket.native_handle()) != 1) {
      why = "cannot use the handset certificate";
      throw std::runtime_error(why);
    }
    // The hub's certificate must name the host dialled (an IP address or a DNS name).
    boost::system::error_code not_ip;
    asio::ip::make_address(env_.host, not_ip);
    const int named = not_ip ? SSL_set1_host(ssl, env_.host.c_str())
                             : X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), env_.host.c_str());
    if (named != 1) {
      why = "cannot check the hub's name " + env_.host;
      throw std::runtime_error(why);
    }
    SSL_set_connect_state(ssl);
    for (;;) {
      if (session->closed) throw std::runtime_error("link closed");
      ERR_clear_error();
      const int r = SSL_do_handshake(ssl);
      if (r == 1) break;
      const int error = SSL_get_error(ssl, r);
      if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
        why = "TLS handshake failed: " + ssl_failure(ssl, error);
        throw std::runtime_error(why);
      }
      auto [wec] = co_await session->socket.async_wait(
          error == SSL_ERROR_WANT_READ ? asio::socket_base::wait_read
                                       : asio::socket_base::wait_write,
          asio::as_tuple(use_awaitable));
      if (wec) {
        why = "TLS handshake failed: " + wec.message();
        throw std::runtime_error(why);
      }
    }
    if (session->closed) throw std::runtime_error("link closed");
    was_up = true;
    apply(handset_.on_link_up(now_ms()));
    co_await (reader(session) || writer(session));
  } catch (const std::exception& e) {
    if (why == "link closed") why = e.what();
  }
  (void)was_up;
  const bool report = !session->hung_up && session_ == session && !shut_;
  session->close();
  if (report) {
    session_.reset();
    apply(handset_.on_link_down(now_ms(), why));
  }
}

awaitable<void> Device::reader(std::shared_ptr<Session> session) {
  std::array<char, 2048> buffer{};
  asio::steady_timer wait(env_.executor);
  for (;;) {
    while (now_ms() < stalled_until_ && !session->closed) {
      wait.expires_at(steady_at(stalled_until_));
      co_await wait.async_wait(asio::as_tuple(use_awaitable));
    }
    if (session->closed) throw std::runtime_error("link closed");
    ERR_clear_error();
    std::size_t n = 0;
    const int r = SSL_read_ex(session->ssl.get(), buffer.data(), buffer.size(), &n);
    if (r != 1) {
      const int error = SSL_get_error(session->ssl.get(), r);
      if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
        auto [ec] = co_await session->socket.async_wait(
            error == SSL_ERROR_WANT_READ ? asio::socket_base::wait_read
                                         : asio::socket_base::wait_write,
            asio::as_tuple(use_awaitable));
        if (ec) {
          session->close();
          throw std::runtime_error("link lost: " + ec.message());
        }
        continue;
      }
      const std::string what = ssl_failure(session->ssl.get(), error);
      session->close();
      throw std::runtime_error("link lost: " + what);
    }
    session->decoder.feed(buffer.data(), n);
    for (;;) {
      const auto status = session->decoder.next();
      if (status == FrameDecoder::Status::need_more) break;
      if (status == FrameDecoder::Status::too_large) {
        session->close();
        throw std::runtime_error("frame from the hub over the cap");
      }
      if (status == FrameDecoder::Status::empty) continue;
      v1::Envelope envelope;
      if (!envelope.ParseFromArray(session->decoder.body().data(),
                                   static_cast<int>(session->decoder.body().size()))) {
        continue;  // a frame this firmware cannot read is ignored
      }
      const std::int64_t delay = delay_ms();
      if (delay > 0) {
        const std::int64_t due = std::max(now_ms() + delay, session->last_in_due);
        session->last_in_due = due;
        wait.expires_at(steady_at(due));
        co_await wait.async_wait(asio::as_tuple(use_awaitable));
      }
      if (session->closed) throw std::runtime_error("link closed");
      apply(handset_.on_message(now_ms(), envelope));
      if (session->closed) throw std::runtime_error("link closed");
    }
  }
}

awaitable<void> Device::writer(std::shared_ptr<Session> session) {
  std::vector<Session::Out> batch;
  std::string bytes;
  for (;;) {
    if (session->closed) throw std::runtime_error("link closed");
    if (session->out.empty()) {
      session->wake.expires_at(asio::steady_timer::time_point::max());
      co_await session->wake.async_wait(asio::as_tuple(use_awaitable));
      continue;
    }
    const std::int64_t now = now_ms();
    if (session->out.front().due_ms > now) {
      session->wake.expires_at(steady_at(session->out.front().due_ms));
      co_await session->wake.async_wait(asio::as_tuple(use_awaitable));
      continue;
    }
    batch.clear();
    while (!session->out.empty() && session->out.front().due_ms <= now) {
      batch.push_back(std::move(session->out.front()));
      session->out.pop_front();
    }
    std::stable_sort(batch.begin(), batch.end(), [](const Session::Out& a, const Session::Out& b) {
      return static_cast<int>(a.priority) < static_cast<int>(b.priority);
    });
    bytes.clear();
    for (const auto& o : batch) bytes.append(*o.frame);
    batch.clear();
    // SSL_write_ex writes it all or asks to be called again with the same bytes.
    for (std::size_t done = 0; done < bytes.size();) {
      if (session->closed) throw std::runtime_error("link closed");
      ERR_clear_error();
      std::size_t n = 0;
      const int r = SSL_write_ex(session->ssl.get(), bytes.data() + done, bytes.size() - done, &n);
      if (r == 1) {
        done += n;
        continue;
      }
      const int error = SSL_get_error(session->ssl.get(), r);
      if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
        const std::string what = ssl_failure(session->ssl.get(), error);
        session->close();
        throw std::runtime_error("link lost: " + what);
      }
      auto [ec] = co_await session->socket.async_wait(
          error == SSL_ERROR_WANT_READ ? asio::socket_base::wait_read
                                       : asio::socket_base::wait_write,
          asio::as_tuple(use_awaitable));
      if (ec) {
        session->close();
        throw std::runtime_error("link lost: " + ec.message());
      }
    }
    if (bytes.capacity() > 64 * 1024) std::string().swap(bytes);  // a photo request burst
  }
}

}  // namespace saferlink::sim
