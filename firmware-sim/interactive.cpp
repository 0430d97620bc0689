#include "firmware-sim/interactive.hpp"

#include "firmware-sim/describe.hpp"
#include "core/envelope.hpp"
#include "core/tls.hpp"
#include "firmware-sim/device.hpp"
#include "firmware-sim/flash_file.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <thread>

namespace saferlink::sim {

namespace asio = boost::asio;

namespace {

class Terminal {
 public:
  Terminal() {
    if (::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
      raw.c_cc[VMIN] = 1;
      raw.c_cc[VTIME] = 0;
      active_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
  }
  ~Terminal() { cooked(); }
  void cooked() {
    if (active_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  void raw() {
    if (!active_) return;
    termios raw = saved_;
    raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
    ::tcsetattr(STDIN_FILENO, TCSANOW, &raw);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

std::string clock_text(std::int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

std::string extension_of(const std::string& mime) {
  if (mime == "image/png") return ".png";
  if (mime == "image/webp") return ".webp";
  return ".jpg";
}

// The gallery's photos beside the flash file (ID.flash -> ID.photos/SHA256.ext): written once
// verified, deleted once no entry held shows them.
struct PhotoFolder {
  std::filesystem::path dir;

  void save(const std::string& sha256, const std::string& mime, const std::string& bytes) const {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    const auto path = dir / (sha256 + extension_of(mime));
    const auto tmp = dir / (sha256 + ".tmp");
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      if (!out) throw std::runtime_error("cannot write " + tmp.string());
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw std::runtime_error("cannot write " + path.string() + ": " + ec.message());
  }
  bool has(const std::string& sha256) const {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (entry.path().stem() == sha256 && entry.path().extension() != ".tmp") return true;
    }
    return false;
  }
  // Deletes every photo that no entry held shows.
  void prune(const std::vector<GalleryHeld>& held) const {
    std::set<std::string> wanted;
    for (const auto& g : held) wanted.insert(g.photo_sha256);
    std::error_code ec;
    std::vector<std::filesystem::path> stale;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (!wanted.contains(entry.path().stem().string())) stale.push_back(entry.path());
    }
    for (const auto& path : stale) std::filesystem::remove(path, ec);
  }
};

struct Printer : DeviceObserver {
  bool json = false;
  std::string last_alert;
  PhotoFolder photos;
  std::map<std::int64_t, std::string> entries;  // notice id -> what the screen shows

  void status(const Device& device, const std::string& what) {
    const Handset& h = device.handset();
    if (json) {
      nlohmann::json line = {{"type", "state"},
                             {"what", what},
                             {"link", to_string(h.link())},
                             {"indication", to_string(h.indication())},
                             {"led", led_of(h.indication())},
                             {"buzzer", buzzer_of(h.indication())},
                             {"battery", static_cast<int>(h.battery())},
                             {"signal", h.signal()},
                             {"queued", h.flash().pending.size()}};
      std::cout << line.dump() << std::endl;
      return;
    }
    std::cout << clock_text(now_ms()) << "  " << what << "   [LED " << led_of(h.indication())
              << ", buzzer " << buzzer_of(h.indication()) << " | " << to_string(h.link())
              << " | battery " << static_cast<int>(h.battery()) << "% | signal " << h.signal()
              << "/5 | " << h.flash().pending.size() << " queued]" << std::endl;
  }

  void on_event(Device& device, const Action& e) override {
    using E = Action::Event;
    std::string what;
    switch (e.event) {
      case E::indication: what = "indicator: " + std::string(to_string(e.indication)); break;
      case E::panic_raised: what = "PANIC raised " + e.id; break;
      case E::panic_accepted:
        what = "accepted " + e.id + ", relayed to " + std::to_string(e.count) +
               (e.flag ? " (a retry: the hub had it already)" : "");
        break;
      case E::panic_delivered_all: what = "delivered to all " + std::to_string(e.count) + " recipients"; break;
      case E::panic_update: what = describe(e.message); break;
      case E::panic_cancelled: what = "cancelled " + e.id; break;
      case E::panic_failed: what = "FAILED " + e.id + ": " + e.text; break;
      case E::sighting_raised: what = "sighting " + e.id + " queued"; break;
      case E::sighting_accepted: what = "sighting " + e.id + " accepted, relayed to " + std::to_string(e.count); break;
      case E::received_panic:
        last_alert = e.id;
        what = "ALERT " + describe(e.message) + "  (a: acknowledge)";
        break;
      case E::received_cancel: what = describe(e.message); break;
      case E::received_sighting: what = describe(e.message); break;
      case E::received_duplicate: what = "duplicate, not raised again: " + e.id; break;
      case E::acknowledged_sent: what = "answered " + e.id; break;
      case E::link_online: what = "on air"; break;
      case E::link_lost:
        what = "off air: " + e.text + " (next try in " +
               std::to_string(std::max<std::int64_t>(0, device.handset().reconnect_at() - now_ms())) +
               " ms)";
        break;
      case E::low_battery: what = "LOW BATTERY"; break;
      case E::battery_empty: what = "battery empty: radio off"; break;
      case E::hub_error: what = "hub: " + e.text; break;
      case E::gallery_entry:
        entries[e.message.gallery_entry().notice_id()] = describe(e.message);
        what = std::string(e.flag ? "gallery: added " : "gallery: changed ") + describe(e.message);
        break;
      case E::gallery_removed:
        entries.erase(std::stoll(e.id));
        photos.prune(device.handset().gallery());
        what = "gallery: deleted notice " + e.id + " and its photo (" + e.text + ")";
        break;
      case E::gallery_remove_confirmed: what = "gallery: the hub recorded the deletion of notice " + e.id; break;
      case E::gallery_synced:
        photos.prune(device.handset().gallery());
        what = "gallery: synced, " + std::to_string(e.count) + " entries (version " +
               std::to_string(device.handset().flash().gallery_version) + ")";
        break;
      case E::photo_complete:
        what = "gallery: photo " + e.id.substr(0, 12) + " verified (" + std::to_string(e.count) +
               " bytes), saved in " + photos.dir.string();
        try {
          photos.save(e.id, e.text, e.data);
        } catch (const std::exception& error) {
          what = "gallery: photo " + e.id.substr(0, 12) + " verified but not saved: " + error.what();
        }
        break;
      case E::photo_failed: what = "gallery: photo " + e.id.substr(0, 12) + " failed: " + e.text; break;
      case E::none: return;
    }
    status(device, what);
  }
};

}  // namespace

int run_interactive(const InteractiveOptions& options) {
  asio::io_context io;
  LinkEnv env = make_link_env(io.get_executor(), options.hub, options.certs / "ca.crt");
  const TlsFiles files = tls_files(options.certs, options.id);
  Credentials credentials = read_credentials(files.cert, files.key);
  std::string why;
  auto identity = identity_from_cert(credentials.cert.get(), &why);
  if (!identity) throw std::runtime_error(files.cert.string() + ": " + why);

  HandsetConfig config;
  config.id = identity->id;
  config.role = identity->role;
  config.hold_ms = static_cast<std::int64_t>(options.hold_s * 1000);
  config.panic_status = 1;
  config.seed = static_cast<std::uint64_t>(now_ms());
  config.gallery = true;  // the exclusion gallery, its photos kept beside the flash file
  config.keep_photo_bytes = true;
  LinkProfile link;
  link.latency_ms = options.latency_ms;
  link.jitter_ms = options.jitter_ms;

  Printer printer;
  printer.json = options.json;
  printer.photos.dir = options.flash;
  printer.photos.dir.replace_extension(".photos");
  std::shared_ptr<Device> device;
  auto make_device = [&] {
    std::error_code ec;
    const bool fresh = !std::filesystem::exists(options.flash, ec);
    Flash flash = read_flash_file(options.flash);
    // A new handset numbers its panics from the clock: ids never repeat an earlier flash's.
    if (fresh) flash.next_device_seq = static_cast<std::uint64_t>(now_ms());
    // A photo flash says is here but the folder lost is fetched again.
    for (GalleryHeld& g : flash.gallery) {
      if (g.photo_ok && !printer.photos.has(g.photo_sha256)) g.photo_ok = false;
    }
    Credentials copy = read_credentials(files.cert, files.key);
    device = std::make_shared<Device>(env, std::move(copy), config, std::move(flash), link,
                                      &printer, 0, options.flash);
  };
  make_device();
  if (!options.json) {
    std::cout << "handset " << identity->id << " (" << to_string(identity->role) << ", "
              << identity->town << "), flash " << options.flash.string() << "\n"
              << "keys: p panic (long press)  k knock  d/u button down/up  s sighting  "
                 "a acknowledge  e en route\n"
              << "      b battery -10%  c charge  0-5 signal  l link down/up  o power cycle  "
                 "g gallery  q quit"
              << std::endl;
  }
  device->power_on();
  printer.status(*device, "power on");

  bool coverage = true;
  Terminal terminal;
  std::atomic<bool> quitting{false};
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) io.stop();
  });
  asio::steady_timer limit(io);
  if (options.seconds) {
    limit.expires_after(std::chrono::milliseconds(static_cast<std::int64_t>(*options.seconds * 1000)));
    limit.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) io.stop();
    });
  }
  auto knock_release = std::make_shared<asio::steady_timer>(io);

  auto on_key = [&](char key, std::string line) {
    switch (key) {
      case 'p': device->press(); break;
      case 'd': device->button(true); break;
      case 'u': device->button(false); break;
      case 'k':
        device->button(true);
        knock_release->expires_after(std::chrono::milliseconds(200));
        knock_release->async_wait([&](const boost::system::error_code& ec) {
          if (!ec) device->button(false);
        });
        break;
      case 's': if (!line.empty()) device->sighting(line); break;
      case 'a':
      case 'e':
        if (printer.last_alert.empty()) {
          printer.status(*device, "no alert to answer");
        } else {
          device->respond(printer.last_alert, key == 'a' ? v1::ACKNOWLEDGED : v1::EN_ROUTE);
        }
        break;
      case 'b': device->charge(-10); printer.status(*device, "battery -10%"); break;
      case 'c': device->charge(50); printer.status(*device, "charged"); break;
      case 'l':
        coverage = !coverage;
        device->set_coverage(coverage);
        printer.status(*device, coverage ? "coverage back" : "coverage lost (link down)");
        break;
      case 'o':
        device->power_off();
        device->shutdown();
        printer.status(*device, "power off");
        make_device();
        device->set_coverage(coverage);
        device->power_on();
        printer.status(*device, "power on (flash kept " +
                                    std::to_string(device->handset().flash().pending.size()) +
                                    " queued)");
        break;
      case 'g': {
        const Handset& h = device->handset();
        printer.status(*device, "gallery version " + std::to_string(h.flash().gallery_version) +
                                    ", " + std::to_string(h.gallery().size()) + " entries");
        for (const GalleryHeld& g : h.gallery()) {
          auto known = printer.entries.find(g.notice_id);
          std::cout << "  " << (known != printer.entries.end()
                                    ? known->second
                                    : "notice " + std::to_string(g.notice_id))
                    << (g.photo_sha256.empty() ? "" : g.photo_ok ? "  [photo here]"
                                                                 : "  [photo not yet here]")
                    << std::endl;
        }
        break;
      }
      case 'q': io.stop(); break;
      default:
        if (key >= '0' && key <= '5') device->set_signal(key - '0');
        break;
    }
  };

  std::thread keyboard([&] {
    for (;;) {
      int c = std::getchar();
      if (c == EOF || quitting) return;
      const char key = static_cast<char>(c);
      std::string line;
      if (key == 's') {
        terminal.cooked();
        if (::isatty(STDIN_FILENO)) std::cout << "sighting text: " << std::flush;
        std::getline(std::cin, line);
        terminal.raw();
        if (line.empty()) line = "subject seen";
      }
      asio::post(io, [&, key, line] { on_key(key, line); });
      if (key == 'q') return;
    }
  });
  keyboard.detach();  // blocked in getchar until a key; the process exits after run()
  io.run();
  quitting = true;
  device->shutdown();
  terminal.cooked();
  return 0;
}

}  // namespace saferlink::sim
