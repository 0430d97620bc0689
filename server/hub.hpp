// Hub: the SaferLink device listener. Accepts mutual-TLS connections, runs one session per
// device, and relays panic alerts, statuses, cancels and sightings between sessions; writes
// every alert and sighting to the store before it tells the sender `accepted`.
//
// Threads and executors:
//   - `threads` network threads run the io_context. Each session lives on its own strand
//     (server/session.cpp); cross-session work is posted.
//   - Hub state (the session registry, the alert tracker, the escalation and CRL timers, the
//     current TLS context) lives on the hub strand: every member marked [hub strand] is touched
//     only there.
//   - SQLite runs on the store's own thread; completions post back to the hub strand.
//   - Finished image uploads are checked and written on the blob pool (one thread).
//   - The /metrics listener (server/metrics.hpp, when metrics_listen is set) accepts on the hub
//     strand; each scrape runs on its own strand and reads queue depths with queue_depths().
// Public functions may be called from any thread.
#pragma once

#include "core/connection.hpp"
#include "core/identity.hpp"
#include "server/alert_tracker.hpp"
#include "server/blob_store.hpp"
#include "server/config.hpp"
#include "server/notices.hpp"
#include "server/outbox.hpp"
#include "server/store.hpp"
#include "server/uploads.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace saferlink::server {
class MetricsServer;
class ConsoleServer;
}

namespace saferlink::server {

// Photo downloads (PhotoRequest): pieces of at most 16 KiB, at most 256 KiB per request.
inline constexpr std::uint64_t kPhotoChunkBytes = 16 * 1024;
inline constexpr std::uint64_t kPhotoWindowBytes = 256 * 1024;

class Hub {
 public:
  // Loads TLS material and opens the store; throws with a message that says what to fix
  // (missing certificate, unreadable CRL, newer database, bad address).
  explicit Hub(HubConfig config);
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Binds the listener and starts the network threads; returns once accepting.
  void start();
  // Blocks until SIGINT/SIGTERM (SIGHUP reloads the CRL), then stops. For main().
  void run_until_signal();
  // Stops accepting, ends every session, joins the threads. Idempotent.
  void stop();

  // The bound device port (useful with port 0).
  std::uint16_t port() const { return port_.load(); }
  // The bound /metrics port (useful with port 0); 0 when metrics_listen is off.
  std::uint16_t metrics_port() const { return metrics_port_.load(); }
  // The bound console port (useful with port 0); 0 when console_listen is off.
  std::uint16_t console_port() const { return console_port_.load(); }

  // [hub strand] The current TLS server context (the console's acceptor runs on the strand).
  std::shared_ptr<boost::asio::ssl::context> tls_context() const { return tls_; }

  // Runs a query to the intelligence store for `who` (server/queries.hpp) on the store thread;
  // `done` is called there after the commit with the answer or the refusal.
  struct QueryOutcome {
    std::optional<v1::ErrorCode> error;  // NOT_ALLOWED, INVALID, STORE_FAILED
    std::string message;                 // with error: one line for a person
    std::string json;                    // without error: the result
  };
  void run_query(const Identity& who, const std::string& op, const std::string& args_json,
                 std::function<void(QueryOutcome)> done);

  // Re-reads the CRL: new handshakes use it, live sessions of revoked certificates end.
  void reload_crl();

  struct Stats {
    std::uint64_t sessions_live = 0;
    std::uint64_t alerts_accepted = 0;
    std::uint64_t alerts_duplicate = 0;
    std::uint64_t escalations = 0;
    std::uint64_t refusals = 0;
    std::uint64_t handshake_failures = 0;
    std::uint64_t forms_stored = 0;        // new incident forms written (not repeats)
    std::uint64_t sightings_accepted = 0;  // new sightings stored and relayed (not repeats)
    std::uint64_t queries = 0;             // queries answered (results and refusals)
    std::uint64_t sessions_dropped = 0;    // sessions that ended unexpectedly (not a clean close)
    std::uint64_t replayed = 0;            // store-and-forward messages replayed on reconnect
    std::uint64_t gallery_entries_sent = 0;   // GalleryEntry frames (syncs and live changes)
    std::uint64_t gallery_removals_sent = 0;  // GalleryRemove frames
    std::uint64_t photo_bytes_sent = 0;       // image bytes in PhotoChunk frames
    std::uint64_t handshakes_in_flight = 0;   // TLS handshakes running now (gauge)
  };
  Stats stats() const;

