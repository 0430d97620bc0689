// Handset: the firmware logic of one SaferLink handheld as a plain state machine. No I/O and no
// clock of its own: every input carries the device time (`now`, Unix ms), and every input
// returns what the device must do (send a frame, dial, hang up, save flash) plus events for a
// display or a load report. The glue (firmware-sim/device.hpp) turns actions into sockets and
// timers; tests drive it directly with an injected clock.
//
// Design note (docs/handset.md draws it):
//
//   Link:   off --power_on--> waiting --(due)--> dialling --link_up--> greeting
//           greeting --Welcome--> online;  any --link_down / idle / hello deadline--> waiting
//           (after a backoff delay with full jitter, firmware-sim/backoff.hpp); battery empty
//           or no signal keeps it in waiting without dialling.
//             on_link_up    sends Hello (resume_cursor, capabilities)
//             on_message    Welcome: online, backoff reset, the offline queue is sent in order
//             tick          dials when the backoff is due; heartbeats; idle and hello deadlines
//
//   Button: released --down--> held --(held >= hold_ms, on tick or release)--> long press
//           released early: nothing (a knock is not an alarm).
//           A long press raises a panic, or, within the cancel window of the last panic that
//           was not cancelled, cancels it.
//
//   Own panic (the indicator shows the newest):
//           armed (held) -> sending (queued in flash, sent when online) -> accepted ->
//           delivered (first recipient) -> acknowledged (a person) ; escalated on an
//           escalation update until acknowledged; cancelled; failed (refused by the hub).
//
//   Offline queue (flash): panic, cancel and sighting items, oldest first, each sent when the
//           link comes up and removed when the hub accepts it (AlertAccepted, Receipt,
//           SightingAccepted). STORE_FAILED: sent again after retry_ms. INVALID / NOT_ALLOWED:
//           dropped, indicator failed.
//
//   Received (relayed) panics, cancels and sightings: a message with Envelope.seq <= the
//           flash cursor is a duplicate (a replay): counted, not raised again, but a panic is
//           still answered DELIVERED. seq 0 is unsequenced: duplicates are recognised by
//           (alert id, escalation round) among the last few hundred. New ones advance the
//           cursor (flash) and are raised as events; a panic is answered DELIVERED and, for a
//           responder configured to, ACKNOWLEDGED after ack_after_ms.
//
//   Gallery (config.gallery; docs/protocol.md sections 5.12 and 5.13): Hello lists "gallery"
//           with the version in flash. GallerySync(begin) .. GalleryEntry / GalleryRemove ..
//           GallerySync(done): entries replace what is held under their notice id; a reset
//           sync drops every entry it did not send; done saves to_version. A live change
//           (version > 0) saves its version at once. A GalleryRemove of an entry held deletes
//           it (and its photo) and is answered GalleryRemoved once; the notice stays in flash
//           (gallery_unconfirmed) until the hub's Receipt, sent again on each connection.
//   Photos: after a sync, one download at a time, entries in notice order: PhotoRequest
//           windows (two ahead of what is held); each PhotoChunk must be the next byte needed
//           (a piece out of place hangs up: the next link resumes); the SHA-256 runs
//           incrementally (EVP) and is checked at total_size: a match marks the entry's photo
//           verified (flash), a mismatch starts again from zero (at most kPhotoAttempts per
//           power-on). A lost link keeps the bytes counted and the hash state: the next link
//           asks from there. The bytes themselves are kept only with keep_photo_bytes.
//
//   Battery: drains with time (more when the signal is weak) and with every frame; a low
//           battery event at low_battery_percent; at 0 % the link is dropped and not dialled
//           until charged. Heartbeats report the percentage.
//
// Thread contract: none; one owner calls it at a time.
#pragma once

#include "core/identity.hpp"
#include "firmware-sim/backoff.hpp"
#include "firmware-sim/flash.hpp"
#include "proto/saferlink.pb.h"

#include <cstdint>
#include <deque>
#include <memory>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace saferlink::sim {

