#include "server/console.hpp"

#include "core/base64.hpp"
#include "core/image.hpp"
#include "core/out_queue.hpp"
#include "core/tls.hpp"
#include "server/alert_store.hpp"
#include "server/audit.hpp"
#include "server/console_assets.hpp"
#include "server/session.hpp"
#include "server/sighting_store.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <SQLiteCpp/Database.h>
#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>

namespace saferlink::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using json = nlohmann::json;

namespace {

constexpr std::size_t kMaxBodyBytes = 64 * 1024;
constexpr std::size_t kMaxHeaderBytes = 8 * 1024;
constexpr auto kHandshakeDeadline = std::chrono::seconds(10);
constexpr auto kIdleDeadline = std::chrono::seconds(60);  // between requests on one connection
// After an answer that ends the connection, how long and how much of the rest of the request
// (a body too large, say) is read and dropped before closing. Closing with unread bytes makes
// the kernel send a reset, and a browser still sending would lose the answer that says why.
constexpr auto kLingerDeadline = std::chrono::seconds(2);
constexpr std::size_t kLingerBytes = 16 * 1024 * 1024;
constexpr unsigned kMaxConnections = 256;

using Stream = asio::ssl::stream<tcp::socket>;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

struct ActiveSlot {
  explicit ActiveSlot(std::shared_ptr<std::atomic<unsigned>> a) : active(std::move(a)) {}
  ~ActiveSlot() { active->fetch_sub(1); }
  ActiveSlot(const ActiveSlot&) = delete;
  ActiveSlot& operator=(const ActiveSlot&) = delete;
  std::shared_ptr<std::atomic<unsigned>> active;
};

std::string content_type_of(const std::string& path) {
  if (path.ends_with(".html")) return "text/html; charset=utf-8";
  if (path.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (path.ends_with(".css")) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

// A file of the console: from `dir` when set (development; plain names like /board.js only),
// else the compiled-in copy. nullopt when there is no such file.
std::optional<std::string> static_file(const std::string& dir, const std::string& path) {
  if (!dir.empty()) {
    static const std::regex plain("/[a-z0-9_-]+\\.(html|js|css)");
    if (!std::regex_match(path, plain)) return std::nullopt;
    std::ifstream in(std::filesystem::path(dir) / path.substr(1), std::ios::binary);
    if (!in) return std::nullopt;
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  for (const auto& asset : console_assets()) {
    if (asset.path == path) return asset.body;
  }
  return std::nullopt;
}

// A request a browser sent on behalf of a page of another origin (its Origin header names
// another scheme, host or port than this console) is refused with 403: the browser presents
// the person's certificate to any page that asks, so the origin is what tells the console's
// own page from another site's (cross-site request forgery, WebSocket hijacking). Requests
// without an Origin (programs, top-level navigation) pass.
std::optional<Response> cross_site(const Request& request);

void secure(Response& r, bool personal_data) {
  r.set(http::field::server, "saferlink-hub");
  r.set("Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'");
  r.set(http::field::strict_transport_security, "max-age=31536000");
  r.set("X-Content-Type-Options", "nosniff");
  r.set("X-Frame-Options", "DENY");
  r.set("Referrer-Policy", "no-referrer");
  r.set("Cross-Origin-Opener-Policy", "same-origin");
  r.set("Cross-Origin-Resource-Policy", "same-origin");  // no embedding in another site's page
  r.set(http::field::cache_control, personal_data ? "no-store" : "no-cache");
}

Response json_answer(http::status status, const std::string& body, unsigned version,
                     bool keep_alive) {
  Response r{status, version};
  secure(r, true);
  r.set(http::field::content_type, "application/json");
  r.keep_alive(keep_alive);
  r.body() = body;
  r.prepare_payload();
  return r;
}

Response error_answer(http::status status, const std::string& why, unsigned version,
                      bool keep_alive) {
  return json_answer(status, json{{"error", why}}.dump(), version, keep_alive);
}

http::status status_of(v1::ErrorCode code) {
  switch (code) {
    case v1::NOT_ALLOWED: return http::status::forbidden;
    case v1::STORE_FAILED: return http::status::internal_server_error;
    default: return http::status::bad_request;
  }
}

std::optional<Response> cross_site(const Request& request) {
  const auto origin = request.find(http::field::origin);
  if (origin == request.end()) return std::nullopt;
  const std::string expected = "https://" + std::string(request[http::field::host]);
  if (std::string(origin->value()) == expected) return std::nullopt;
  return error_answer(http::status::forbidden,
                      "cross-origin request refused: the console answers only its own pages",
                      request.version(), false);
}

// Runs `job` on the store thread and resumes on the calling coroutine's executor; rethrows
// what the job threw.
awaitable<void> on_store(Hub& hub, std::function<void(SQLite::Database&)> job) {
  auto executor = co_await asio::this_coro::executor;
  auto failure = std::make_shared<std::exception_ptr>();
  asio::steady_timer done(executor, std::chrono::steady_clock::time_point::max());
  Store::Done on_done = [failure, &done, executor](std::exception_ptr error) {
    // Store thread: hand the outcome to the connection's strand.
    asio::post(executor, [failure, &done, error] {
      *failure = error;
      done.cancel();
    });
  };
  hub.store().submit(std::move(job), std::move(on_done));
  co_await done.async_wait(asio::as_tuple(use_awaitable));
  if (*failure) std::rethrow_exception(*failure);
}

// Runs the query `op` (docs/protocol.md section 5.8) as `who` and waits for its outcome on
// this connection's strand.
awaitable<Hub::QueryOutcome> run_query(Hub& hub, const Identity& who, const std::string& op,
                                       const std::string& args_json) {
  auto executor = co_await asio::this_coro::executor;
  auto outcome = std::make_shared<Hub::QueryOutcome>();
  asio::steady_timer done(executor, std::chrono::steady_clock::time_point::max());
  std::function<void(Hub::QueryOutcome)> on_done = [outcome, &done, executor](
                                                       Hub::QueryOutcome o) {
    asio::post(executor, [outcome, &done, o = std::move(o)]() mutable {
      *outcome = std::move(o);
      done.cancel();
    });
  };
  hub.run_query(who, op, args_json, std::move(on_done));
  co_await done.async_wait(asio::as_tuple(use_awaitable));
  co_return std::move(*outcome);
}

// A coordinator query from POST /api/coord/OP: the body is its arguments.
awaitable<Response> coordinator_query(Hub& hub, const Identity& who, const std::string& op,
                                      const Request& request) {
  const unsigned version = request.version();
  const bool keep = request.keep_alive();
  json args = json::parse(request.body().empty() ? std::string("{}") : request.body(), nullptr,
                          false);
  if (args.is_discarded() || !args.is_object()) {
    co_return error_answer(http::status::bad_request, "the body must be a JSON object", version,
                           keep);
  }
  const auto outcome = co_await run_query(hub, who, op, args.dump());
  if (outcome.error) {
    co_return error_answer(status_of(*outcome.error), outcome.message, version, keep);
  }
  co_return json_answer(http::status::ok, outcome.json, version, keep);
}

// A whole image the hub holds, read with photos.get (its access rule and audit) piece by
// piece. Sets `mime`; on refusal returns the error response instead.
struct WholePhoto {
  std::string bytes;
  std::string mime;
  std::optional<Response> refusal;
};

awaitable<WholePhoto> read_photo(Hub& hub, const Identity& who, const std::string& sha,
                                 unsigned version, bool keep) {
  WholePhoto photo;
  for (std::size_t offset = 0;;) {
    const std::string args = json{{"sha256", sha}, {"offset", offset}}.dump();
    const auto outcome = co_await run_query(hub, who, "photos.get", args);
    if (outcome.error) {
      const bool unknown = outcome.message.starts_with("no image");
      photo.refusal = error_answer(unknown ? http::status::not_found : status_of(*outcome.error),
                                   outcome.message, version, keep);
      co_return photo;
    }
    const json piece = json::parse(outcome.json, nullptr, false);
    const auto bytes = piece.is_object() ? base64_decode(piece.value("data_b64", ""))
                                         : std::optional<std::string>();
    if (!bytes) {
      photo.refusal = error_answer(http::status::internal_server_error,
                                   "the store answered a photo piece that is not base64",
                                   version, keep);
      co_return photo;
    }
    photo.mime = piece.value("mime", "application/octet-stream");
    photo.bytes += *bytes;
    offset += bytes->size();
    if (piece.value("done", true) || bytes->empty()) co_return photo;
  }
}

// The store job behind GET /api/alerts: writes the answer into `body`. Not a coroutine, so
// that the lambda (and its captured strings) are made outside one: GCC 12 destroys such
// captures twice when the lambda is made inside a coroutine.
std::function<void(SQLite::Database&)> alerts_job(std::int64_t since, std::string town,
                                                  std::int64_t now,
                                                  std::shared_ptr<std::string> body) {
  return [since, town = std::move(town), now, body](SQLite::Database& db) {
    json list = json::array();
    for (const auto& a : alerts::recent(db, since, town, 500)) {
      json events = json::array();
      std::uint64_t delivered = 0;
      std::uint32_t round = 0;
      std::optional<std::int64_t> acknowledged_at;
      bool resolved = false;
      for (const auto& e : alerts::events(db, a.alert_id)) {
        if (e.kind == "delivered") {
          ++delivered;
          continue;
        }
        if (e.kind == "escalated") round = std::max(round, e.round);
        if (e.kind == "acknowledged" || e.kind == "en_route" || e.kind == "on_scene" ||
            e.kind == "resolved") {
          if (!acknowledged_at) acknowledged_at = e.at_ms;
        }
        if (e.kind == "resolved") resolved = true;
        events.push_back({{"kind", e.kind},
                          {"by_id", e.by_id},
                          {"by_role", e.by_role},
                          {"by_town", e.by_town},
                          {"at_ms", e.at_ms},
                          {"round", e.round}});
      }
      std::string state = "open";
      if (a.cancelled_at_ms) {
        state = "cancelled";
      } else if (resolved) {
        state = "resolved";
      } else if (acknowledged_at) {
        state = "acknowledged";
      } else if (a.expires_at_ms <= now) {
        state = "expired";
      }
      list.push_back({{"alert_id", a.alert_id},
                      {"device_id", a.device_id},
                      {"member", a.member},
                      {"town", a.town},
                      {"status", a.status},
                      {"severity", a.severity},
                      {"note", a.note},
                      {"pressed_at_ms", a.pressed_at_ms},
                      {"accepted_at_ms", a.accepted_at_ms},
                      {"expires_at_ms", a.expires_at_ms},
                      {"cancelled_at_ms", a.cancelled_at_ms ? json(*a.cancelled_at_ms) : json()},
                      {"cancel_reason", a.cancel_reason},
                      {"state", state},
                      {"escalation_round", round},
                      {"acknowledged_at_ms", acknowledged_at ? json(*acknowledged_at) : json()},
                      {"delivered", delivered},
                      {"events", std::move(events)}});
    }
    *body = json{{"now_ms", now}, {"alerts", std::move(list)}}.dump();
  };
}

// The hours=H of a board list's query string (default 12): 0 when it is malformed or out of
// 1..72.
std::int64_t hours_of(const std::string& target) {
  const auto q = target.find('?');
  if (q == std::string::npos) return 12;
  static const std::regex hours_only("hours=([0-9]{1,3})");
  std::smatch m;
  const std::string query = target.substr(q + 1);
  if (!std::regex_match(query, m, hours_only)) return 0;
  const int hours = std::stoi(m[1]);
  return hours >= 1 && hours <= 72 ? hours : 0;
}

// The store job behind GET /api/sightings (as alerts_job). Reading the list is audited: the
// sightings may name offenders.
std::function<void(SQLite::Database&)> sightings_job(std::int64_t since, std::int64_t hours,
                                                     std::string town, Identity who,
                                                     std::int64_t now,
                                                     std::shared_ptr<std::string> body) {
  return [since, hours, town = std::move(town), who = std::move(who), now,
          body](SQLite::Database& db) {
    json list = json::array();
    for (const auto& r : sightings::recent(db, since, town, 500)) {
      list.push_back({{"sighting_id", r.sighting_id},
                      {"text", r.text},
                      {"location", r.location},
                      {"heading", r.heading},
                      {"town", r.town},
                      {"profile_id", r.profile_id.value_or(0)},
                      {"profile_name", r.profile_name},
                      {"photo_sha256", r.photo_sha256},
                      {"possible_breach", r.possible_breach},
                      {"notice_id", r.notice_id.value_or(0)},
                      {"origin_id", r.device_id},
                      {"origin_role", r.sender_role},
                      {"origin_member", r.sender_member},
                      {"origin_town", r.sender_town},
                      {"seen_at_ms", r.seen_at_ms},
                      {"accepted_at_ms", r.accepted_at_ms}});
    }
    audit::append(db, {now, who.id, std::string(to_string(who.role)), "read", "sightings", "",
                       "last " + std::to_string(hours) + " h: " + std::to_string(list.size())});
    *body = json{{"now_ms", now}, {"sightings", std::move(list)}}.dump();
  };
}

// GET /api/alerts?hours=H and GET /api/sightings?hours=H: the board's history, newest first
// (docs/operations.md, "Console").
awaitable<Response> board_list(Hub& hub, const Identity& who, const Request& request,
                               bool alerts) {
  const unsigned version = request.version();
  const bool keep = request.keep_alive();
  const std::int64_t hours = hours_of(std::string(request.target()));
  if (hours == 0) {
    co_return error_answer(http::status::bad_request,
                           "the only parameter is hours=H, 1 to 72 (default 12)", version, keep);
  }
  const std::int64_t now = now_ms();
  const std::int64_t since = now - hours * 3600 * 1000;
  const std::string town = who.role == Role::coordinator ? std::string(kAllTowns) : who.town;
  auto body = std::make_shared<std::string>();
  auto job = alerts ? alerts_job(since, town, now, body)
                    : sightings_job(since, hours, town, who, now, body);
  co_await on_store(hub, std::move(job));
  co_return json_answer(http::status::ok, *body, version, keep);
}

Response sar_answer(const json& document, unsigned version, bool keep) {
  Response r = json_answer(http::status::ok, document.dump(2), version, keep);
  const auto id = document.value("profile_id", std::int64_t{0});
  r.set(http::field::content_disposition,
        "attachment; filename=\"sar-profile-" + std::to_string(id) + ".json\"");
  return r;
}

// GET /api/sar/PROFILE_ID: the subject access export as one JSON download, images included.
awaitable<Response> sar_download(Hub& hub, const Identity& who, const std::string& id,
                                 const Request& request) {
  const unsigned version = request.version();
  const bool keep = request.keep_alive();
  static const std::regex number("[1-9][0-9]{0,17}");
  if (!std::regex_match(id, number)) {
    co_return error_answer(http::status::bad_request, "name a profile: /api/sar/PROFILE_ID",
                           version, keep);
  }
  const std::string args = "{\"profile_id\": " + id + "}";  // id: digits only, checked above
  const auto outcome = co_await run_query(hub, who, "sar", args);
  if (outcome.error) {
    co_return error_answer(status_of(*outcome.error), outcome.message, version, keep);
  }
  json document = json::parse(outcome.json, nullptr, false);
  if (!document.is_object()) {
    co_return error_answer(http::status::internal_server_error, "the export is not JSON",
                           version, keep);
  }
  // Plain values, not json::value("key", …) or temporaries: GCC 12 miscompiles those in
  // coroutines.
  std::vector<std::string> shas;
  if (document.contains("photos") && document["photos"].is_array()) {
    for (const auto& sha : document["photos"]) {
      if (sha.is_string()) shas.push_back(sha.get<std::string>());
    }
  }
  json photos = json::array();
  for (const auto& sha : shas) {
    auto photo = co_await read_photo(hub, who, sha, version, keep);
    if (photo.refusal) co_return std::move(*photo.refusal);
    json entry = json::object();
    entry["sha256"] = sha;
    entry["mime"] = photo.mime;
    entry["data_b64"] = base64_encode(photo.bytes);
    photos.push_back(std::move(entry));
  }
  document["photos"] = std::move(photos);
  co_return sar_answer(document, version, keep);
}

awaitable<Response> answer(Hub& hub, const Identity& who, const Request& request) {
  const unsigned version = request.version();
  const bool keep = request.keep_alive();
  std::string target(request.target());
  target = target.substr(0, target.find('?'));
  if (target == "/api/me") {
    if (request.method() != http::verb::get) {
      co_return error_answer(http::status::method_not_allowed, "use GET", version, keep);
    }
    co_return json_answer(http::status::ok,
                          json{{"id", who.id},
                               {"role", std::string(to_string(who.role))},
                               {"town", who.town},
                               {"member", who.member}}
                              .dump(),
                          version, keep);
  }
  if (target == "/api/handsets") {
    // Handsets on air: for the control room and coordinators, not for shops.
    if (who.role == Role::shop) {
      co_return error_answer(http::status::forbidden,
                             "the handsets on air are for CCTV, police and coordinators",
                             version, keep);
    }
    if (request.method() != http::verb::get) {
      co_return error_answer(http::status::method_not_allowed, "use GET", version, keep);
    }
    json list = json::array();
    const auto rows = co_await hub.on_air();
    for (const auto& row : rows) {
      // Police of one town see their town's handsets (and all-town ones); others see all.
      if (who.role == Role::police && !who.all_towns() && row.town != who.town &&
          row.town != kAllTowns) {
        continue;
      }
      list.push_back({{"device_id", row.device_id},
                      {"role", std::string(to_string(row.role))},
                      {"town", row.town},
                      {"member", row.member},
                      {"connected_at_ms", row.connected_at_ms},
                      {"last_heard_ms", row.last_heard_ms},
                      {"battery_percent", row.battery_percent},
                      {"software", row.software}});
    }
    co_return json_answer(http::status::ok, json{{"now_ms", now_ms()}, {"handsets", list}}.dump(),
                          version, keep);
  }
  if (target == "/api/alerts" || target == "/api/sightings") {
    if (who.role == Role::shop) {
      co_return error_answer(http::status::forbidden,
                             "the alert board is for CCTV, police and coordinators", version,
                             keep);
    }
    if (request.method() != http::verb::get) {
      co_return error_answer(http::status::method_not_allowed, "use GET", version, keep);
    }
    co_return co_await board_list(hub, who, request, target == "/api/alerts");
  }
  constexpr std::string_view kPhoto = "/api/photo/";
  if (target.starts_with(kPhoto)) {
    if (request.method() != http::verb::get) {
      co_return error_answer(http::status::method_not_allowed, "use GET", version, keep);
    }
    const std::string sha = target.substr(kPhoto.size());
    if (!is_sha256_hex(sha)) {
      co_return error_answer(http::status::bad_request,
                             "name an image by its SHA-256: 64 lower-case hex digits", version,
                             keep);
    }
    auto photo = co_await read_photo(hub, who, sha, version, keep);
    if (photo.refusal) co_return std::move(*photo.refusal);
    Response r{http::status::ok, version};
    secure(r, true);
    r.set(http::field::content_type, photo.mime);
    r.keep_alive(keep);
    r.body() = std::move(photo.bytes);
    r.prepare_payload();
    co_return r;
  }
  constexpr std::string_view kSar = "/api/sar/";
  if (target.starts_with(kSar)) {
    if (who.role != Role::coordinator) {
      co_return error_answer(http::status::forbidden,
                             "subject access exports are for coordinators", version, keep);
    }
    if (request.method() != http::verb::get) {
      co_return error_answer(http::status::method_not_allowed, "use GET", version, keep);
    }
    co_return co_await sar_download(hub, who, target.substr(kSar.size()), request);
  }
  constexpr std::string_view kCoord = "/api/coord/";
  if (target.starts_with(kCoord)) {
    if (who.role != Role::coordinator) {
      co_return error_answer(http::status::forbidden,
                             "the coordinator API is for coordinators; your certificate says " +
                                 std::string(to_string(who.role)),
                             version, keep);
    }
    if (request.method() != http::verb::post) {
      co_return error_answer(http::status::method_not_allowed, "use POST with a JSON object",
                             version, keep);
    }
    const std::string op = target.substr(kCoord.size());
    if (op.empty() || op.size() > 64) {
      co_return error_answer(http::status::not_found, "name a query: /api/coord/OP", version,
                             keep);
    }
    const std::string type(request[http::field::content_type]);
    if (!type.starts_with("application/json")) {
      co_return error_answer(http::status::unsupported_media_type,
                             "send the arguments as Content-Type: application/json", version,
                             keep);
    }
    co_return co_await coordinator_query(hub, who, op, request);
  }
  if (target.starts_with("/api/")) {
    co_return error_answer(http::status::not_found, "no such API: " + target, version, keep);
  }
  const std::string path = target == "/" ? "/index.html" : target;
  if (auto body = static_file(hub.config().console_dir, path)) {
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      co_return error_answer(http::status::method_not_allowed, "use GET", version, keep);
    }
    Response r{http::status::ok, version};
    secure(r, false);
    r.set(http::field::content_type, content_type_of(path));
    r.keep_alive(keep);
    r.body() = std::move(*body);
    r.prepare_payload();
    co_return r;
  }
  co_return error_answer(http::status::not_found, "not found: " + target, version, keep);
}

// The console's live feed: a WebSocket on which the browser is a device. Each text message is
// one Envelope in protobuf's canonical JSON form (field names as in the .proto); the hub's
// frames for it are converted the same way and written in priority order.
class WsLink : public Link, public std::enable_shared_from_this<WsLink> {
 public:
  using Ws = beast::websocket::stream<Stream&>;

  WsLink(asio::any_io_executor strand, OutQueue::Limits limits, std::string name)
      : strand_(std::move(strand)), queue_(limits), wake_(strand_), name_(std::move(name)) {
    wake_.expires_at(std::chrono::steady_clock::time_point::max());
  }

  void send(Frame frame, Priority priority) override {
    asio::post(strand_, [self = shared_from_this(), frame = std::move(frame), priority]() mutable {
      if (self->ending_) return;
      if (self->queue_.push(std::move(frame), priority) == OutQueue::Push::overflow) {
        spdlog::warn("{}: queue full (not reading); closing", self->name_);
        self->end(false);
        return;
      }
      self->queued_ = self->queue_.messages();
      self->wake_.cancel();
    });
  }
  void close(std::string reason) override {
    asio::post(strand_, [self = shared_from_this(), reason = std::move(reason)] {
      spdlog::info("{}: closing: {}", self->name_, reason);
      self->closing_ = true;
      self->wake_.cancel();
    });
  }
  void abort(std::string reason) override {
    asio::post(strand_, [self = shared_from_this(), reason = std::move(reason)] {
      spdlog::info("{}: ended: {}", self->name_, reason);
      self->end(false);
    });
  }
  using Link::send;
  std::size_t queued_messages() const override { return queued_.load(); }
  const asio::any_io_executor& executor() const override { return strand_; }

  // Writes queued frames as JSON text until the link ends. On the strand.
  awaitable<void> writer(Ws& ws) {
    std::vector<Frame> batch;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    for (;;) {
      if (ending_) {
        end(false);
        co_return;
      }
      if (queue_.empty()) {
        if (closing_) {
        end(false);
        co_return;
      }
        co_await wake_.async_wait(asio::as_tuple(use_awaitable));
        wake_.expires_at(std::chrono::steady_clock::time_point::max());
        continue;
      }
      queue_.pop_batch(batch, 64 * 1024);
      queued_ = queue_.messages();
      for (const auto& frame : batch) {
        v1::Envelope envelope;
        if (frame->size() < kFrameHeaderBytes ||
            !envelope.ParseFromArray(frame->data() + kFrameHeaderBytes,
                                     static_cast<int>(frame->size() - kFrameHeaderBytes))) {
          continue;
        }
        std::string text;
        if (!google::protobuf::util::MessageToJsonString(envelope, &text, options).ok()) continue;
        ws.text(true);
        auto [ec, n] = co_await ws.async_write(asio::buffer(text), asio::as_tuple(use_awaitable));
        (void)n;
        if (ec) {
        end(false);
        co_return;
      }
      }
    }
  }
  // Stops the writer and, unless the peer closed first, the socket. On the strand.
  void end(bool /*peer_closed*/) {
    ending_ = true;
    wake_.cancel();
    if (socket_ != nullptr) {
      boost::system::error_code ignored;
      socket_->close(ignored);
    }
  }
  void attach_socket(tcp::socket* socket) { socket_ = socket; }

 private:
  asio::any_io_executor strand_;
  OutQueue queue_;
  asio::steady_timer wake_;
  std::string name_;
  std::atomic<std::size_t> queued_{0};
  bool closing_ = false;
  bool ending_ = false;
  tcp::socket* socket_ = nullptr;
};

// Runs the live feed on an upgraded request until either side ends it. On the connection's
// strand.
awaitable<void> live(Hub& hub, const Identity& who, Stream& stream, Request request) {
  using namespace asio::experimental::awaitable_operators;
  WsLink::Ws ws(stream);
  ws.set_option(beast::websocket::stream_base::timeout::suggested(beast::role_type::server));
  ws.read_message_max(hub.config().max_frame_bytes);
  auto [accept_error] = co_await ws.async_accept(request, asio::as_tuple(use_awaitable));
  if (accept_error) co_return;
  const std::uint64_t id = hub.new_session_id();
  const std::string name = "console " + std::to_string(id);
  auto link = std::make_shared<WsLink>(
      co_await asio::this_coro::executor,
      OutQueue::Limits{hub.config().queue_max_bytes, hub.config().queue_max_messages}, name);
  link->attach_socket(&stream.next_layer());
  spdlog::info("{}: live feed for {} ({}, {})", name, who.id, to_string(who.role), who.town);
  DeviceSession session(hub, id, who, link);
  auto reader = [&]() -> awaitable<void> {
    beast::flat_buffer buffer;
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;
    for (;;) {
      auto [ec, n] = co_await ws.async_read(buffer, asio::as_tuple(use_awaitable));
      (void)n;
      if (ec) co_return;
      const std::string text = beast::buffers_to_string(buffer.data());
      buffer.consume(buffer.size());
      v1::Envelope envelope;
      if (!ws.got_text() ||
          !google::protobuf::util::JsonStringToMessage(text, &envelope, options).ok() ||
          envelope.body_case() == v1::Envelope::BODY_NOT_SET) {
        v1::Envelope error = make_error(0, v1::MALFORMED,
                                        "not an Envelope in JSON (docs/protocol.md, section 8)");
        link->send(error);
        continue;
      }
      session(std::move(envelope));
    }
  };
  // Named, not temporaries in the co_await expression (GCC 12 destroys those twice).
  auto reading = reader();
  auto writing = link->writer(ws);
  co_await (std::move(reading) || std::move(writing));
  link->end(true);
  if (session.attached()) hub.detach(id);
  spdlog::info("{}: live feed for {} ended", name, who.id);
}

// Ends the connection after its last answer: FIN after the answer, then what the peer still
// sends is read and dropped until it closes too (or the deadline or the byte cap), then close.
awaitable<void> close_lingering(tcp::socket& socket) {
  using namespace asio::experimental::awaitable_operators;
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  asio::steady_timer deadline(socket.get_executor(), kLingerDeadline);
  std::array<char, 4096> sink{};
  std::size_t dropped = 0;
  while (dropped < kLingerBytes) {
    auto read = co_await (socket.async_read_some(asio::buffer(sink), asio::as_tuple(use_awaitable)) ||
                          deadline.async_wait(asio::as_tuple(use_awaitable)));
    if (read.index() == 1) break;
    auto [ec, n] = std::get<0>(read);
    if (ec) break;
    dropped += n;
  }
  socket.close(ignored);
}

awaitable<void> serve(Hub& hub, std::shared_ptr<asio::ssl::context> tls, tcp::socket socket,
                      std::shared_ptr<std::atomic<unsigned>> active) {
  using namespace asio::experimental::awaitable_operators;
  ActiveSlot slot(std::move(active));
  std::string peer = "?";
  {
    boost::system::error_code ec;
    auto endpoint = socket.remote_endpoint(ec);
    if (!ec) peer = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  }
  Stream stream(std::move(socket), *tls);
  asio::steady_timer deadline(stream.get_executor(), kHandshakeDeadline);
  auto shaken = co_await (stream.async_handshake(asio::ssl::stream_base::server,
                                                 asio::as_tuple(use_awaitable)) ||
                          deadline.async_wait(asio::as_tuple(use_awaitable)));
  std::string failure;
  if (shaken.index() == 1) {
    failure = "handshake deadline passed";
  } else if (auto [ec] = std::get<0>(shaken); ec) {
    failure = handshake_failure(stream.native_handle(), ec.message());
  }
  std::optional<Identity> who;
  if (failure.empty()) who = peer_identity(stream.native_handle(), &failure);
  if (who && (!hub.serves_town(who->town) || who->role == Role::hub)) {
    failure = who->id + " (" + std::string(to_string(who->role)) + ", " + who->town +
              ") may not use this hub's console";
    who.reset();
  }
  if (!who) {
    hub.count_handshake_failure();
    spdlog::warn("console: TLS from {} refused: {}", peer, failure);
    boost::system::error_code ignored;
    stream.lowest_layer().close(ignored);
    co_return;
  }
  beast::flat_buffer buffer;
  bool answered_last = false;  // the loop ended after writing an answer that closes
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(kMaxHeaderBytes));
    parser.body_limit(kMaxBodyBytes);
    deadline.expires_after(kIdleDeadline);
    auto read = co_await (http::async_read(stream, buffer, parser, asio::as_tuple(use_awaitable)) ||
                          deadline.async_wait(asio::as_tuple(use_awaitable)));
    if (read.index() == 1) break;  // idle: close
    auto [ec, n] = std::get<0>(read);
    (void)n;
    Response response;
    bool close_after = false;
    if (ec == http::error::body_limit) {
      response = error_answer(http::status::payload_too_large,
                              "the body is larger than 64 KiB", 11, false);
      close_after = true;
    } else if (ec == http::error::end_of_stream || ec == asio::ssl::error::stream_truncated ||
               ec == asio::error::eof || ec == asio::error::connection_reset) {
      break;
    } else if (ec) {
      response = error_answer(http::status::bad_request, "bad request: " + ec.message(), 11, false);
      close_after = true;
    } else {
      Request request = parser.release();
      if (auto refusal = cross_site(request)) {
        // A page of another site in this person's browser would present their certificate
        // too: it gets nothing, neither the API nor the live feed.
        response = std::move(*refusal);
        close_after = true;
      } else if (beast::websocket::is_upgrade(request)) {
        std::string target(request.target());
        if (target.substr(0, target.find('?')) == "/api/live") {
          co_await live(hub, *who, stream, std::move(request));
          break;
        }
        response = error_answer(http::status::not_found, "the live feed is at /api/live",
                                request.version(), false);
        close_after = true;
      } else {
        response = co_await answer(hub, *who, request);
      }
      close_after = close_after || !request.keep_alive();
      if (response.result() != http::status::ok) {
        spdlog::info("console: {} {} {} -> {}", who->id, std::string(request.method_string()),
                     std::string(request.target()), response.result_int());
      }
    }
    auto [write_error, written] =
        co_await http::async_write(stream, response, asio::as_tuple(use_awaitable));
    (void)written;
    if (write_error) break;
    if (close_after) {
      answered_last = true;
      break;
    }
  }
  if (answered_last) {
    co_await close_lingering(stream.next_layer());
  } else {
    boost::system::error_code ignored;
    stream.lowest_layer().close(ignored);
  }
}

}  // namespace

