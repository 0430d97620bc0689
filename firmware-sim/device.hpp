// Device: one simulated handset on the host — the handset logic (firmware-sim/handset.hpp)
// wired to a real TLS 1.3 connection to the hub through an impaired link, a timer, and
// optionally a flash file.
//
//   handset logic  --actions-->  Device::apply  --frames-->  impairment  -->  TLS socket
//   handset logic  <--inputs---  Device          <--frames--  impairment  <--  TLS socket
//
// Link impairment (LinkProfile in firmware-sim/scenario.hpp), between the logic and the socket:
//   latency + jitter  every frame, both ways, waits latency + uniform(0, jitter) (order kept);
//   drop-out          the socket is cut and dials fail ("no coverage") until it ends;
//   stall             the device stops reading from the socket until it ends (the hub sees a
//                     peer that does not read; its write deadline may cut it).
// The outgoing side keeps one writer per connection; frames due together are written in
// priority order (alerts first, core/envelope.hpp).
//
// Thread contract: everything runs on the one executor given in LinkEnv (a single-threaded
// io_context: a swarm runs thousands of devices on one thread, no strand needed). Call every
// member from that executor.
#pragma once

#include "firmware-sim/handset.hpp"
#include "firmware-sim/issuer.hpp"
#include "firmware-sim/scenario.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace saferlink::sim {

// What every device of a process shares.
struct LinkEnv {
  boost::asio::any_io_executor executor;
  std::shared_ptr<boost::asio::ssl::context> tls;  // make_device_tls_context
  std::string host;                                // for the hub certificate's name check
  std::vector<boost::asio::ip::tcp::endpoint> endpoints;
};

// A client TLS context for many devices: TLS 1.3 only, verifies the hub against ca.crt, keeps
// no per-connection buffers while idle; each device sets its own certificate on its stream.
std::shared_ptr<boost::asio::ssl::context> make_device_tls_context(
    const std::filesystem::path& ca_file);

// Resolves HOST:PORT once for every device (throws std::runtime_error with a one-line reason).
LinkEnv make_link_env(boost::asio::any_io_executor executor, const std::string& hub,
                      const std::filesystem::path& ca_file);

class Device;

// Told about every event the handset logic emits (after the action was applied).
struct DeviceObserver {
  virtual ~DeviceObserver() = default;
  virtual void on_event(Device& device, const Action& event) = 0;
};

class Device : public std::enable_shared_from_this<Device> {
 public:
  Device(LinkEnv& env, Credentials credentials, HandsetConfig config, Flash flash,
         LinkProfile link, DeviceObserver* observer, std::size_t index,
         std::optional<std::filesystem::path> flash_file = std::nullopt);
  ~Device();

  void power_on();
  void power_off();
  void button(bool down);
  // A long press: down now, up after the hold time and a little more.
  void press();
  void sighting(const std::string& text);
  void charge(double percent);
  void set_signal(int bars);
  // Impairment events.
  void dropout(std::int64_t duration_ms);
  void stall(std::int64_t duration_ms);
  // Interactive link switch: false cuts the link until true.
  void set_coverage(bool on);
  void respond(const std::string& alert_id, v1::RecipientStatusKind status);

  const Handset& handset() const { return handset_; }
  std::size_t index() const { return index_; }
  const std::string& id() const { return handset_.config().id; }
  bool online() const { return handset_.link() == LinkState::online; }
  bool ever_online() const { return ever_online_; }
  // Closes everything at once (end of a run); the device does nothing afterwards.
  void shutdown();

 private:
  struct Session;
  void apply(Actions actions);
  void rearm();
  void on_timer();
  void hang_up();
  void start_session();
  boost::asio::awaitable<void> run_session(std::shared_ptr<Session> session);
  boost::asio::awaitable<void> reader(std::shared_ptr<Session> session);
  boost::asio::awaitable<void> writer(std::shared_ptr<Session> session);
  std::int64_t delay_ms();

  LinkEnv& env_;
  Credentials credentials_;
  Handset handset_;
  LinkProfile link_;
  DeviceObserver* observer_;
  std::size_t index_;
  std::optional<std::filesystem::path> flash_file_;
  boost::asio::steady_timer timer_;
  std::int64_t armed_for_ = 0;     // the wall time the timer is set for (0: not armed)
  std::int64_t release_at_ = 0;    // press(): when to let go of the button (0: none)
  std::int64_t no_coverage_until_ = 0;
  std::int64_t stalled_until_ = 0;
  std::shared_ptr<Session> session_;  // the current connection attempt or link
  std::mt19937_64 rng_;
  bool ever_online_ = false;
  bool shut_ = false;
};

}  // namespace saferlink::sim