// What the indicator (LED and buzzer) shows about the newest own panic.
enum class Indication {
  idle,          // LED off
  armed,         // button held, not yet long enough: amber blink, no sound
  sending,       // raised, not yet accepted (queued while offline): amber steady, one beep
  accepted,      // the hub has it on disk: green steady
  delivered,     // at least one recipient's device has it: green blink
  acknowledged,  // a person acknowledged it: blue steady, two beeps
  escalated,     // nobody acknowledged in time: red blink, beeping
  cancelled,     // false alarm cancelled: white steady
  failed,        // the hub refused it: red steady, long tone
};
std::string_view to_string(Indication indication);
std::string_view led_of(Indication indication);
std::string_view buzzer_of(Indication indication);

enum class LinkState { off, waiting, dialling, greeting, online };
std::string_view to_string(LinkState state);

struct HandsetConfig {
  std::string id;  // this handset's device id (its certificate's CN)
  Role role = Role::shop;
  std::int64_t hold_ms = 1500;           // long press
  std::int64_t cancel_window_ms = 30'000;
  std::int64_t heartbeat_ms = 10'000;    // replaced by Welcome.heartbeat_interval_ms
  std::int64_t idle_timeout_ms = 35'000; // nothing received for this long: hang up
  std::int64_t hello_timeout_ms = 10'000;
  std::int64_t dial_timeout_ms = 10'000; // link_up must follow a dial within this
  std::int64_t retry_ms = 1'000;         // STORE_FAILED: send again after this
  Backoff::Limits backoff{};
  std::int64_t ack_after_ms = -1;        // responders: acknowledge received panics after
                                         // this delay (< 0: a person does it, never automatic)
  int panic_status = 1;                  // v1::AlertStatusKind of panics this handset raises
  // Battery: percent per hour idle, extra per hour at signal 1 (weak), per frame.
  double battery_percent = 100.0;
  double drain_per_hour = 1.0;
  double weak_signal_drain_per_hour = 2.0;
  double drain_per_frame = 0.0005;
  double low_battery_percent = 15.0;
  bool gallery = false;                  // announce "gallery": hold the exclusion gallery
  bool keep_photo_bytes = false;         // keep downloaded photos' bytes (photo_complete
                                         // carries them); else only count and hash them
  std::uint32_t photo_window_bytes = 256 * 1024;  // PhotoRequest.max_bytes
  std::uint64_t seed = 1;                // backoff jitter
  std::string software = "saferlink-sim 0.1.0";
};

struct Action {
  enum class Kind {
    send,        // write `message` to the hub
    dial,        // open the link (TCP + TLS); answer with on_link_up or on_link_down
    hang_up,     // close the link; `text` says why (no on_link_down is needed after it)
    save_flash,  // flash() changed: write it
    event,       // for the display / report: see Event
  };
  enum class Event {
    none,
    indication,        // `indication` changed
    panic_raised,      // own panic raised: id, at (press time)
    panic_accepted,    // first AlertAccepted for own panic: id, count (recipients), flag
                       // (the hub said duplicate: an earlier try got there first)
    panic_delivered_all,  // every recipient the hub counted has reported delivered: id
    panic_update,      // any AlertUpdate for own panic: id, message (the update)
    panic_cancelled,   // own panic cancelled (locally if never sent): id
    panic_failed,      // refused: id, text
    sighting_raised,   // id
    sighting_accepted, // id, count (recipients)
    received_panic,    // a relayed panic, new: id, count (escalation round), message
    received_cancel,   // a relayed cancel, new: id
    received_sighting, // a relayed sighting, new: id, message
    received_duplicate,// a relayed message already processed: id, message
    acknowledged_sent, // this handset acknowledged a received panic: id
    link_online,       // welcome received
    link_lost,         // link dropped or given up: text
    low_battery,
    battery_empty,
    hub_error,         // an Error from the hub that is not about a queued item: text
    gallery_entry,     // an entry added (flag) or changed: id (notice id), message
    gallery_removed,   // an entry deleted (and GalleryRemoved sent): id (notice id), text
                       // (reason)
    gallery_remove_confirmed,  // the hub recorded the deletion: id (notice id)
    gallery_synced,    // GallerySync done: count (entries held), flag (reset)
    photo_complete,    // a photo downloaded and verified: id (sha256), count (bytes), text
                       // (mime), data (the bytes, with keep_photo_bytes)
    photo_failed,      // the bytes did not match the SHA-256 (flag), or the hub refused: id,
                       // text
  };
  Kind kind = Kind::event;
  Event event = Event::none;
  v1::Envelope message;  // send: the frame; some events: the message concerned
  std::string id;
  std::string text;
  std::string data;  // photo_complete: the bytes (keep_photo_bytes)
  std::int64_t at = 0;
  std::uint32_t count = 0;
  bool flag = false;
  Indication indication = Indication::idle;
};

