// mqtt_load: the Mosquitto side of the benchmarks, the counterpart of bench/saferlink_load.cpp.
//
// Many MQTT clients (libmosquitto) and one publisher in ONE thread: every socket non-blocking in
// one epoll loop, driven with mosquitto_loop_read/_write/_misc; no library threads. Each client
// has its own TLS 1.3 context with its own certificate (prepared once, like saferlink_load's
// per-connection certificates), verifies the broker against the CA and its IP address, and sets
// TCP_NODELAY. Handsets subscribe with QoS 1 to `alerts` (and `photo`); the publisher sends at
// QoS 1. "On air" means the SUBACK arrived (the SaferLink side counts the Welcome), so both
// count a handset once it can receive an alert.
//
// Modes and output: as saferlink_load (fanout, throughput, connect, photo). The photo is one
// QoS 1 message of --photo-bytes to `photo`. The payload of an alert starts with its index and
// its intended send time, padded to --payload bytes.
#include "bench/common.hpp"

#include <mosquitto.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/epoll.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

using json = nlohmann::json;

namespace saferlink::bench {
namespace {

struct Options {
  std::string mode;
  std::string host = "127.0.0.1";
  int port = 8883;
  std::string certs;
  std::size_t handsets = 100;
  std::size_t first = 0;
  std::string sender = "bench-sender";
  double rate = 50;
  double seconds = 5;
  double warmup = 1;
  int reps = 3;
  int storms = 1;
  std::size_t window = 32;
  std::size_t concurrency = 512;
  std::size_t payload = 200;
  std::size_t photo_bytes = 0;
  double timeout = 60;
  double drain = 2;  // seconds to wait after a repetition for its alerts to reach everyone
};

double ms(std::uint64_t ns) { return static_cast<double>(ns) / 1e6; }

std::string handset_id(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "hs-%05zu", i);
  return buf;
}

struct Client {
  std::string id;
  mosquitto* m = nullptr;
  SSL_CTX* ctx = nullptr;
  int fd = -1;
  bool attempting = false;  // holds a connection slot
  bool on_air = false;
  bool dropped = false;
  bool sender = false;
  bool started = false;
  std::int64_t attempt_started = 0;  // connect_async done once; later attempts reconnect
  int backoff_ms = 250;
  std::uint32_t events = 0;
  bool photo_pending = false;
};

class Load;
Load* g_load = nullptr;

class Load {
 public:
  explicit Load(Options o) : o_(std::move(o)) {
    ep_ = epoll_create1(0);
    store_ = X509_STORE_new();
    const std::string ca = o_.certs + "/ca.crt";
    if (X509_STORE_load_file(store_, ca.c_str()) != 1) throw std::runtime_error("cannot load " + ca);
  }

  json run() {
    if (o_.mode == "fanout" || o_.mode == "throughput" || o_.mode == "photo") return run_fanout();
    if (o_.mode == "connect") return run_connect();
    throw std::runtime_error("unknown --mode " + o_.mode);
  }

  // ---- libmosquitto callbacks (called from inside loop_read/loop_write, on this thread) ----

  void on_connect(Client& c, int rc) {
    if (rc != 0) return;
    if (c.sender) {
      mark_on_air(c);
      return;
    }
    const char* topics[] = {"alerts", "photo"};
    char* subs[2] = {const_cast<char*>(topics[0]), const_cast<char*>(topics[1])};
    mosquitto_subscribe_multiple(c.m, nullptr, 2, subs, 1, 0, nullptr);
  }
  void on_subscribe(Client& c) { mark_on_air(c); }
  void on_disconnect(Client& c) { lost(c); }
  void on_publish(Client&) {
    if (inflight_ > 0) --inflight_;
  }
  void on_message(Client& c, const mosquitto_message* msg) {
    const std::int64_t now = mono_ns();
    if (msg->topic[0] == 'p') {
      if (c.photo_pending) {
        c.photo_pending = false;
        ++photos_done_;
        photo_bytes_ += static_cast<std::uint64_t>(msg->payloadlen);
      }
      return;
    }
    if (msg->payloadlen < 16) return;
    std::uint64_t index = 0;
    std::int64_t intended = 0;
    std::memcpy(&index, msg->payload, 8);
    std::memcpy(&intended, static_cast<const char*>(msg->payload) + 8, 8);
    ++deliveries_;
    auto it = alerts_.find(index);
    if (it == alerts_.end()) return;
    if (++it->second.received < o_.handsets) return;
    if (it->second.phase >= 0) {
      latency_[static_cast<std::size_t>(it->second.phase)].record(static_cast<std::uint64_t>(now - intended));
    }
    alerts_.erase(it);
    ++alerts_complete_;
  }

