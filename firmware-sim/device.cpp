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
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
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

}  // namespace

std::shared_ptr<asio::ssl::context> make_device_tls_context(const std::filesystem::path& ca_file) {
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
struct Device::Session {
  using Stream = asio::ssl::stream<asio::ip::tcp::socket>;
  struct Out {
    Frame frame;
    Priority priority;
    std::int64_t due_ms;
  };
  Session(asio::any_io_executor ex, asio::ssl::context& tls)
      : stream(asio::ip::tcp::socket(ex), tls), wake(ex), decoder(kMaxFrameBytes) {}
  Stream stream;
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
    stream.lowest_layer().close(ignored);
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
  session_ = std::make_shared<Session>(env_.executor, *env_.tls);
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
    SSL* ssl = session->stream.native_handle();
    if (SSL_use_certificate(ssl, credentials_.cert.get()) != 1 ||
        SSL_use_PrivateKey(ssl, credentials_.key.get()) != 1) {
      why = "cannot use the handset certificate";
      throw std::runtime_error(why);
    }
    session->stream.set_verify_callback(asio::ssl::host_name_verification(env_.host));
    auto [cec, endpoint] = co_await asio::async_connect(session->stream.lowest_layer(),
                                                        env_.endpoints,
                                                        asio::as_tuple(use_awaitable));
    if (cec) {
      why = "cannot reach the hub: " + cec.message();
      throw std::runtime_error(why);
    }
    boost::system::error_code ignored;
    session->stream.lowest_layer().set_option(asio::ip::tcp::no_delay(true), ignored);
    auto [hec] = co_await session->stream.async_handshake(asio::ssl::stream_base::client,
                                                          asio::as_tuple(use_awaitable));
    if (hec) {
      why = "TLS handshake failed: " + hec.message();
      throw std::runtime_error(why);
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
    auto [ec, n] = co_await session->stream.async_read_some(asio::buffer(buffer),
                                                            asio::as_tuple(use_awaitable));
    if (ec) {
      session->close();
      throw std::runtime_error("link lost: " + ec.message());
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
  std::vector<asio::const_buffer> buffers;
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
    buffers.clear();
    for (const auto& o : batch) buffers.emplace_back(asio::buffer(*o.frame));
    auto [ec, n] = co_await asio::async_write(session->stream, buffers, asio::as_tuple(use_awaitable));
    if (ec) {
      session->close();
      throw std::runtime_error("link lost: " + ec.message());
    }
  }
}

}  // namespace saferlink::sim