using Actions = std::vector<Action>;

class Handset {
 public:
  Handset(HandsetConfig config, Flash flash);

  // Power: on starts dialling at once; off drops everything not in flash (destroy the object
  // after it and build a new one from the saved flash for a power cycle).
  Actions power_on(std::int64_t now);
  Actions power_off(std::int64_t now);

  // The panic button went down or up.
  Actions button(std::int64_t now, bool down);
  // A person acknowledges (or, police, reports en route / on scene / resolved) a received
  // alert.
  Actions respond(std::int64_t now, const std::string& alert_id, v1::RecipientStatusKind status);
  // A sighting typed on the handset.
  Actions sighting(std::int64_t now, const std::string& text);

  // Link events from the glue.
  Actions on_link_up(std::int64_t now);
  Actions on_link_down(std::int64_t now, const std::string& why);
  Actions on_message(std::int64_t now, const v1::Envelope& envelope);

  // Time passes: call at next_wakeup() (or any time).
  Actions tick(std::int64_t now);
  std::int64_t next_wakeup() const;

  // Battery and signal models.
  Actions charge(std::int64_t now, double percent);
  // Signal bars 0..5: 0 means no coverage (the link is dropped and not dialled).
  Actions set_signal(std::int64_t now, int bars);

  // Observability.
  const Flash& flash() const { return flash_; }
  LinkState link() const { return link_; }
  Indication indication() const { return indication_; }
  double battery() const { return battery_; }
  int signal() const { return signal_; }
  bool button_held() const { return held_since_.has_value(); }
  const HandsetConfig& config() const { return config_; }
  std::uint32_t backoff_attempt() const { return backoff_.attempt(); }
  std::int64_t reconnect_at() const { return reconnect_at_; }
  std::size_t duplicates_seen() const { return duplicates_; }
  const std::vector<GalleryHeld>& gallery() const { return flash_.gallery; }
  std::uint64_t photo_bytes_received() const { return photo_bytes_; }
  std::uint64_t photo_hash_failures() const { return photo_hash_failures_; }
  std::uint64_t gallery_removals_confirmed() const { return removals_confirmed_; }
  // The photo download in progress: its SHA-256 and the bytes held (empty: none).
  std::pair<std::string, std::uint64_t> photo_progress() const;

 private:
  struct OwnAlert {
    std::int64_t pressed_at = 0;
    bool accepted = false;
    bool cancelled = false;
    bool cancel_requested = false;  // a cancel waits for the acceptance
    bool all_delivered = false;
    bool acknowledged = false;
    bool sent_once = false;         // went out on a link at least once
    std::uint32_t recipients = 0;
    std::set<std::string> delivered_by;
  };
  struct PendingAck {
    std::int64_t due = 0;
    std::string alert_id;
  };

