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
#include <map>
#include <memory>
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
}

namespace saferlink::server {

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
  };
  Stats stats() const;

  // Outgoing queue depths over the live sessions, gathered in one pass on the hub strand.
  struct QueueDepths {
    std::uint64_t total_messages = 0;
    std::uint64_t max_messages = 0;  // the deepest single session
  };
  // Awaitable from any executor: hops to the hub strand and back.
  boost::asio::awaitable<QueueDepths> queue_depths();

  Store& store() { return *store_; }

  // --- Called by sessions (server/session.cpp), from their strands. ---
  struct SessionRef {
    std::uint64_t id;
    Identity identity;
    std::shared_ptr<Connection> connection;
  };
  void attach(SessionRef session);
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
  const std::vector<std::string>& towns() const { return towns_; }
  // Where image files live: the `blobs` setting, or "blobs" beside the database.
  std::filesystem::path blob_root() const;
  // The notice lifecycle's settings from the configuration (towns, validity, review).
  notices::Options notice_options() const;
  // What each session's uploads (server/uploads.hpp) use: the store, the image files, the
  // blob pool and the image cap (any thread).
  UploadServices upload_services();
  void count_refusal() { ++refusals_; }
  void count_handshake_failure() { ++handshake_failures_; }
  void count_session_dropped() { ++sessions_dropped_; }
  const HubConfig& config() const { return config_; }
  // True when `town` is one of this hub's towns or "all" (any thread: towns never change).
  bool serves_town(const std::string& town) const;

 private:
  struct LiveAlert {
    v1::PanicAlert relay;  // the message as relayed (origin fields filled in)
  };

  boost::asio::awaitable<void> accept_loop();
  void fan_out(const std::string& alert_id, bool escalated, std::uint32_t round);  // [hub strand]
  void send_to_device(const std::string& device_id, const Frame& frame, Priority p);  // [hub strand]
  void send_update(const std::string& device_id, v1::AlertUpdate update);  // [hub strand]
  void rearm_escalation();                                                  // [hub strand]
  void on_escalation_timer();                                               // [hub strand]
  void poll_crl();                                                          // [hub strand]
  void apply_crl(std::set<std::string> revoked);                            // [hub strand]
  void restore_open_alerts();  // constructor only
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
  // The /metrics listener (null when off). Its acceptor runs on strand_; declared after io_.
  std::unique_ptr<MetricsServer> metrics_;
  std::atomic<bool> stopped_{false};
  std::atomic<std::uint64_t> next_session_id_{1};

  std::shared_ptr<boost::asio::ssl::context> tls_;  // [hub strand] the current server context
  std::set<std::string> revoked_;                    // [hub strand] serials in the current CRL
  std::filesystem::file_time_type crl_mtime_{};      // [hub strand]
  boost::asio::steady_timer crl_timer_;              // [hub strand]
  boost::asio::steady_timer escalation_timer_;       // [hub strand]
  boost::asio::steady_timer maintenance_timer_;      // [hub strand]
  std::int64_t last_purge_ms_ = 0;                   // [hub strand]
  std::map<std::uint64_t, SessionRef> sessions_;     // [hub strand]
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
};

}  // namespace saferlink::server
