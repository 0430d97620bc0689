// The interactive handset: one Device in a terminal. Keys (one character each, no Enter
// needed on a terminal; from a pipe, characters are read in order):
//   p  long press of the panic button (panic; a second one within 30 s cancels it)
//   d / u  button down / up (hold it yourself: a press shorter than the hold time is ignored)
//   k  a knock (a short press: nothing happens)
//   s  sighting (asks for a line of text)
//   a  acknowledge the last alert received      e  en route (police)
//   b  battery -10 %    c  charge +50 %        0-5  signal bars (0: no coverage)
//   l  link down / up (a drop-out you control)  o  power cycle (flash survives)
//   q  quit
// Every event is printed with the LED and buzzer state. Runs on the calling thread; a second
// thread reads the keyboard and posts each key to the io_context.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

namespace saferlink::sim {

struct InteractiveOptions {
  std::string hub = "127.0.0.1:7443";
  std::filesystem::path certs;   // DIR/ca.crt and DIR/issued/ID.{crt,key}
  std::string id;
  std::filesystem::path flash;   // flash file
  double hold_s = 1.5;
  double latency_ms = 0;
  double jitter_ms = 0;
  std::optional<double> seconds; // quit after this long
  bool json = false;             // one JSON object per event instead of text
};

// Returns the process exit status. Throws std::runtime_error (one line) on bad set-up.
int run_interactive(const InteractiveOptions& options);

}  // namespace saferlink::sim