ConsoleServer::ConsoleServer(Hub& hub, asio::io_context& io, Strand strand)
    : hub_(hub), io_(io), strand_(std::move(strand)), acceptor_(strand_) {}

std::uint16_t ConsoleServer::bind(const std::string& host_port) {
  const HostPort where = parse_host_port(host_port, "console_listen");
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(where.host, ec);
  if (ec) throw ConfigError("console_listen: '" + where.host + "' is not an IP address");
  const tcp::endpoint endpoint(address, where.port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint, ec);
  if (ec) throw ConfigError("console_listen: cannot bind " + host_port + ": " + ec.message());
  acceptor_.listen(asio::socket_base::max_listen_connections);
  return acceptor_.local_endpoint().port();
}

std::string ConsoleServer::bound_address() const {
  boost::system::error_code ec;
  const auto endpoint = acceptor_.local_endpoint(ec);
  if (ec) return "(not bound)";
  const auto address = endpoint.address();
  return (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) + ":" +
         std::to_string(endpoint.port());
}

void ConsoleServer::start() { asio::co_spawn(strand_, accept_loop(), asio::detached); }

void ConsoleServer::close() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

awaitable<void> ConsoleServer::accept_loop() {
  for (;;) {
    auto [ec, socket] =
        co_await acceptor_.async_accept(asio::make_strand(io_), asio::as_tuple(use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      spdlog::warn("console: accept failed: {}", ec.message());
      continue;
    }
    if (active_->fetch_add(1) >= kMaxConnections) {
      active_->fetch_sub(1);
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    // On the hub strand here: the current TLS context (CRL reloads replace it).
    auto executor = socket.get_executor();
    asio::co_spawn(executor, serve(hub_, hub_.tls_context(), std::move(socket), active_),
                   asio::detached);
  }
}

}  // namespace saferlink::server