  // Outgoing queue depths over the live sessions, gathered in one pass on the hub strand.
  struct QueueDepths {
    std::uint64_t total_messages = 0;
    std::uint64_t max_messages = 0;  // the deepest single session
  };
  // Awaitable from any executor: hops to the hub strand and back.
  boost::asio::awaitable<QueueDepths> queue_depths();

  // The devices on air now, one row per session, for the console's "handsets on air" view.
  struct OnAir {
    std::string device_id;
    Role role = Role::shop;
    std::string town;
    std::string member;
    std::int64_t connected_at_ms = 0;
    std::int64_t last_heard_ms = 0;    // its hello or its latest heartbeat
    std::uint32_t battery_percent = 0;  // from its latest heartbeat; 0: not reported
    std::string software;               // what its Hello said it runs (e.g. "saferlink-console")
  };
  // Awaitable from any executor: hops to the hub strand and back. Sorted by town, then id.
  boost::asio::awaitable<std::vector<OnAir>> on_air();
  // A device's heartbeat arrived (session strand): noted for on_air().
  void on_heartbeat(std::uint64_t session_id, std::uint32_t battery_percent);

  Store& store() { return *store_; }

  // --- Called by sessions (server/session.cpp), from their strands. ---
  struct SessionRef {
    std::uint64_t id;
    Identity identity;
    std::shared_ptr<Link> connection;  // a handset's Connection or the console's WebSocket
  };
  // What a device's hello asked for, beyond being connected.
  struct HelloInfo {
    bool resume = false;            // capability "resume": replay what it missed
    outbox::Cursor cursor;          // the last sequence numbers it processed, per lane
    bool gallery = false;           // capability "gallery": keep its gallery in sync
    std::uint64_t gallery_version = 0;
    std::string software;           // Hello.software (at most 100 bytes kept)
    bool board = false;             // capability "board" (the console's alert board): every
                                    // AlertUpdate of the alerts it may see, whoever acted
  };
  void attach(SessionRef session, HelloInfo hello);
  void detach(std::uint64_t session_id);
  void on_panic(const SessionRef& from, std::uint64_t msg_id, const v1::PanicAlert& panic);
  void on_cancel(const SessionRef& from, std::uint64_t msg_id, const v1::CancelAlert& cancel);
  void on_status(const SessionRef& from, std::uint64_t msg_id, const v1::RecipientStatus& status);
  // A sighting that passed check_sighting (session strand): stored (the store decides the
  // breach flag), then SightingAccepted to the sender and the relay, on the hub strand, to
  // every session receives_sighting names; Error(INVALID) for an unknown profile or photo.
  void on_sighting(const SessionRef& from, std::uint64_t msg_id, const v1::Sighting& sighting);
  // An incident form that passed validation (session strand): stored, then FormConfirmed.
  void on_form(const SessionRef& from, std::uint64_t msg_id, const v1::IncidentForm& form);
  // A query to the intelligence store (server/queries.hpp): run on the store thread, then
  // QueryResult or Error.
  void on_query(const SessionRef& from, std::uint64_t msg_id, const v1::Query& query);
  // A handset deleted a gallery entry: recorded, then Receipt (Error(INVALID) for no such
  // notice).
  void on_gallery_removed(const SessionRef& from, std::uint64_t msg_id, std::int64_t notice_id);
  // A photo download window: checked against what the device may see (store thread), read on
  // the blob pool and queued as PhotoChunk frames at bulk priority.
  void on_photo_request(const SessionRef& from, std::uint64_t msg_id,
                        const v1::PhotoRequest& request);
  const std::vector<std::string>& towns() const { return towns_; }
  // Where image files live: the `blobs` setting, or "blobs" beside the database.
  std::filesystem::path blob_root() const;
  // The notice lifecycle's settings from the configuration (towns, validity, review).
  notices::Options notice_options() const;
  // What each session's uploads (server/uploads.hpp) use: the store, the image files, the
  // blob pool and the image cap (any thread).
  UploadServices upload_services();
  void count_refusal() { ++refusals_; }
  // A fresh session id (any thread), for sessions that do not come through accept_loop (the
  // console's WebSocket).
  std::uint64_t new_session_id() { return next_session_id_++; }
  void count_handshake_failure() { ++handshake_failures_; }
  // A session's handshake phase is over (done or failed): frees a slot (any thread, once per
  // accepted connection).
  void handshake_done();
  void count_session_dropped() { ++sessions_dropped_; }
  const HubConfig& config() const { return config_; }
  // True when `town` is one of this hub's towns or "all" (any thread: towns never change).
  bool serves_town(const std::string& town) const;