  void raise_panic(std::int64_t now, Actions& out);
  void long_press(std::int64_t now, Actions& out);
  void send_item(const PendingItem& item, Actions& out);
  void flush_queue(Actions& out);
  void send(v1::Envelope envelope, Actions& out);
  void drop(std::int64_t now, const std::string& why, bool hang_up, Actions& out);
  void schedule_reconnect(std::int64_t now);
  void set_indication(Indication indication, Actions& out);
  void save(Actions& out);
  void drain_battery(std::int64_t now, Actions& out);
  bool may_dial() const { return battery_ > 0.0 && signal_ > 0 && link_ != LinkState::off; }
  void event(Actions& out, Action::Event kind, std::string id, std::int64_t at = 0,
             std::uint32_t count = 0, bool flag = false);
  void remove_pending(PendingItem::Kind kind, const std::string& id);
  bool seen_unsequenced(const std::string& key);
  bool seen_sequenced(std::uint64_t seq, bool alert_lane);
  void check_battery(std::int64_t now, Actions& out);
  void handle_relayed(std::int64_t now, const v1::Envelope& envelope, Actions& out);
  void handle_error(std::int64_t now, const v1::Envelope& envelope, Actions& out);
  // Gallery and photos.
  struct HashFree {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  struct Download {
    std::string sha256;
    std::uint64_t size = 0;
    std::uint64_t have = 0;       // bytes received and hashed (kept across links)
    std::uint64_t requested = 0;  // asked for on this link
    bool paused = false;          // the hub refused a window: wait for the next link
    std::string mime;
    std::string bytes;            // keep_photo_bytes
    std::unique_ptr<evp_md_ctx_st, HashFree> hash;
  };
  void handle_gallery(std::int64_t now, const v1::Envelope& envelope, Actions& out);
  void delete_entry(std::int64_t now, std::int64_t notice_id, const std::string& reason,
                    Actions& out);
  void send_removed(std::int64_t notice_id, Actions& out);
  void forget_photo_if_unused(const std::string& sha256);
  void next_photo(std::int64_t now, Actions& out);
  void ask_photo(Actions& out);
  void handle_chunk(std::int64_t now, const v1::Envelope& envelope, Actions& out);
  void link_gone();

  HandsetConfig config_;
  Flash flash_;
  Backoff backoff_;
  LinkState link_ = LinkState::off;
  Indication indication_ = Indication::idle;
  std::int64_t state_since_ = 0;    // when link_ last changed
  std::int64_t reconnect_at_ = 0;   // waiting: when to dial
  std::int64_t last_rx_ = 0;
  std::int64_t last_tx_ = 0;
  std::int64_t heartbeat_ms_;
  std::optional<std::int64_t> held_since_;
  bool press_fired_ = false;        // this hold already counted as a long press
  std::string last_panic_;          // newest own panic id
  std::map<std::string, OwnAlert> own_;
  // msg_id of a frame sent for a queued item -> that item (its kind and id)
  std::map<std::uint64_t, std::pair<PendingItem::Kind, std::string>> in_flight_;
  std::int64_t retry_at_ = 0;        // STORE_FAILED: resend the queue at this time (0: none)
  std::deque<PendingAck> acks_;
  std::unordered_set<std::string> seen_;  // unsequenced relays processed (bounded)
  std::deque<std::string> seen_order_;
  std::size_t duplicates_ = 0;
  double battery_;
  bool low_reported_ = false;
  int signal_ = 5;
  std::int64_t battery_at_ = 0;     // when drain was last applied
  // Gallery (config_.gallery). Per link: the sync in progress, photo requests, removals sent.
  bool gallery_syncing_ = false;
  bool gallery_reset_ = false;
  bool gallery_synced_ = false;     // a sync completed on this link: photos may be fetched
  bool photos_allowed_ = false;     // Welcome listed "photos"
  std::set<std::int64_t> seen_in_sync_;
  std::map<std::uint64_t, std::string> photo_requests_;    // msg_id -> sha256
  std::map<std::uint64_t, std::int64_t> removals_sent_;    // msg_id -> notice id
  std::optional<Download> download_;
  std::map<std::string, int> photo_attempts_;  // failed attempts per sha256 (this power-on)
  std::uint64_t photo_bytes_ = 0;
  std::uint64_t photo_hash_failures_ = 0;
  std::uint64_t removals_confirmed_ = 0;
};

}  // namespace saferlink::sim
