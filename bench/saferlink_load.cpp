// saferlink_load: the SaferLink side of the benchmarks (bench/README.md, docs/benchmarks.md).
//
// Many simulated handsets and one sender in ONE thread: one io_context, every connection a
// core/connection.hpp `Connection` over core/tls.hpp's client TLS context (TLS 1.3, a client
// certificate per handset), no thread per connection. The same shape as bench/mqtt_load.cpp, so
// the comparison with Mosquitto is between the servers, not the clients.
//
// Modes (--mode), each printing one JSON object on its last stdout line:
//   fanout      the sender presses panic at --rate per second, open loop; every handset answers
//               RecipientStatus(DELIVERED) as a real one does; latency from the intended press
//               time to the LAST handset's receipt, per repetition.
//   throughput  the same, closed loop with --window alerts in flight (an alert is done when
//               every handset has it): deliveries per second.
//   connect     connects --handsets handsets (at most --concurrency handshakes at once), prints
//               READY, then for each of --storms restarts (done by the harness) waits until every
//               handset has dropped and is back on air (Welcome), printing BACK {json}.
//   photo       fan-out as above to the handsets, first without, then while every handset
//               downloads the gallery photo --photo (PhotoRequest windows, protocol.md 5.13).
//   forms       --conns handsets file incident forms, --window in flight each: confirmed/s.
//   query       --coord runs the `prolific` query --reps times: round-trip times.
// Progress goes to stderr.
#include "bench/common.hpp"
#include "core/connection.hpp"
#include "core/envelope.hpp"
#include "core/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <deque>
#include <iostream>
#include <random>
#include <unordered_map>

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace saferlink::bench {
namespace {

struct Options {
  std::string mode;
  std::string hub = "127.0.0.1:7443";
  std::string certs;
  std::size_t handsets = 100;
  std::size_t first = 0;  // index of the first handset (hs-NNNNN)
  std::string sender = "bench-sender";
  std::string coord = "bench-coord-1";
  double rate = 50;
  double seconds = 5;
  double warmup = 1;
  int reps = 3;
  int storms = 1;
  std::size_t window = 32;
  std::size_t concurrency = 512;
  std::size_t conns = 8;
  std::size_t payload = 200;
  std::string photo;
  double timeout = 60;
  double drain = 2;  // seconds to wait after a repetition for its alerts to reach everyone
};

double ms(std::uint64_t ns) { return static_cast<double>(ns) / 1e6; }

std::string handset_id(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "hs-%05zu", i);
  return buf;
}

// A FIFO counting semaphore for one thread: at most `n` connection attempts at once.
class Gate {
 public:
  explicit Gate(std::size_t n) : free_(n) {}
  awaitable<void> acquire() {
    if (free_ > 0) {
      --free_;
      co_return;
    }
    asio::steady_timer wait(co_await asio::this_coro::executor,
                            asio::steady_timer::time_point::max());
    waiters_.push_back(&wait);
    co_await wait.async_wait(asio::as_tuple(use_awaitable));  // the slot is handed over
  }
  void release() {
    if (waiters_.empty()) {
      ++free_;
      return;
    }
    asio::steady_timer* next = waiters_.front();
    waiters_.pop_front();
    next->cancel();
  }

 private:
  std::size_t free_;
  std::deque<asio::steady_timer*> waiters_;
};

struct Device {
  std::string id;
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  std::shared_ptr<Connection> conn;
  std::unique_ptr<asio::steady_timer> welcome_wait;
  bool on_air = false;
  bool dropped = false;       // lost its connection in the current storm
  bool reconnecting = false;
  // Photo download (PhotoRequest windows).
  std::uint64_t photo_have = 0;
  std::uint64_t photo_asked = 0;
  std::uint64_t photo_total = 0;
  bool photo_active = false;
  // Forms in flight and the send time of each (by form id).
  std::unordered_map<std::string, std::int64_t> forms_out;
  std::uint64_t cursor = 0;  // highest alert-lane Envelope.seq received: the resume cursor
  std::uint64_t form_seq = 0;
};

struct AlertTrack {
  std::int64_t intended_ns = 0;
  std::size_t received = 0;
  int phase = 0;  // which histogram it counts in (-1: warm-up, not counted)
};

class Load {
 public:
  Load(asio::io_context& io, Options options) : io_(io), o_(std::move(options)), gate_(o_.concurrency) {
    tls_ = make_client_context(tls_files(o_.certs, o_.sender));
    const auto colon = o_.hub.rfind(':');
    endpoint_ = asio::ip::tcp::endpoint(asio::ip::make_address(o_.hub.substr(0, colon)),
                                        static_cast<std::uint16_t>(std::stoi(o_.hub.substr(colon + 1))));
    host_ = o_.hub.substr(0, colon);
  }

  awaitable<json> run() {
    if (o_.mode == "fanout" || o_.mode == "throughput" || o_.mode == "photo") co_return co_await run_fanout();
    if (o_.mode == "connect") co_return co_await run_connect();
    if (o_.mode == "forms") co_return co_await run_forms();
    if (o_.mode == "query") co_return co_await run_query();
    throw std::runtime_error("unknown --mode " + o_.mode);
  }

 private:
  // ---- devices -------------------------------------------------------------------------------

  std::unique_ptr<Device> make_device(const std::string& id) {
    auto d = std::make_unique<Device>();
    d->id = id;
    const TlsFiles files = tls_files(o_.certs, id);
    FILE* f = std::fopen(files.cert.c_str(), "r");
    if (!f) throw std::runtime_error("cannot read " + files.cert.string());
    d->cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    f = std::fopen(files.key.c_str(), "r");
    if (!f) throw std::runtime_error("cannot read " + files.key.string());
    d->key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    if (!d->cert || !d->key) throw std::runtime_error("cannot parse the certificate of " + id);
    return d;
  }

  void make_handsets(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) handsets_.push_back(make_device(handset_id(o_.first + i)));
  }

  // One attempt: TCP, TLS, hello, welcome. True when on air.
  awaitable<bool> connect_once(Device& d) {
    using namespace asio::experimental::awaitable_operators;
    auto strand = asio::make_strand(io_);
    Connection::Stream stream(asio::ip::tcp::socket(strand), *tls_);
    SSL_use_certificate(stream.native_handle(), d.cert);
    SSL_use_PrivateKey(stream.native_handle(), d.key);
    stream.verify_host(host_);
    asio::steady_timer deadline(strand, 10s);
    auto connected = co_await (stream.lowest_layer().async_connect(endpoint_, asio::as_tuple(use_awaitable)) ||
                               deadline.async_wait(asio::as_tuple(use_awaitable)));
    if (connected.index() == 1 || std::get<0>(std::get<0>(connected))) co_return false;
    boost::system::error_code ignored;
    stream.lowest_layer().set_option(asio::ip::tcp::no_delay(true), ignored);
    auto shaken = co_await (stream.handshake(asio::ssl::stream_base::client) ||
                            deadline.async_wait(asio::as_tuple(use_awaitable)));
    if (shaken.index() == 1 || std::get<0>(shaken)) co_return false;

    Connection::Options copts;
    copts.max_frame_bytes = kMaxResultFrameBytes;
    auto conn = std::make_shared<Connection>(std::move(stream), copts, d.id);
    d.conn = conn;
    d.welcome_wait = std::make_unique<asio::steady_timer>(strand, 10s);
    Device* dp = &d;
    Connection::Handler handler = [this, dp](v1::Envelope&& e) { on_message(*dp, std::move(e)); };
    auto ended = [this, dp, conn](std::exception_ptr) {
      boost::system::error_code ignore;
      conn->stream().lowest_layer().close(ignore);
      if (dp->conn == conn) {
        dp->conn.reset();
        if (dp->welcome_wait) dp->welcome_wait->cancel();
        on_lost(*dp);
      }
    };
    asio::co_spawn(strand, conn->run(std::move(handler)), std::move(ended));

    v1::Envelope hello;
    auto* h = hello.mutable_hello();
    h->set_protocol_version(kProtocolVersion);
    for (const char* c : {"alerts", "forms", "queries", "resume"}) h->add_capabilities(c);
    h->set_resume_cursor(d.cursor);  // a handset that comes back gets what it missed, once
    h->set_software("saferlink_load 0.1.0");
    conn->send(hello);
    co_await d.welcome_wait->async_wait(asio::as_tuple(use_awaitable));
    if (!d.on_air && d.conn == conn) {
      d.conn.reset();
      conn->abort("no welcome in time");
    }
    co_return d.on_air;
  }

  // Connects with the gate held, retrying with jittered exponential backoff (250 ms .. 2 s),
  // the same policy bench/mqtt_load.cpp uses.
  awaitable<void> connect_until_on_air(Device& d, bool initial_jitter) {
    d.reconnecting = true;
    std::chrono::milliseconds backoff = 250ms;
    asio::steady_timer pause(io_);
    if (initial_jitter) {
      pause.expires_after(std::chrono::milliseconds(jitter(500)));
      co_await pause.async_wait(asio::as_tuple(use_awaitable));
    }
    while (!stopping_) {
      co_await gate_.acquire();
      bool ok = false;
      try {
        ok = co_await connect_once(d);
      } catch (const std::exception&) {
        ok = false;
      }
      gate_.release();
      if (ok) break;
      ++failed_attempts_;
      pause.expires_after(std::chrono::milliseconds(jitter(static_cast<int>(backoff.count()))));
      co_await pause.async_wait(asio::as_tuple(use_awaitable));
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, 2000ms);
    }
    d.reconnecting = false;
  }

  int jitter(int up_to_ms) {
    std::uniform_int_distribution<int> dist(0, std::max(0, up_to_ms));
    return dist(rng_);
  }

  void on_lost(Device& d) {
    if (d.on_air && !stopping_) ++drops_;
    if (d.on_air) {
      d.on_air = false;
      --on_air_;
    }
    d.dropped = true;
    if (!d.reconnecting && reconnect_ && !stopping_) {
      Device* dp = &d;
      auto loop = [this, dp]() -> awaitable<void> { co_await connect_until_on_air(*dp, true); };
      asio::co_spawn(io_, loop, asio::detached);
    }
  }

  awaitable<void> sleep(std::chrono::nanoseconds t) {
    asio::steady_timer timer(io_, t);
    co_await timer.async_wait(asio::as_tuple(use_awaitable));
  }

  // Connects every handset (and `extra` devices), at most --concurrency at once; returns the
  // seconds it took.
  awaitable<double> connect_all(std::vector<Device*> devices) {
    const std::int64_t t0 = mono_ns();
    std::size_t done = 0;
    for (Device* d : devices) {
      auto one = [this, d, &done]() -> awaitable<void> {
        co_await connect_until_on_air(*d, false);
        ++done;
      };
      asio::co_spawn(io_, one, asio::detached);
    }
    const auto limit = mono_ns() + static_cast<std::int64_t>(o_.timeout * 1e9);
    while (done < devices.size() && mono_ns() < limit) co_await sleep(5ms);
    if (done < devices.size()) throw std::runtime_error("only " + std::to_string(done) + " of " +
                                                        std::to_string(devices.size()) + " connected");
    co_return static_cast<double>(mono_ns() - t0) / 1e9;
  }

  std::vector<Device*> handset_ptrs() {
    std::vector<Device*> v;
    for (auto& d : handsets_) v.push_back(d.get());
    return v;
  }

  // ---- messages ------------------------------------------------------------------------------

  void on_message(Device& d, v1::Envelope&& e) {
    switch (e.body_case()) {
      case v1::Envelope::kWelcome:
        if (!d.on_air) {
          d.on_air = true;
          ++on_air_;
        }
        if (d.welcome_wait) d.welcome_wait->cancel();
        break;
      case v1::Envelope::kPanic: {
        const std::int64_t now = mono_ns();
        if (e.seq() != 0 && e.seq() <= d.cursor) break;  // a replay of one already received
        d.cursor = std::max(d.cursor, e.seq());
        v1::Envelope status;
        status.mutable_status()->set_alert_id(e.panic().alert_id());
        status.mutable_status()->set_status(v1::DELIVERED);
        d.conn->send(status);
        on_delivery(e.panic().alert_id(), now);
        break;
      }
      case v1::Envelope::kPhotoChunk:
        on_photo_chunk(d, e.photo_chunk());
        break;
      case v1::Envelope::kFormConfirmed: {
        auto it = d.forms_out.find(e.form_confirmed().form_id());
        if (it != d.forms_out.end()) {
          if (measuring_) {
            ++forms_confirmed_;
            form_latency_.record(static_cast<std::uint64_t>(mono_ns() - it->second));
          }
          d.forms_out.erase(it);
          send_form(d);
        }
        break;
      }
      case v1::Envelope::kQueryResult:
        query_done_ = mono_ns();
        query_bytes_ = e.query_result().result_json().size();
        break;
      case v1::Envelope::kAccepted:
        ++accepted_;
        if (e.accepted().recipients() != expected_recipients_) ++recipient_mismatch_;
        break;
      case v1::Envelope::kError:
        ++errors_;
        if (errors_ <= 5) spdlog::warn("{}: error from hub: {}", d.id, e.error().message());
        if (&d == coord_.get()) query_done_ = mono_ns();
        break;
      default:
        break;
    }
  }

  void on_delivery(const std::string& alert_id, std::int64_t now) {
    ++deliveries_;
    if (measuring_) ++deliveries_measured_;
    auto it = alerts_.find(alert_id);
    if (it == alerts_.end()) return;
    AlertTrack& a = it->second;
    if (++a.received < expected_recipients_) return;
    if (a.phase >= 0) latency_[static_cast<std::size_t>(a.phase)].record(static_cast<std::uint64_t>(now - a.intended_ns));
    alerts_.erase(it);
    ++alerts_complete_;
  }

  void press(std::int64_t intended_ns, int phase) {
    v1::Envelope e;
    auto* p = e.mutable_panic();
    const std::uint64_t seq = seq_base_ + ++seq_;
    const std::string alert_id = sender_->id + ":" + std::to_string(seq);
    p->set_alert_id(alert_id);
    p->set_device_seq(seq);
    p->set_status(v1::TEST);
    p->set_note(std::string(note_size_, 'x'));
    alerts_[alert_id] = AlertTrack{intended_ns, 0, phase};
    ++alerts_sent_;
    if (sender_->conn) sender_->conn->send(e);
  }

  // ---- fan-out, throughput, photo ---------------------------------------------------------------

  awaitable<json> run_fanout() {
    make_handsets(o_.handsets);
    sender_ = make_device(o_.sender);
    expected_recipients_ = o_.handsets;
    // The note fills the 200-byte alert: what the panic's fields take besides it is about 40 bytes.
    note_size_ = o_.payload > 40 ? o_.payload - 40 : 0;
    seq_base_ = static_cast<std::uint64_t>(now_ms()) * 1000;
    std::vector<Device*> all = handset_ptrs();
    all.push_back(sender_.get());
    const double connect_s = co_await connect_all(std::move(all));
    spdlog::info("{} handsets and the sender on air in {:.2f} s", o_.handsets, connect_s);
    reconnect_ = true;  // a handset the hub drops comes back and is replayed what it missed

    json reps = json::array();
    if (o_.mode == "throughput") {
      co_await closed_loop(o_.warmup, -1);
      for (int r = 0; r < o_.reps; ++r) {
        latency_[0].reset();
        CpuMeter cpu;
        const std::uint64_t d0 = deliveries_;
        const std::int64_t t0 = mono_ns();
        co_await closed_loop(o_.seconds, 0);
        const double wall = static_cast<double>(mono_ns() - t0) / 1e9;
        const double per_s = static_cast<double>(deliveries_ - d0) / wall;
        spdlog::info("rep {}: {:.0f} deliveries/s", r + 1, per_s);
        reps.push_back(json{{"deliveries_per_s", per_s}, {"deliveries", deliveries_ - d0},
                            {"alerts_per_s", per_s / static_cast<double>(expected_recipients_)},
                            {"latency", summary(latency_[0])}, {"load_cpu", cpu.json()}});
      }
    } else if (o_.mode == "fanout") {
      co_await open_loop(o_.warmup, -1, nullptr);
      co_await drain(2s);
      for (int r = 0; r < o_.reps; ++r) {
        latency_[0].reset();
        CpuMeter cpu;
        const std::uint64_t sent0 = alerts_sent_, done0 = alerts_complete_;
        co_await open_loop(o_.seconds, 0, nullptr);
        co_await drain(std::chrono::milliseconds(static_cast<std::int64_t>(o_.drain * 1000)));
        spdlog::info("rep {}: p50 {:.3f} ms p99 {:.3f} ms max {:.3f} ms", r + 1,
                     ms(latency_[0].quantile(0.5)), ms(latency_[0].quantile(0.99)), ms(latency_[0].max()));
        reps.push_back(json{{"latency", summary(latency_[0])}, {"alerts", alerts_sent_ - sent0},
                            {"complete", alerts_complete_ - done0}, {"load_cpu", cpu.json()}});
      }
    } else {  // photo
      if (o_.photo.empty()) throw std::runtime_error("--mode photo needs --photo SHA256");
      co_await open_loop(o_.warmup, -1, nullptr);
      co_await drain(2s);
      for (int r = 0; r < o_.reps; ++r) {
        latency_[0].reset();
        latency_[1].reset();
        CpuMeter cpu_a;
        co_await open_loop(o_.seconds, 0, nullptr);
        co_await drain(std::chrono::milliseconds(static_cast<std::int64_t>(o_.drain * 1000)));
        json without = json{{"latency", summary(latency_[0])}, {"load_cpu", cpu_a.json()}};
        CpuMeter cpu_b;
        const std::int64_t t0 = mono_ns();
        photos_done_ = 0;
        for (auto& d : handsets_) start_photo(*d);
        bool photo_running = true;
        std::function<bool()> running = [&]() {
          photo_running = photos_done_ < handsets_.size();
          return photo_running && mono_ns() - t0 < static_cast<std::int64_t>(o_.timeout * 1e9);
        };
        co_await open_loop(1e9, 1, &running);
        const double photo_s = static_cast<double>(mono_ns() - t0) / 1e9;
        co_await drain(2s);
        spdlog::info("rep {}: without photo p99 {:.3f} ms, with photo p99 {:.3f} ms ({} alerts), photo to {} handsets in {:.2f} s",
                     r + 1, ms(latency_[0].quantile(0.99)), ms(latency_[1].quantile(0.99)),
                     latency_[1].count(), photos_done_, photo_s);
        reps.push_back(json{{"without", without},
                            {"with", json{{"latency", summary(latency_[1])}, {"load_cpu", cpu_b.json()}}},
                            {"photo_s", photo_s}, {"photos_complete", photos_done_},
                            {"photo_bytes", photo_bytes_}});
        photo_bytes_ = 0;
      }
    }
    stopping_ = true;
    co_return json{{"system", "saferlink"}, {"mode", o_.mode}, {"handsets", o_.handsets},
                   {"connect_s", connect_s}, {"reps", reps}, {"errors", errors_},
                   {"recipient_mismatch", recipient_mismatch_}, {"alerts_incomplete", incomplete_},
                   {"connections_lost", drops_}};
  }

  // Presses at --rate for `seconds` (or while `running` says so), open loop: each press has an
  // intended time and latency counts from it, so a stalled sender cannot hide a stall.
  awaitable<void> open_loop(double seconds, int phase, std::function<bool()>* running) {
    const auto period = static_cast<std::int64_t>(1e9 / o_.rate);
    const std::int64_t t0 = mono_ns();
    const std::int64_t end = t0 + static_cast<std::int64_t>(seconds * 1e9);
    asio::steady_timer timer(io_);
    for (std::int64_t i = 0;; ++i) {
      const std::int64_t intended = t0 + i * period;
      if (running ? !(*running)() : intended >= end) break;
      const std::int64_t wait = intended - mono_ns();
      if (wait > 0) {
        timer.expires_after(std::chrono::nanoseconds(wait));
        co_await timer.async_wait(asio::as_tuple(use_awaitable));
      }
      press(intended, phase);
    }
  }

  // Keeps `window` alerts in flight for `seconds`.
  awaitable<void> closed_loop(double seconds, int phase) {
    const std::int64_t end = mono_ns() + static_cast<std::int64_t>(seconds * 1e9);
    while (mono_ns() < end) {
      while (alerts_.size() < o_.window) press(mono_ns(), phase);
      co_await sleep(200us);
    }
    co_await drain(2s);
  }

  // Waits until every alert pressed so far reached every handset (or `limit` passes).
  awaitable<void> drain(std::chrono::milliseconds limit) {
    const std::int64_t end = mono_ns() + std::chrono::nanoseconds(limit).count();
    while (!alerts_.empty() && mono_ns() < end) co_await sleep(1ms);
    incomplete_ += alerts_.size();
    alerts_.clear();
  }

  void start_photo(Device& d) {
    d.photo_have = d.photo_asked = 0;
    d.photo_total = ~0ull;
    d.photo_active = true;
    request_photo_windows(d);
  }

  static constexpr std::uint64_t kWindow = 256 * 1024;

  // Keeps two windows requested ahead of what has arrived (protocol.md 5.13).
  void request_photo_windows(Device& d) {
    while (d.conn && d.photo_asked < d.photo_total && d.photo_asked < d.photo_have + 2 * kWindow) {
      v1::Envelope e;
      auto* r = e.mutable_photo_request();
      r->set_sha256(o_.photo);
      r->set_offset(d.photo_asked);
      r->set_max_bytes(static_cast<std::uint32_t>(kWindow));
      d.conn->send(e);
      d.photo_asked += kWindow;
    }
  }

  void on_photo_chunk(Device& d, const v1::PhotoChunk& c) {
    if (!d.photo_active || c.offset() != d.photo_have) return;
    d.photo_total = c.total_size();
    d.photo_have += c.data().size();
    photo_bytes_ += c.data().size();
    if (d.photo_have >= d.photo_total) {
      d.photo_active = false;
      ++photos_done_;
      return;
    }
    request_photo_windows(d);
  }

  // ---- connections and reconnect storm ------------------------------------------------------

  awaitable<json> run_connect() {
    make_handsets(o_.handsets);
    CpuMeter cpu;
    std::vector<Device*> all = handset_ptrs();
    const double connect_s = co_await connect_all(std::move(all));
    json connect = json{{"connect_s", connect_s}, {"failed_attempts", failed_attempts_},
                        {"load_cpu", cpu.json()}};
    spdlog::info("{} handsets on air in {:.2f} s", o_.handsets, connect_s);
    reconnect_ = true;
    json storms = json::array();
    for (int s = 0; s < o_.storms; ++s) {
      for (auto& d : handsets_) d->dropped = false;
      failed_attempts_ = 0;
      std::cout << "READY " << connect.dump() << std::endl;
      // Wait for the harness to restart the server: every handset drops, then comes back.
      auto all_dropped = [&] {
        for (auto& d : handsets_) if (!d->dropped) return false;
        return true;
      };
      const std::int64_t wait_until = mono_ns() + static_cast<std::int64_t>(o_.timeout * 1e9);
      while (!all_dropped() && mono_ns() < wait_until) co_await sleep(1ms);
      const std::int64_t dropped_at = mono_ns();
      CpuMeter storm_cpu;
      const std::int64_t back_until = mono_ns() + static_cast<std::int64_t>(o_.timeout * 1e9);
      while (on_air_ < handsets_.size() && mono_ns() < back_until) co_await sleep(1ms);
      const std::int64_t back_at = mono_ns();
      json storm = json{{"all_dropped_mono_ns", dropped_at}, {"all_back_mono_ns", back_at},
                        {"on_air", on_air_}, {"failed_attempts", failed_attempts_},
                        {"load_cpu", storm_cpu.json()}};
      spdlog::info("storm {}: {} on air {:.2f} s after the last drop", s + 1, on_air_,
                   static_cast<double>(back_at - dropped_at) / 1e9);
      std::cout << "BACK " << storm.dump() << std::endl;
      storms.push_back(storm);
    }
    stopping_ = true;
    co_return json{{"system", "saferlink"}, {"mode", "connect"}, {"handsets", o_.handsets},
                   {"connect", connect}, {"storms", storms}};
  }

  // ---- forms ----------------------------------------------------------------------------------

  void send_form(Device& d) {
    if (!d.conn || stopping_) return;
    v1::Envelope e;
    auto* f = e.mutable_form();
    const std::string form_id = "bf-" + std::to_string(seq_base_) + "-" + d.id + "-" + std::to_string(++d.form_seq);
    f->set_form_id(form_id);
    f->set_occurred_at_ms(now_ms() - 60'000);
    f->set_town("chatham");
    f->set_premises("Bench premises, 1 High Street");
    f->set_category("theft_from_shop");
    f->set_description(std::string(300, 'd'));
    f->set_goods("two bottles");
    f->set_value_pence(2599);
    d.forms_out[form_id] = mono_ns();
    d.conn->send(e);
  }

  awaitable<json> run_forms() {
    make_handsets(o_.conns);
    seq_base_ = static_cast<std::uint64_t>(now_ms());
    std::vector<Device*> all = handset_ptrs();
    co_await connect_all(std::move(all));
    auto fill = [&] {
      for (auto& d : handsets_) while (d->forms_out.size() < o_.window) send_form(*d);
    };
    fill();
    co_await sleep(std::chrono::nanoseconds(static_cast<std::int64_t>(o_.warmup * 1e9)));
    json reps = json::array();
    for (int r = 0; r < o_.reps; ++r) {
      form_latency_.reset();
      forms_confirmed_ = 0;
      CpuMeter cpu;
      const std::int64_t t0 = mono_ns();
      measuring_ = true;
      co_await sleep(std::chrono::nanoseconds(static_cast<std::int64_t>(o_.seconds * 1e9)));
      measuring_ = false;
      const double wall = static_cast<double>(mono_ns() - t0) / 1e9;
      const double per_s = static_cast<double>(forms_confirmed_) / wall;
      spdlog::info("rep {}: {:.0f} forms/s confirmed", r + 1, per_s);
      reps.push_back(json{{"forms_per_s", per_s}, {"confirmed", forms_confirmed_},
                          {"latency", summary(form_latency_)}, {"load_cpu", cpu.json()}});
    }
    stopping_ = true;
    co_return json{{"system", "saferlink"}, {"mode", "forms"}, {"conns", o_.conns},
                   {"window", o_.window}, {"reps", reps}, {"errors", errors_}};
  }

  // ---- query ----------------------------------------------------------------------------------

  awaitable<json> run_query() {
    coord_ = make_device(o_.coord);
    std::vector<Device*> all{coord_.get()};
    co_await connect_all(std::move(all));
    Histogram times;
    json each = json::array();
    for (int r = 0; r <= o_.reps; ++r) {  // the first is a warm-up
      v1::Envelope e;
      e.mutable_query()->set_op("prolific");
      e.mutable_query()->set_args_json(R"({"limit":50})");
      query_done_ = 0;
      const std::int64_t t0 = mono_ns();
      coord_->conn->send(e);
      while (query_done_ == 0 && mono_ns() - t0 < static_cast<std::int64_t>(o_.timeout * 1e9)) {
        co_await sleep(100us);
      }
      const std::int64_t took = (query_done_ == 0 ? mono_ns() : query_done_) - t0;
      if (r > 0) {
        times.record(static_cast<std::uint64_t>(took));
        each.push_back(static_cast<double>(took) / 1e6);
      }
      spdlog::info("prolific {}: {:.1f} ms ({} bytes)", r, static_cast<double>(took) / 1e6, query_bytes_);
    }
    stopping_ = true;
    co_return json{{"system", "saferlink"}, {"mode", "query"}, {"op", "prolific"},
                   {"times_ms", each}, {"latency", summary(times)}, {"errors", errors_},
                   {"result_bytes", query_bytes_}};
  }

  asio::io_context& io_;
  Options o_;
  Gate gate_;
  std::shared_ptr<asio::ssl::context> tls_;
  asio::ip::tcp::endpoint endpoint_;
  std::string host_;
  std::mt19937 rng_{std::random_device{}()};
  std::vector<std::unique_ptr<Device>> handsets_;
  std::unique_ptr<Device> sender_;
  std::unique_ptr<Device> coord_;
  bool stopping_ = false;
  bool reconnect_ = false;
  std::size_t on_air_ = 0;
  std::uint64_t failed_attempts_ = 0;
  std::uint64_t drops_ = 0;  // connections lost while measuring (each handset then reconnects)
  std::uint64_t errors_ = 0;
  // Alerts.
  std::unordered_map<std::string, AlertTrack> alerts_;
  std::size_t expected_recipients_ = 0;
  std::size_t note_size_ = 160;
  std::uint64_t seq_base_ = 0;
  std::uint64_t seq_ = 0;
  std::uint64_t alerts_sent_ = 0;
  std::uint64_t alerts_complete_ = 0;
  std::uint64_t incomplete_ = 0;
  std::uint64_t accepted_ = 0;
  std::uint64_t recipient_mismatch_ = 0;
  std::uint64_t deliveries_ = 0;
  std::uint64_t deliveries_measured_ = 0;
  std::array<Histogram, 2> latency_;
  // Photos.
  std::size_t photos_done_ = 0;
  std::uint64_t photo_bytes_ = 0;
  // Forms and queries.
  bool measuring_ = false;
  std::uint64_t forms_confirmed_ = 0;
  Histogram form_latency_;
  std::int64_t query_done_ = 0;
  std::size_t query_bytes_ = 0;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw std::runtime_error("missing value for " + flag);
    const std::string v = argv[++i];
    if (flag == "--mode") o.mode = v;
    else if (flag == "--hub") o.hub = v;
    else if (flag == "--certs") o.certs = v;
    else if (flag == "--handsets") o.handsets = std::stoul(v);
    else if (flag == "--first") o.first = std::stoul(v);
    else if (flag == "--sender") o.sender = v;
    else if (flag == "--coord") o.coord = v;
    else if (flag == "--rate") o.rate = std::stod(v);
    else if (flag == "--seconds") o.seconds = std::stod(v);
    else if (flag == "--warmup") o.warmup = std::stod(v);
    else if (flag == "--reps") o.reps = std::stoi(v);
    else if (flag == "--storms") o.storms = std::stoi(v);
    else if (flag == "--window") o.window = std::stoul(v);
    else if (flag == "--concurrency") o.concurrency = std::stoul(v);
    else if (flag == "--conns") o.conns = std::stoul(v);
    else if (flag == "--payload") o.payload = std::stoul(v);
    else if (flag == "--photo") o.photo = v;
    else if (flag == "--timeout") o.timeout = std::stod(v);
    else if (flag == "--drain") o.drain = std::stod(v);
    else throw std::runtime_error("unknown flag " + flag);
  }
  if (o.mode.empty() || o.certs.empty()) throw std::runtime_error("--mode and --certs are required");
  return o;
}

}  // namespace
}  // namespace saferlink::bench

int main(int argc, char** argv) {
  using namespace saferlink::bench;
  std::signal(SIGPIPE, SIG_IGN);
  // Progress to stderr: stdout carries READY/BACK lines and the final JSON for the harness.
  spdlog::set_default_logger(spdlog::stderr_logger_st("saferlink_load"));
  spdlog::set_pattern("saferlink_load %H:%M:%S.%e %v");
  spdlog::set_level(spdlog::level::info);
  try {
    Options options = parse(argc, argv);
    const std::uint64_t fds = raise_fd_limit(options.handsets + options.conns + 1024);
    asio::io_context io(1);
    Load load(io, options);
    json result;
    std::exception_ptr failure;
    auto main_task = [&]() -> awaitable<void> { result = co_await load.run(); };
    asio::co_spawn(io, main_task, [&](std::exception_ptr e) {
      failure = e;
      io.stop();
    });
    io.run();
    if (failure) std::rethrow_exception(failure);
    result["fd_limit"] = fds;
    std::cout << result.dump() << std::endl;
    std::_Exit(0);  // skip tearing down thousands of connections
  } catch (const std::exception& e) {
    std::cerr << "saferlink_load: " << e.what() << "\n";
    return 1;
  }
}