 private:
  struct AlertTrack {
    std::size_t received = 0;
    int phase = 0;
  };

  // ---- clients ----------------------------------------------------------------------------------

  SSL_CTX* make_ctx(const std::string& id) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    X509_STORE_up_ref(store_);
    SSL_CTX_set_cert_store(ctx, store_);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx), o_.host.c_str());
    const std::string cert = o_.certs + "/issued/" + id + ".crt";
    const std::string key = o_.certs + "/issued/" + id + ".key";
    if (SSL_CTX_use_certificate_file(ctx, cert.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
      throw std::runtime_error("cannot load the certificate of " + id);
    }
    return ctx;
  }

  std::unique_ptr<Client> make_client(const std::string& id, bool sender) {
    auto c = std::make_unique<Client>();
    c->id = id;
    c->sender = sender;
    c->ctx = make_ctx(id);
    c->m = mosquitto_new(id.c_str(), true, c.get());
    if (!c->m) throw std::runtime_error("mosquitto_new failed");
    mosquitto_int_option(c->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_int_option(c->m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_void_option(c->m, MOSQ_OPT_SSL_CTX, c->ctx);
    mosquitto_int_option(c->m, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
    if (sender) mosquitto_max_inflight_messages_set(c->m, 0);  // the bench keeps its own window
    mosquitto_connect_callback_set(c->m, [](mosquitto*, void* obj, int rc) {
      g_load->on_connect(*static_cast<Client*>(obj), rc);
    });
    mosquitto_subscribe_callback_set(c->m, [](mosquitto*, void* obj, int, int, const int*) {
      g_load->on_subscribe(*static_cast<Client*>(obj));
    });
    mosquitto_disconnect_callback_set(c->m, [](mosquitto*, void* obj, int) {
      g_load->on_disconnect(*static_cast<Client*>(obj));
    });
    mosquitto_publish_callback_set(c->m, [](mosquitto*, void* obj, int) {
      g_load->on_publish(*static_cast<Client*>(obj));
    });
    mosquitto_message_callback_set(c->m, [](mosquitto*, void* obj, const mosquitto_message* msg) {
      g_load->on_message(*static_cast<Client*>(obj), msg);
    });
    return c;
  }

  int jitter(int up_to_ms) {
    std::uniform_int_distribution<int> dist(0, std::max(0, up_to_ms));
    return dist(rng_);
  }

  void mark_on_air(Client& c) {
    if (c.on_air) return;
    c.on_air = true;
    ++on_air_;
    c.backoff_ms = 250;
    release_slot(c);
  }

  void release_slot(Client& c) {
    if (!c.attempting) return;
    c.attempting = false;
    --attempts_;
  }

  void unwatch(Client& c) {
    if (c.fd >= 0) {
      epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
      c.fd = -1;
      c.events = 0;
    }
  }

  // The connection is gone (or an attempt failed): retry after a jittered backoff.
  void lost(Client& c) {
    if (c.on_air && !stopping_ && mode_measures_) ++drops_;
    unwatch(c);
    if (c.on_air) {
      c.on_air = false;
      --on_air_;
    }
    c.dropped = true;
    if (c.attempting) {
      release_slot(c);
      ++failed_attempts_;
      schedule(c, jitter(c.backoff_ms));
      c.backoff_ms = std::min(c.backoff_ms * 2, 2000);
    } else {
      schedule(c, jitter(500));
    }
  }

  void schedule(Client& c, int delay_ms) {
    if (stopping_ || !reconnect_) return;
    retries_.emplace(mono_ns() + std::int64_t{delay_ms} * 1'000'000, &c);
  }

  // Starts one attempt; the slot is held until SUBACK (or failure).
  void attempt(Client& c) {
    c.attempting = true;
    c.attempt_started = mono_ns();
    ++attempts_;
    const int rc = c.started ? mosquitto_reconnect_async(c.m)
                             : mosquitto_connect_async(c.m, o_.host.c_str(), o_.port, 60);
    c.started = true;
    if (rc != MOSQ_ERR_SUCCESS) {
      lost(c);
      return;
    }
    watch(c);
  }

  void watch(Client& c) {
    const int fd = mosquitto_socket(c.m);
    if (fd < 0) {
      lost(c);
      return;
    }
    if (c.fd != fd) {
      unwatch(c);
      c.fd = fd;
      c.events = EPOLLIN | EPOLLOUT;
      epoll_event ev{};
      ev.events = c.events;
      ev.data.ptr = &c;
      epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    }
  }

  // Keeps EPOLLOUT interest only while libmosquitto has something to write (or is connecting).
  void update_interest(Client& c) {
    if (c.fd < 0) return;
    const bool out = !c.on_air || mosquitto_want_write(c.m);
    const std::uint32_t events = EPOLLIN | (out ? EPOLLOUT : 0u);
    if (events == c.events) return;
    c.events = events;
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = &c;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  // One turn of the loop: start due attempts, wait for events up to `max_wait_ms`, serve them.
  void turn(int max_wait_ms) {
    const std::int64_t now = mono_ns();
    while (!retries_.empty() && retries_.begin()->first <= now && attempts_ < o_.concurrency) {
      Client* c = retries_.begin()->second;
      retries_.erase(retries_.begin());
      if (!c->on_air && !c->attempting) attempt(*c);
    }
    while (!pending_.empty() && attempts_ < o_.concurrency) {
      Client* c = pending_.front();
      pending_.pop_front();
      attempt(*c);
    }
    if (now - last_misc_ > 1'000'000'000) {
      last_misc_ = now;
      for (auto& c : clients_) {
        if (c->attempting && now - c->attempt_started > 10'000'000'000) lost(*c);  // stuck attempt
      }
      for (auto& c : clients_) if (c->on_air) mosquitto_loop_misc(c->m);
      if (sender_ && sender_->on_air) mosquitto_loop_misc(sender_->m);
    }
    int wait = max_wait_ms;
    if (!retries_.empty()) {
      const auto until = (retries_.begin()->first - now) / 1'000'000;
      wait = static_cast<int>(std::clamp<std::int64_t>(until, 0, wait));
    }
    epoll_event events[512];
    const int n = epoll_wait(ep_, events, 512, wait);
    for (int i = 0; i < n; ++i) {
      Client& c = *static_cast<Client*>(events[i].data.ptr);
      if (c.fd < 0) continue;
      if (c.attempting && !c.on_air && (events[i].events & (EPOLLERR | EPOLLHUP))) {
        // libmosquitto 2.0.11 does not report a refused non-blocking connect from
        // loop_read/loop_write; the socket says so. The next attempt closes it.
        lost(c);
        continue;
      }
      int rc = MOSQ_ERR_SUCCESS;
      if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) rc = mosquitto_loop_read(c.m, 1);
      if (rc == MOSQ_ERR_SUCCESS && c.fd >= 0 && (events[i].events & EPOLLOUT || !c.on_air)) {
        rc = mosquitto_loop_write(c.m, 1);
        // While the TLS handshake is under way, libmosquitto continues it from loop_read.
        if (rc == MOSQ_ERR_SUCCESS && !c.on_air) rc = mosquitto_loop_read(c.m, 1);
      }
      if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_CONN_PENDING) {
        if (c.fd >= 0 || c.attempting) lost(c);
        continue;
      }
      if (c.fd >= 0 && mosquitto_socket(c.m) != c.fd) watch(c);
      update_interest(c);
    }
    if (sender_ && sender_->fd >= 0) update_interest(*sender_);
  }

  void run_for(double seconds) {
    const std::int64_t end = mono_ns() + static_cast<std::int64_t>(seconds * 1e9);
    while (mono_ns() < end) turn(1);
  }

  double connect_all(std::vector<Client*> all) {
    const std::int64_t t0 = mono_ns();
    reconnect_ = true;  // failed attempts are retried with backoff
    for (Client* c : all) pending_.push_back(c);
    const std::int64_t limit = t0 + static_cast<std::int64_t>(o_.timeout * 1e9);
    while (on_air_ < all.size() && mono_ns() < limit) turn(1);
    if (on_air_ < all.size()) {
      throw std::runtime_error("only " + std::to_string(on_air_) + " of " + std::to_string(all.size()) + " connected");
    }
    return static_cast<double>(mono_ns() - t0) / 1e9;
  }

  void press(std::int64_t intended, int phase) {
    std::string payload(o_.payload, 'x');
    const std::uint64_t index = ++seq_;
    std::memcpy(payload.data(), &index, 8);
    std::memcpy(payload.data() + 8, &intended, 8);
    alerts_[index] = AlertTrack{0, phase};
    ++alerts_sent_;
    ++inflight_;
    mosquitto_publish(sender_->m, nullptr, "alerts", static_cast<int>(payload.size()), payload.data(), 1, false);
    update_interest(*sender_);
  }

  void open_loop(double seconds, int phase, const std::function<bool()>* running) {
    const auto period = static_cast<std::int64_t>(1e9 / o_.rate);
    const std::int64_t t0 = mono_ns();
    const std::int64_t end = t0 + static_cast<std::int64_t>(seconds * 1e9);
    for (std::int64_t i = 0;; ++i) {
      const std::int64_t intended = t0 + i * period;
      if (running ? !(*running)() : intended >= end) break;
      while (mono_ns() < intended) turn(static_cast<int>(std::max<std::int64_t>(0, (intended - mono_ns()) / 1'000'000)));
      press(intended, phase);
    }
  }

  void closed_loop(double seconds, int phase) {
    const std::int64_t end = mono_ns() + static_cast<std::int64_t>(seconds * 1e9);
    while (mono_ns() < end) {
      while (alerts_.size() < o_.window) press(mono_ns(), phase);
      turn(1);
    }
    drain(2.0);
  }

  void drain(double seconds) {
    const std::int64_t end = mono_ns() + static_cast<std::int64_t>(seconds * 1e9);
    while (!alerts_.empty() && mono_ns() < end) turn(1);
    incomplete_ += alerts_.size();
    alerts_.clear();
  }

  void make_handsets() {
    for (std::size_t i = 0; i < o_.handsets; ++i) clients_.push_back(make_client(handset_id(o_.first + i), false));
  }

  json run_fanout() {
    make_handsets();
    sender_holder_ = make_client(o_.sender, true);
    sender_ = sender_holder_.get();
    std::vector<Client*> all;
    for (auto& c : clients_) all.push_back(c.get());
    all.push_back(sender_);
    const double connect_s = connect_all(all);
    mode_measures_ = true;
    std::cerr << "mqtt_load: " << o_.handsets << " subscribers and the publisher on air in " << connect_s << " s\n";
    json reps = json::array();
    if (o_.mode == "throughput") {
      closed_loop(o_.warmup, -1);
      for (int r = 0; r < o_.reps; ++r) {
        latency_[0].reset();
        CpuMeter cpu;
        const std::uint64_t d0 = deliveries_;
        const std::int64_t t0 = mono_ns();
        closed_loop(o_.seconds, 0);
        const double wall = static_cast<double>(mono_ns() - t0) / 1e9;
        const double per_s = static_cast<double>(deliveries_ - d0) / wall;
        std::cerr << "mqtt_load: rep " << r + 1 << ": " << per_s << " deliveries/s\n";
        reps.push_back(json{{"deliveries_per_s", per_s}, {"deliveries", deliveries_ - d0},
                            {"alerts_per_s", per_s / static_cast<double>(o_.handsets)},
                            {"latency", summary(latency_[0])}, {"load_cpu", cpu.json()}});
      }
    } else if (o_.mode == "fanout") {
      open_loop(o_.warmup, -1, nullptr);
      drain(2.0);
      for (int r = 0; r < o_.reps; ++r) {
        latency_[0].reset();
        CpuMeter cpu;
        const std::uint64_t sent0 = alerts_sent_, done0 = alerts_complete_;
        open_loop(o_.seconds, 0, nullptr);
        drain(o_.drain);
        std::cerr << "mqtt_load: rep " << r + 1 << ": p99 " << ms(latency_[0].quantile(0.99)) << " ms\n";
        reps.push_back(json{{"latency", summary(latency_[0])}, {"alerts", alerts_sent_ - sent0},
                            {"complete", alerts_complete_ - done0}, {"load_cpu", cpu.json()}});
      }
    } else {  // photo
      if (o_.photo_bytes == 0) throw std::runtime_error("--mode photo needs --photo-bytes N");
      std::string photo(o_.photo_bytes, 'p');
      open_loop(o_.warmup, -1, nullptr);
      drain(2.0);
      for (int r = 0; r < o_.reps; ++r) {
        latency_[0].reset();
        latency_[1].reset();
        CpuMeter cpu_a;
        open_loop(o_.seconds, 0, nullptr);
        drain(2.0);
        json without = json{{"latency", summary(latency_[0])}, {"load_cpu", cpu_a.json()}};
        CpuMeter cpu_b;
        photos_done_ = 0;
        photo_bytes_ = 0;
        for (auto& c : clients_) c->photo_pending = true;
        const std::int64_t t0 = mono_ns();
        ++inflight_;
        mosquitto_publish(sender_->m, nullptr, "photo", static_cast<int>(photo.size()), photo.data(), 1, false);
        update_interest(*sender_);
        std::function<bool()> running = [&] {
          return photos_done_ < clients_.size() && mono_ns() - t0 < static_cast<std::int64_t>(o_.timeout * 1e9);
        };
        open_loop(1e9, 1, &running);
        const double photo_s = static_cast<double>(mono_ns() - t0) / 1e9;
        drain(2.0);
        std::cerr << "mqtt_load: rep " << r + 1 << ": without photo p99 " << ms(latency_[0].quantile(0.99))
                  << " ms, with photo p99 " << ms(latency_[1].quantile(0.99)) << " ms, photo in " << photo_s << " s\n";
        reps.push_back(json{{"without", without},
                            {"with", json{{"latency", summary(latency_[1])}, {"load_cpu", cpu_b.json()}}},
                            {"photo_s", photo_s}, {"photos_complete", photos_done_},
                            {"photo_bytes", photo_bytes_}});
      }
    }
    stopping_ = true;
    return json{{"system", "mosquitto"}, {"mode", o_.mode}, {"handsets", o_.handsets},
                {"connect_s", connect_s}, {"reps", reps}, {"alerts_incomplete", incomplete_},
                {"connections_lost", drops_}};
  }

  json run_connect() {
    make_handsets();
    std::vector<Client*> all;
    for (auto& c : clients_) all.push_back(c.get());
    CpuMeter cpu;
    const double connect_s = connect_all(all);
    json connect = json{{"connect_s", connect_s}, {"failed_attempts", failed_attempts_}, {"load_cpu", cpu.json()}};
    std::cerr << "mqtt_load: " << o_.handsets << " subscribers on air in " << connect_s << " s\n";
    json storms = json::array();
    for (int s = 0; s < o_.storms; ++s) {
      for (auto& c : clients_) c->dropped = false;
      failed_attempts_ = 0;
      std::cout << "READY " << connect.dump() << std::endl;
      auto all_dropped = [&] {
        for (auto& c : clients_) if (!c->dropped) return false;
        return true;
      };
      const std::int64_t wait_until = mono_ns() + static_cast<std::int64_t>(o_.timeout * 1e9);
      while (!all_dropped() && mono_ns() < wait_until) turn(1);
      const std::int64_t dropped_at = mono_ns();
      CpuMeter storm_cpu;
      const std::int64_t back_until = mono_ns() + static_cast<std::int64_t>(o_.timeout * 1e9);
      while (on_air_ < clients_.size() && mono_ns() < back_until) turn(1);
      const std::int64_t back_at = mono_ns();
      for (auto& c : clients_) {
        if (!c->on_air) {
          std::cerr << "mqtt_load: " << c->id << " not back: attempting " << c->attempting << " fd "
                    << c->fd << " socket " << mosquitto_socket(c->m) << " events " << c->events << "\n";
        }
      }
      json storm = json{{"all_dropped_mono_ns", dropped_at}, {"all_back_mono_ns", back_at},
                        {"on_air", on_air_}, {"failed_attempts", failed_attempts_},
                        {"load_cpu", storm_cpu.json()}};
      std::cerr << "mqtt_load: storm " << s + 1 << ": " << on_air_ << " on air "
                << static_cast<double>(back_at - dropped_at) / 1e9 << " s after the last drop\n";
      std::cout << "BACK " << storm.dump() << std::endl;
      storms.push_back(storm);
    }
    stopping_ = true;
    return json{{"system", "mosquitto"}, {"mode", "connect"}, {"handsets", o_.handsets},
                {"connect", connect}, {"storms", storms}};
  }

  Options o_;
  int ep_ = -1;
  X509_STORE* store_ = nullptr;
  std::mt19937 rng_{std::random_device{}()};
  std::vector<std::unique_ptr<Client>> clients_;
  std::unique_ptr<Client> sender_holder_;
  Client* sender_ = nullptr;
  std::deque<Client*> pending_;
  std::multimap<std::int64_t, Client*> retries_;
  std::size_t attempts_ = 0;
  std::size_t on_air_ = 0;
  std::uint64_t failed_attempts_ = 0;
  std::uint64_t drops_ = 0;  // connections lost in fan-out modes (each then reconnects)
  bool mode_measures_ = false;
  bool stopping_ = false;
  bool reconnect_ = false;
  std::int64_t last_misc_ = 0;
  std::unordered_map<std::uint64_t, AlertTrack> alerts_;
  std::uint64_t seq_ = 0;
  std::uint64_t alerts_sent_ = 0;
  std::uint64_t alerts_complete_ = 0;
  std::uint64_t incomplete_ = 0;
  std::uint64_t deliveries_ = 0;
  std::size_t inflight_ = 0;
  std::array<Histogram, 2> latency_;
  std::size_t photos_done_ = 0;
  std::uint64_t photo_bytes_ = 0;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw std::runtime_error("missing value for " + flag);
    const std::string v = argv[++i];
    if (flag == "--mode") o.mode = v;
    else if (flag == "--broker") {
      const auto colon = v.rfind(':');
      o.host = v.substr(0, colon);
      o.port = std::stoi(v.substr(colon + 1));
    } else if (flag == "--certs") o.certs = v;
    else if (flag == "--handsets") o.handsets = std::stoul(v);
    else if (flag == "--first") o.first = std::stoul(v);
    else if (flag == "--sender") o.sender = v;
    else if (flag == "--rate") o.rate = std::stod(v);
    else if (flag == "--seconds") o.seconds = std::stod(v);
    else if (flag == "--warmup") o.warmup = std::stod(v);
    else if (flag == "--reps") o.reps = std::stoi(v);
    else if (flag == "--storms") o.storms = std::stoi(v);
    else if (flag == "--window") o.window = std::stoul(v);
    else if (flag == "--concurrency") o.concurrency = std::stoul(v);
    else if (flag == "--payload") o.payload = std::max<std::size_t>(16, std::stoul(v));
    else if (flag == "--photo-bytes") o.photo_bytes = std::stoul(v);
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
  try {
    Options options = parse(argc, argv);
    // Each libmosquitto client may hold a socket pair besides its connection.
    const std::uint64_t fds = raise_fd_limit(3 * options.handsets + 1024);
    mosquitto_lib_init();
    Load load(options);
    g_load = &load;
    json result = load.run();
    result["fd_limit"] = fds;
    int major = 0, minor = 0, revision = 0;
    mosquitto_lib_version(&major, &minor, &revision);
    result["libmosquitto"] = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(revision);
    std::cout << result.dump() << std::endl;
    std::_Exit(0);
  } catch (const std::exception& e) {
    std::cerr << "mqtt_load: " << e.what() << "\n";
    return 1;
  }
}
