// HubProcess: the real saferlink-hub binary as a child process on 127.0.0.1:0, for tests that
// must kill the hub the hard way (SIGKILL) and start it again on the same database. The
// constructor returns once the hub has printed "listening PORT" (bounded wait); the destructor
// SIGKILLs a hub that is still running and reaps it. The hub is also killed if the test process
// dies first (PR_SET_PDEATHSIG, Linux), so no hub outlives a crashed test; that signal follows
// the thread that started the hub, so start it on the test's own thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

namespace saferlink::test {

class HubProcess {
 public:
  // `binary`: the saferlink-hub to run (tests pass SAFERLINK_HUB_BINARY). `log`: where the
  // hub's stderr goes (appended); empty: the test's own stderr. Throws std::runtime_error,
  // with the log's tail when there is one, if the hub exits or stays silent past `timeout`.
  HubProcess(const std::filesystem::path& binary, const std::filesystem::path& certs,
             const std::filesystem::path& db, const std::filesystem::path& log = {},
             std::chrono::milliseconds timeout = std::chrono::seconds(20));
  ~HubProcess();
  HubProcess(const HubProcess&) = delete;
  HubProcess& operator=(const HubProcess&) = delete;

  // Sends `signal` and waits for the process to end. Does nothing once it has ended.
  void kill(int signal);

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::uint16_t port() const { return port_; }

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace saferlink::test