 private:
  struct LiveAlert {
    v1::PanicAlert relay;  // the message as relayed (origin fields filled in)
    // Devices off air that have this alert waiting in their outbox: an escalation round is
    // not queued for them again (they get the alert once when they come back).
    std::set<std::string> queued;
  };

  // A session as the hub strand sees it.
  struct LiveSession : SessionRef {
    HelloInfo hello;
    // Until the replay of what it missed has been sent, sequenced messages for it are held
    // here (in order) and sent after the replay, so that sequence order is kept (they were
    // numbered after the replay was read, so none of them is in it).
    bool ready = false;
    std::vector<std::pair<std::uint64_t, std::pair<Frame, Priority>>> held;
    bool gallery_synced = false;
    std::uint64_t gallery_version = 0;
    std::set<std::int64_t> gallery_held;  // notice ids it may hold
    std::int64_t connected_at_ms = 0;
    std::int64_t last_heard_ms = 0;
    std::uint32_t battery_percent = 0;
  };

  // A device that has said hello to this hub at some time.
  struct DeviceState {
    Identity identity;
    std::uint64_t last_seq = 0;  // the last sequence number handed out to it
  };

  struct AttachResult;
  struct GalleryPush;

  boost::asio::awaitable<void> accept_loop();
  void fan_out(const std::string& alert_id, bool escalated, std::uint32_t round);  // [hub strand]
  // [hub strand] Sends a store-and-forward message to every known device `targets` accepts:
  // live to its sessions (held during their replay), and recorded with its sequence number for
  // replay. `skip_offline` devices are not queued when off air. Returns the devices reached
  // live.
  std::vector<std::string> relay(outbox::Kind kind, const std::string& ref,
                                 v1::Envelope& envelope, Priority priority,
                                 std::chrono::milliseconds ttl,
                                 const std::function<bool(const Identity&)>& targets,
                                 std::set<std::string>* queued_offline = nullptr);
  void finish_attach(std::uint64_t session_id, const AttachResult& result);  // [hub strand]
  void send_gallery_sync(LiveSession& session, const AttachResult& result);   // [hub strand]
  // [hub strand] The store has reached gallery version `version`: push what changed to the
  // synced sessions (one push at a time, in version order).
  void gallery_seen(std::uint64_t version);
  void push_gallery();                                                        // [hub strand]
  void apply_gallery_push(const GalleryPush& push);                           // [hub strand]
  void send_to_device(const std::string& device_id, const Frame& frame, Priority p);  // [hub strand]
  void send_update(const std::string& device_id, v1::AlertUpdate update);  // [hub strand]
  void rearm_escalation();                                                  // [hub strand]
  void on_escalation_timer();                                               // [hub strand]
  void poll_crl();                                                          // [hub strand]
  void apply_crl(std::set<std::string> revoked);                            // [hub strand]
  void restore_open_alerts();  // constructor only
  void load_devices();         // constructor only: known devices, sequence epoch, gallery
  // [hub strand] Records (store) that `device` was sent these gallery entries, with an audit
  // row.
  void record_gallery_sent(const Identity& device, const std::vector<std::int64_t>& sent,
                           const std::string& how);
  void run_maintenance();  // [hub strand] notice expiries, review reminders, scheduled purge
  void delete_blob_files(const std::vector<std::string>& sha256s);  // any thread
  void record_event(const std::string& alert_id, const std::string& kind, const Identity& by,
                    std::uint32_t round);

