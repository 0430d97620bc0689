// Test certificates: a fresh partnership CA in a temporary directory, with the hub's server
// certificate for 127.0.0.1 already issued. Removed when the object goes away.
#pragma once

#include "certs/ca.hpp"

#include <filesystem>
#include <string>

namespace saferlink::test {

// A unique empty temporary directory, removed by the destructor.
struct TempDir {
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path path;
};

struct TestPki {
  TestPki();
  // Issues a device or person certificate; returns its serial.
  std::string issue(Role role, const std::string& town, const std::string& id,
                    const std::string& member = "Test Member");
  std::string issue_expired(Role role, const std::string& town, const std::string& id);
  void revoke(const std::string& id) { ca::revoke(dir(), id); }
  const std::filesystem::path& dir() const { return temp.path; }

  TempDir temp;
};

}  // namespace saferlink::test
