// A hub for integration tests: loopback, port 0, certificates from a TestPki, its database in a
// temporary directory. Started by the constructor, stopped by the destructor.
#pragma once

#include "server/hub.hpp"
#include "tests/support/pki.hpp"

#include <functional>
#include <memory>
#include <string>

namespace saferlink::test {

struct HubFixture {
  // `tweak` may change the configuration before the hub starts (short intervals for tests).
  explicit HubFixture(const TestPki& pki,
                      const std::function<void(server::HubConfig&)>& tweak = {});
  ~HubFixture();

  std::string address() const { return "127.0.0.1:" + std::to_string(hub->port()); }

  TempDir data;
  server::HubConfig config;
  std::unique_ptr<server::Hub> hub;
};

}  // namespace saferlink::test
