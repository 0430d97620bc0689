#include "tests/support/pki.hpp"

#include <atomic>
#include <chrono>
#include <random>
#include <unistd.h>

namespace saferlink::test {

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  path = std::filesystem::temp_directory_path() /
         ("saferlink-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
          std::to_string(rd()));
  std::filesystem::create_directories(path);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

TestPki::TestPki() {
  ca::InitOptions init;
  init.name = "Test Partnership";
  ca::init(dir(), init);
  ca::IssueOptions hub;
  hub.role = Role::hub;
  hub.id = "hub";
  hub.town = "all";
  hub.hosts = {"127.0.0.1"};
  ca::issue(dir(), hub);
}

std::string TestPki::issue(Role role, const std::string& town, const std::string& id,
                           const std::string& member) {
  ca::IssueOptions o;
  o.role = role;
  o.town = town;
  o.member = member;
  o.id = id;
  return ca::issue(dir(), o).serial_hex;
}

std::string TestPki::issue_expired(Role role, const std::string& town, const std::string& id) {
  ca::IssueOptions o;
  o.role = role;
  o.town = town;
  o.member = "Test Member";
  o.id = id;
  o.not_before_offset = -std::chrono::hours(48);
  o.not_after_offset = -std::chrono::hours(24);
  return ca::issue(dir(), o).serial_hex;
}

}  // namespace saferlink::test
