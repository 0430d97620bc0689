// saferlink-sim: the handset firmware on the host.
//   saferlink-sim handset --hub HOST:PORT --certs DIR --id ID   one interactive handset
//   saferlink-sim swarm --hub HOST:PORT --certs DIR --scenario FILE [--duration S] [--json]
// Exit status: 0 success; 1 a run that lost panics or could not reach the hub; 2 bad input
// (arguments, scenario file, certificates).
#include "core/towns.hpp"
#include "firmware-sim/interactive.hpp"
#include "firmware-sim/issuer.hpp"
#include "firmware-sim/report.hpp"
#include "firmware-sim/scenario.hpp"
#include "firmware-sim/swarm.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <cstdio>
#include <iostream>

namespace {

using namespace saferlink;

int fail(int code, const std::string& message) {
  std::cerr << "saferlink-sim: " << message << std::endl;
  return code;
}

// Thousands of handsets need thousands of descriptors: raise the soft limit to the hard one.
void raise_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"saferlink-sim: SaferLink handset firmware on the host (one handset, or a swarm)"};
  app.require_subcommand(1);

  sim::InteractiveOptions handset;
  auto* handset_cmd = app.add_subcommand("handset", "one interactive handset in this terminal");
  handset_cmd->add_option("--hub", handset.hub, "hub address HOST:PORT")->capture_default_str();
  handset_cmd->add_option("--certs", handset.certs, "directory with ca.crt and issued/ID.{crt,key}")
      ->required();
  handset_cmd->add_option("--id", handset.id, "whose certificate to use")->required();
  std::string flash;
  handset_cmd->add_option("--flash", flash, "flash file (default: ID.flash here)");
  handset_cmd->add_option("--hold", handset.hold_s, "seconds the panic button must be held")
      ->capture_default_str()->check(CLI::Range(0.0, 60.0));
  handset_cmd->add_option("--latency-ms", handset.latency_ms, "added link latency")
      ->check(CLI::Range(0.0, 60000.0));
  handset_cmd->add_option("--jitter-ms", handset.jitter_ms, "added link jitter")
      ->check(CLI::Range(0.0, 60000.0));
  double seconds = 0;
  handset_cmd->add_option("--seconds", seconds, "quit after this long")
      ->check(CLI::Range(0.1, 1.0e7));
  handset_cmd->add_flag("--json", handset.json, "one JSON object per event");

  sim::SwarmOptions swarm;
  std::string scenario_file;
  double duration = 0;
  bool json = false;
  bool progress = false;
  std::string log_dir;
  auto* swarm_cmd = app.add_subcommand("swarm", "many handsets in one process, from a scenario");
  swarm_cmd->add_option("--hub", swarm.hub, "hub address HOST:PORT")->capture_default_str();
  swarm_cmd->add_option("--certs", swarm.certs, "CA directory (ca.crt, ca.key) to issue from")
      ->required();
  swarm_cmd->add_option("--scenario", scenario_file, "scenario TOML file")->required();
  swarm_cmd->add_option("--duration", duration, "seconds of presses (overrides the scenario)")
      ->check(CLI::Range(1.0, 7.0 * 24 * 3600));
  swarm_cmd->add_flag("--json", json, "print the report as one JSON object");
  swarm_cmd->add_flag("--progress", progress, "a progress line on stderr every second");
  swarm_cmd->add_option("--log-dir", log_dir, "write each handset's events to DIR/ID.log");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    if (auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    return fail(2, what + " (see --help)");
  }
  spdlog::set_level(spdlog::level::warn);
  raise_fd_limit();

  if (*handset_cmd) {
    handset.flash = flash.empty() ? std::filesystem::path(handset.id + ".flash") : std::filesystem::path(flash);
    if (seconds > 0) handset.seconds = seconds;
    try {
      return sim::run_interactive(handset);
    } catch (const std::exception& e) {
      return fail(2, e.what());
    }
  }

  sim::Scenario scenario;
  try {
    scenario = sim::load_scenario(scenario_file, default_towns());
  } catch (const sim::ScenarioError& e) {
    return fail(2, e.what());
  }
  if (duration > 0) swarm.duration_s = duration;
  if (!log_dir.empty()) swarm.log_dir = log_dir;
  swarm.quiet = !progress;
  std::unique_ptr<sim::Swarm> runner;
  try {
    runner = std::make_unique<sim::Swarm>(swarm, scenario);
  } catch (const std::exception& e) {
    return fail(2, e.what());
  }
  sim::Report report;
  try {
    report = runner->run();
  } catch (const std::exception& e) {
    return fail(1, e.what());
  }
  if (json) {
    std::cout << sim::to_json(report) << std::endl;
  } else {
    std::cout << sim::to_table(report) << std::flush;
  }
  if (report.connections == 0) return fail(1, "no handset reached the hub at " + swarm.hub);
  if (report.lost > 0) return fail(1, std::to_string(report.lost) + " panic deliveries lost");
  return 0;
}
