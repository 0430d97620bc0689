#include "tests/support/hub_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <vector>

namespace saferlink::test {
namespace {

std::string tail_of(const std::filesystem::path& log) {
  if (log.empty()) return "";
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  constexpr std::size_t kTail = 2000;
  if (text.size() > kTail) text = text.substr(text.size() - kTail);
  return text.empty() ? "" : "; its log ends:\n" + text;
}

// Reads the child's stdout until a line "listening PORT" or `until`; 0 if none came.
std::uint16_t read_port(int fd, std::chrono::steady_clock::time_point until) {
  std::string pending;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return 0;
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return 0;
    char buffer[512];
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return 0;  // the hub closed stdout: it exited
    pending.append(buffer, static_cast<std::size_t>(got));
    for (std::size_t end; (end = pending.find('\n')) != std::string::npos;) {
      const std::string line = pending.substr(0, end);
      pending.erase(0, end + 1);
      unsigned port = 0;
      if (std::sscanf(line.c_str(), "listening %u", &port) == 1 && port > 0 && port < 65536) {
        return static_cast<std::uint16_t>(port);
      }
    }
  }
}

}  // namespace

HubProcess::HubProcess(const std::filesystem::path& binary, const std::filesystem::path& certs,
                       const std::filesystem::path& db, const std::filesystem::path& log,
                       std::chrono::milliseconds timeout) {
  // Everything the child needs is prepared before fork(): between fork and exec only
  // async-signal-safe calls (the test process has other threads).
  std::vector<std::string> args = {binary.string(), "--listen", "127.0.0.1:0", "--certs",
                                   certs.string(),  "--db",     db.string()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int log_fd = -1;
  if (!log.empty()) {
    log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) throw std::runtime_error("cannot open hub log " + log.string());
  }
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    if (log_fd >= 0) ::close(log_fd);
    throw std::runtime_error("pipe2 failed");
  }
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    // Dies with the test process, even one killed before its destructors ran.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(out[1], STDOUT_FILENO);  // dup2 clears close-on-exec on the copy
    if (log_fd >= 0) ::dup2(log_fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  if (log_fd >= 0) ::close(log_fd);
  if (pid_ < 0) {
    ::close(out[0]);
    throw std::runtime_error("fork failed");
  }
  port_ = read_port(out[0], std::chrono::steady_clock::now() + timeout);
  // Nothing more is read from stdout; the hub ignores SIGPIPE and writes nothing else there.
  ::close(out[0]);
  if (port_ == 0) {
    kill(SIGKILL);
    throw std::runtime_error("saferlink-hub on " + db.string() +
                             " did not say \"listening PORT\"" + tail_of(log));
  }
}

HubProcess::~HubProcess() { kill(SIGKILL); }

void HubProcess::kill(int signal) {
  if (pid_ <= 0) return;
  ::kill(pid_, signal);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace saferlink::test
