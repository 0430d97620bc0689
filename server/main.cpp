// saferlink-hub: parses options, builds the Hub, runs it until SIGINT/SIGTERM.
#include "server/config.hpp"
#include "server/demo_seed.hpp"
#include "server/hub.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>

#include <iostream>

int main(int argc, char** argv) {
  using namespace saferlink::server;
  CLI::App app{"saferlink-hub: the SaferLink hub (device listener over mutual TLS 1.3)"};
  std::string config_file;
  std::string listen, certs, db, metrics;
  std::optional<long> escalation_ms;
  std::optional<long> cancel_ms;
  std::optional<unsigned> threads;
  bool verbose = false;
  bool seed_demo = false;
  app.add_option("--config", config_file, "TOML configuration file")->check(CLI::ExistingFile);
  app.add_option("--listen", listen, "device port HOST:PORT (port 0 picks a free port)");
  std::string console;
  std::string console_dir;
  app.add_option("--console", console,
                 "serve the console (HTTPS, client certificates) on HOST:PORT");
  app.add_option("--console-dir", console_dir,
                 "development: serve the console's files from DIR (e.g. console/) instead of "
                 "the compiled-in copies, so that edits show without a rebuild")
      ->check(CLI::ExistingDirectory);
  app.add_option("--metrics", metrics,
                 "serve Prometheus /metrics over plain HTTP on HOST:PORT (loopback only)");
  app.add_option("--certs", certs, "CA directory: ca.crt, crl.pem, issued/hub.crt, issued/hub.key");
  app.add_option("--db", db, "SQLite database file");
  app.add_option("--escalation-ms", escalation_ms, "escalate an unacknowledged alert after this");
  app.add_option("--cancel-window-ms", cancel_ms, "how long after acceptance a cancel is allowed");
  app.add_option("--threads", threads, "network threads");
  app.add_flag("-v,--verbose", verbose, "log debug detail");
  app.add_flag("--seed-demo", seed_demo,
               "fill an empty database with a generated demo partnership (for ./run demo)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::cerr << "saferlink-hub: " << e.what() << " (see --help)\n";
    return 2;
  }

  // Logs go to stderr; stdout carries only the "listening PORT" line (and "console PORT" with
  // a console) for scripts.
  spdlog::set_default_logger(spdlog::stderr_color_mt("hub"));
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
  if (verbose) spdlog::set_level(spdlog::level::debug);
  try {
    HubConfig config = config_file.empty() ? HubConfig{} : load_config(config_file);
    if (!listen.empty()) config.listen = listen;
    if (!metrics.empty()) config.metrics_listen = metrics;
    if (!console.empty()) config.console_listen = console;
    config.console_dir = console_dir;
    if (!certs.empty()) config.certs = certs;
    if (!db.empty()) config.db = db;
    if (escalation_ms) config.escalation_interval = std::chrono::milliseconds(*escalation_ms);
    if (cancel_ms) config.cancel_window = std::chrono::milliseconds(*cancel_ms);
    if (threads) config.threads = *threads;
    validate(config);
    Hub hub(config);
    if (seed_demo) {
      SeedReport report;
      hub.store().run_sync([&](SQLite::Database& database) {
        report = saferlink::server::seed_demo(database, hub.towns(), saferlink::now_ms());
      });
      if (report.forms > 0) {
        spdlog::info("demo data: {} incident forms, {} profiles, {} notices", report.forms,
                     report.profiles, report.notices);
      }
    }
    hub.start();
    // The bound address on stdout, one line, for scripts that started us on port 0.
    std::cout << "listening " << hub.port() << std::endl;
    if (!config.console_listen.empty()) std::cout << "console " << hub.console_port() << std::endl;
    hub.run_until_signal();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "saferlink-hub: " << e.what() << "\n";
    return 1;
  }
}
