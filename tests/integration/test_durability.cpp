// Durability: an alert the hub said `accepted` survives SIGKILL of the hub process.
#include "tests/support/device.hpp"
#include "tests/support/pki.hpp"

#include "server/alert_store.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <csignal>
#include <cstdio>
#include <set>
#include <sys/wait.h>
#include <unistd.h>

using namespace saferlink;
using namespace saferlink::test;

namespace {

// The real saferlink-hub binary as a child process on 127.0.0.1:0.
class HubProcess {
 public:
  HubProcess(const std::filesystem::path& certs, const std::filesystem::path& db) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      const std::string certs_arg = certs.string();
      const std::string db_arg = db.string();
      ::execl(SAFERLINK_HUB_BINARY, SAFERLINK_HUB_BINARY, "--listen", "127.0.0.1:0", "--certs",
              certs_arg.c_str(), "--db", db_arg.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    // The hub prints "listening PORT" once it accepts connections.
    FILE* f = ::fdopen(out[0], "r");
    char line[512];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      unsigned port = 0;
      if (std::sscanf(line, "listening %u", &port) == 1) {
        port_ = static_cast<std::uint16_t>(port);
        break;
      }
    }
    std::fclose(f);
    REQUIRE(port_ != 0);
  }

  ~HubProcess() {
    if (pid_ > 0) kill(SIGKILL);
  }

  void kill(int signal) {
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace

TEST_CASE("every alert the hub said accepted is in the database after SIGKILL and restart") {
  TestPki pki;
  pki.issue(Role::shop, "chatham", "shop-1", "Boots Chatham");
  TempDir data;
  const auto db = data.path / "hub.db";

  std::set<std::string> accepted;
  {
    HubProcess hub(pki.dir(), db);
    TestDevice shop(pki.dir(), "shop-1", hub.address());
    shop.connect();
    // Many alerts in flight, then the hub dies the moment enough have been confirmed: some
    // accepted ones were committed just before the kill, others are still in the store queue.
    for (std::uint64_t seq = 1; seq <= 200; ++seq) shop.panic(seq);
    while (accepted.size() < 40) {
      auto e = shop.next(5s);
      REQUIRE(e);
      if (e->has_accepted()) accepted.insert(e->accepted().alert_id());
    }
    hub.kill(SIGKILL);
  }
  REQUIRE(accepted.size() >= 40);

  HubProcess restarted(pki.dir(), db);
  {
    SQLite::Database check(db.string(), SQLite::OPEN_READONLY);
    for (const auto& id : accepted) {
      CAPTURE(id);
      CHECK(server::alerts::find(check, id).has_value());
    }
  }
  // The restarted hub knows them: a retry is a duplicate, not a new alert.
  TestDevice shop(pki.dir(), "shop-1", restarted.address());
  shop.connect();
  const std::string first = *accepted.begin();
  const auto seq = std::stoull(first.substr(first.find(':') + 1));
  shop.panic(seq);
  auto e = shop.wait_for([&](const v1::Envelope& x) {
    return x.has_accepted() && x.accepted().alert_id() == first;
  });
  REQUIRE(e);
  CHECK(e->accepted().duplicate());
}
