// The `saferlink` handheld commands as functions: each connects, does one job, prints what a
// person or a script needs, and returns the process exit status (0 success, 1 failure with a
// one-line reason on `err`). Each runs its own single-threaded io_context; call from main().
#pragma once

#include "client/client.hpp"

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <iosfwd>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace saferlink::client {

// Runs one command coroutine to completion on its own io_context; a ClientError (or any other
// exception) becomes "saferlink: <reason>" on `err` and exit status 1.
int run_command(std::ostream& err, std::function<boost::asio::awaitable<int>()> body);

struct PanicArgs {
  std::string note;
  std::string status = "actual";     // actual | exercise | test
  std::string severity = "severe";
  double wait_seconds = 120;         // give up (exit 1) if nobody has acknowledged by then
  std::optional<std::uint64_t> seq;  // device sequence; default: Unix milliseconds
  bool json = false;
};
int run_panic(const ClientOptions& options, const PanicArgs& args, std::ostream& out,
              std::ostream& err);

int run_cancel(const ClientOptions& options, const std::string& alert_id,
               const std::string& reason, std::ostream& out, std::ostream& err);

int run_ack(const ClientOptions& options, const std::string& alert_id, const std::string& status,
            std::ostream& out, std::ostream& err);

struct ListenArgs {
  bool json = false;
  std::optional<std::size_t> count;  // exit 0 after this many events
  std::optional<double> seconds;     // exit 0 after this long
  // A file holding the last sequence number processed: the hub replays what came after it
  // (store-and-forward), and a lost connection is reconnected instead of ending the command.
  std::filesystem::path state;
};
int run_listen(const ClientOptions& options, const ListenArgs& args, std::ostream& out,
               std::ostream& err);

// Files an incident information form (a JSON file in the shape of
// docs/examples/incident-form.json); prints the form id, then the hub's confirmation. Exit 0
// only once the hub has committed it. Retries with the same form id after a lost connection.
// Each of `still_files` (CCTV stills) is uploaded first (client/upload.hpp) and its stored
// SHA-256 appended to the form's stills; an image the hub refuses stops the report (exit 1).
int run_report(const ClientOptions& options, const std::string& form_json_text,
               const std::vector<std::string>& still_files, bool json, std::ostream& out,
               std::ostream& err);

// Uploads one image file (JPEG, PNG or WebP; the hub checks the content and strips metadata
// such as GPS) and prints the SHA-256 it is stored under — the one to cite in a form — or with
// `json` one object (file, sha256, stored_sha256, mime, size). Exit 0 only once the hub has
// committed it. A lost connection is retried, resuming from the last byte the hub holds.
int run_upload(const ClientOptions& options, const std::string& file, bool json,
               std::ostream& out, std::ostream& err);

struct SightingArgs {
  std::string text;                        // required, at most 500 bytes
  std::optional<std::int64_t> profile_id;  // an offender profile seen
  std::string photo_file;                  // an image to upload first and cite
  std::string location;                    // at most 200 bytes
  std::string heading;                     // at most 100 bytes
  std::string town;                        // required when the certificate says "all"
  std::optional<std::uint64_t> seq;        // device sequence; default: Unix milliseconds
  bool json = false;
};
// Posts an offender sighting: prints the sighting id ("<id>:<seq>"), then the hub's answer,
// "accepted, relayed to N" with " (possible breach of notice M)" when the named profile has an
// active exclusion notice covering the town (or with `json` one JSON object). Exit 0 only once
// the hub has committed it. The photo, if any, is uploaded first (client/upload.hpp). A lost
// connection is retried with the same sighting id (the hub answers a retry without relaying
// it twice).
int run_sighting(const ClientOptions& options, const SightingArgs& args, std::ostream& out,
                 std::ostream& err);

// Sends one Query (op + JSON object of arguments) and prints the result: with `json`, one JSON
// object per line (an array result is printed one element per line); otherwise indented JSON.
int run_query(const ClientOptions& options, const std::string& op, const std::string& args_json,
              bool json, std::ostream& out, std::ostream& err);

}  // namespace saferlink::client
