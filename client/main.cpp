// saferlink: the scriptable handheld. Parses options and calls client/commands.
#include "client/commands.hpp"
#include "client/gallery.hpp"
#include "client/coord_cli.hpp"

#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

int main(int argc, char** argv) {
  using namespace saferlink::client;
  CLI::App app{"saferlink: the SaferLink handheld from a terminal"};
  app.require_subcommand(1);
  ClientOptions options;
  std::string certs = "certs";
  app.add_option("--hub", options.hub, "hub address HOST:PORT")->capture_default_str();
  app.add_option("--certs", certs, "directory with ca.crt and issued/ID.crt, issued/ID.key")
      ->capture_default_str();
  app.add_option("--id", options.id, "device or person id (whose certificate to use)")
      ->required();

  PanicArgs panic;
  auto* panic_cmd = app.add_subcommand("panic", "press the panic button; waits for a responder");
  panic_cmd->add_option("--note", panic.note, "short note for the responders");
  panic_cmd->add_option("--status", panic.status, "actual, exercise or test")->capture_default_str();
  panic_cmd->add_option("--severity", panic.severity, "extreme, severe, moderate or minor")
      ->capture_default_str();
  panic_cmd->add_option("--wait", panic.wait_seconds, "seconds to wait for an acknowledgement")
      ->capture_default_str();
  panic_cmd->add_option("--seq", panic.seq, "device sequence number (default: Unix ms)");
  panic_cmd->add_flag("--json", panic.json, "status lines as JSON objects");

  std::string alert_id, reason, status = "acknowledged";
  auto* cancel_cmd = app.add_subcommand("cancel", "cancel your alert (false alarm)");
  cancel_cmd->add_option("ALERT_ID", alert_id, "the alert id panic printed")->required();
  cancel_cmd->add_option("--reason", reason, "why (e.g. false alarm)");

  auto* ack_cmd = app.add_subcommand("ack", "answer an alert you received");
  ack_cmd->add_option("ALERT_ID", alert_id, "alert id")->required();
  ack_cmd->add_option("--status", status, "acknowledged, en_route, on_scene or resolved")
      ->capture_default_str();

  ListenArgs listen;
  auto* listen_cmd = app.add_subcommand("listen", "print every event as it arrives");
  listen_cmd->add_flag("--json", listen.json, "one JSON object per line");
  listen_cmd->add_option("--count", listen.count, "exit after this many events");
  listen_cmd->add_option("--seconds", listen.seconds, "exit after this many seconds");
  listen_cmd->add_option("--state", listen.state,
                         "keep the last message processed in this file: replay what was missed "
                         "on start, reconnect when the link drops");

  std::string form_file;
  bool report_json = false;
  auto* report_cmd = app.add_subcommand("report", "file an incident information form");
  report_cmd->add_option("FORM_JSON", form_file, "the form (see docs/examples/incident-form.json)")
      ->required()
      ->check(CLI::ExistingFile);
  report_cmd->add_flag("--json", report_json, "the confirmation as a JSON object");
  std::vector<std::string> still_files;
  report_cmd
      ->add_option("--still", still_files,
                   "a CCTV still (JPEG, PNG or WebP) to upload and cite in the form; repeatable")
      ->check(CLI::ExistingFile);

  std::string upload_file;
  bool upload_json = false;
  auto* upload_cmd = app.add_subcommand(
      "upload", "upload an image (JPEG, PNG or WebP); prints the SHA-256 it is stored under");
  upload_cmd->add_option("FILE", upload_file, "the image")->required()->check(CLI::ExistingFile);
  upload_cmd->add_flag("--json", upload_json, "the result as a JSON object");

  SightingArgs sighting;
  bool gallery_json = false;
  GalleryArgs gallery_args;
  auto* gallery_cmd = app.add_subcommand(
      "gallery", "the exclusion gallery for your town: who is banned, conditions, expiry");
  gallery_cmd->add_flag("--json", gallery_json, "one JSON object per entry");
  gallery_cmd->add_option("--dir", gallery_args.dir,
                          "keep this folder in sync (entries, photos, deletions) and list it");
  gallery_cmd->add_flag("--watch", gallery_args.watch,
                        "with --dir: stay connected and apply live changes");
  gallery_cmd->add_option("--seconds", gallery_args.seconds, "with --watch: stop after this long")
      ->check(CLI::PositiveNumber);

  auto* sighting_cmd = app.add_subcommand(
      "sighting", "post an offender sighting to your town, CCTV and police");
  sighting_cmd->add_option("--text", sighting.text, "what was seen (at most 500 bytes)")
      ->required();
  sighting_cmd->add_option("--profile", sighting.profile_id, "the offender profile id seen");
  sighting_cmd->add_option("--photo", sighting.photo_file, "a photo (JPEG, PNG or WebP) to attach")
      ->check(CLI::ExistingFile);
  sighting_cmd->add_option("--location", sighting.location, "where (at most 200 bytes)");
  sighting_cmd->add_option("--heading", sighting.heading, "which way they went (at most 100 bytes)");
  sighting_cmd->add_option("--town", sighting.town,
                           "the town (required when your certificate covers all towns)");
  sighting_cmd->add_option("--seq", sighting.seq, "device sequence number (default: Unix ms)");
  sighting_cmd->add_flag("--json", sighting.json, "the hub's answer as a JSON object");

  std::function<int()> coord_command;
  add_coord_commands(app, options, &coord_command);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::cerr << "saferlink: " << e.what() << " (see --help)\n";
    return 2;
  }
  options.certs = certs;
  if (panic_cmd->parsed()) return run_panic(options, panic, std::cout, std::cerr);
  if (cancel_cmd->parsed()) return run_cancel(options, alert_id, reason, std::cout, std::cerr);
  if (ack_cmd->parsed()) return run_ack(options, alert_id, status, std::cout, std::cerr);
  if (listen_cmd->parsed()) return run_listen(options, listen, std::cout, std::cerr);
  if (report_cmd->parsed()) {
    std::ifstream in(form_file);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      std::cerr << "saferlink: cannot read " << form_file << "\n";
      return 1;
    }
    return run_report(options, text.str(), still_files, report_json, std::cout, std::cerr);
  }
  if (upload_cmd->parsed()) {
    return run_upload(options, upload_file, upload_json, std::cout, std::cerr);
  }
  if (sighting_cmd->parsed()) return run_sighting(options, sighting, std::cout, std::cerr);
  if (gallery_cmd->parsed()) {
    if (!gallery_args.dir.empty()) {
      gallery_args.json = gallery_json;
      return run_gallery_sync(options, gallery_args, std::cout, std::cerr);
    }
    if (gallery_args.watch) {
      std::cerr << "saferlink: --watch needs --dir" << std::endl;
      return 2;
    }
    return run_query(options, "gallery", "{}", gallery_json, std::cout, std::cerr);
  }
  if (coord_command) return coord_command();
  return 1;
}