  HubConfig config_;
  std::vector<std::string> towns_;
  boost::asio::io_context io_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<BlobStore> blobs_;  // image files; any thread
  // One thread for the image work that must stay off the network threads: checking a finished
  // upload (hash, content, metadata strip) and writing its file with fsync. Declared after the
  // store, so it is joined before the store goes.
  boost::asio::thread_pool blob_pool_{1};
  std::vector<std::thread> threads_;
  std::atomic<std::uint16_t> port_{0};
  std::atomic<std::uint16_t> metrics_port_{0};
  std::atomic<std::uint16_t> console_port_{0};
  // The /metrics listener (null when off). Its acceptor runs on strand_; declared after io_.
  std::unique_ptr<MetricsServer> metrics_;
  // The console listener (null when off). Its acceptor runs on strand_; declared after io_.
  std::unique_ptr<ConsoleServer> console_;
  std::atomic<bool> stopped_{false};
  std::atomic<std::uint64_t> next_session_id_{1};

  std::shared_ptr<boost::asio::ssl::context> tls_;  // [hub strand] the current server context
  std::set<std::string> revoked_;                    // [hub strand] serials in the current CRL
  std::filesystem::file_time_type crl_mtime_{};      // [hub strand]
  boost::asio::steady_timer crl_timer_;              // [hub strand]
  boost::asio::steady_timer escalation_timer_;       // [hub strand]
  boost::asio::steady_timer maintenance_timer_;      // [hub strand]
  boost::asio::steady_timer handshake_slot_;         // [hub strand] wakes the accept loop
  std::atomic<unsigned> handshakes_in_flight_{0};
  std::int64_t last_purge_ms_ = 0;                   // [hub strand]
  std::map<std::uint64_t, LiveSession> sessions_;    // [hub strand]
  std::unordered_map<std::string, DeviceState> devices_;  // [hub strand] every device seen
  std::uint64_t seq_base_ = 0;        // [hub strand] this run's epoch << 32
  std::uint64_t gallery_known_ = 0;   // [hub strand] newest gallery version seen in the store
  std::uint64_t gallery_pushed_ = 0;  // [hub strand] pushed to synced sessions up to here
  bool gallery_pushing_ = false;      // [hub strand]
  std::unordered_multimap<std::string, std::uint64_t> sessions_by_device_;  // [hub strand]
  AlertTracker tracker_;                             // [hub strand]
  std::map<std::string, LiveAlert> live_;            // [hub strand] same keys as tracker_

  std::atomic<std::uint64_t> sessions_live_{0};
  std::atomic<std::uint64_t> alerts_accepted_{0};
  std::atomic<std::uint64_t> alerts_duplicate_{0};
  std::atomic<std::uint64_t> escalations_{0};
  std::atomic<std::uint64_t> refusals_{0};
  std::atomic<std::uint64_t> handshake_failures_{0};
  std::atomic<std::uint64_t> forms_stored_{0};
  std::atomic<std::uint64_t> sightings_accepted_{0};
  std::atomic<std::uint64_t> queries_{0};
  std::atomic<std::uint64_t> sessions_dropped_{0};
  std::atomic<std::uint64_t> replayed_{0};
  std::atomic<std::uint64_t> gallery_entries_sent_{0};
  std::atomic<std::uint64_t> gallery_removals_sent_{0};
  std::atomic<std::uint64_t> photo_bytes_sent_{0};
};

}  // namespace saferlink::server
