#include "tests/support/hub_fixture.hpp"

#include <spdlog/spdlog.h>

namespace saferlink::test {

HubFixture::HubFixture(const TestPki& pki, const std::function<void(server::HubConfig&)>& tweak) {
  spdlog::set_level(spdlog::level::warn);
  config.listen = "127.0.0.1:0";
  config.certs = pki.dir();
  config.db = data.path / "hub.db";
  config.crl_poll_interval = std::chrono::milliseconds(100);
  if (tweak) tweak(config);
  hub = std::make_unique<server::Hub>(config);
  hub->start();
}

HubFixture::~HubFixture() { hub->stop(); }

}  // namespace saferlink::test
