// Flash: what a handset keeps across a power cycle — its next device sequence number, the
// highest store-and-forward sequence it has processed per lane (Hello.resume_cursor and
// resume_cursor_other), and the offline
// queue of panics, cancels and sightings not yet accepted by the hub (each with its original
// time, so that a panic sent late still says when it was pressed), and the exclusion gallery it
// holds: the gallery version, and per entry only what the handset must not forget (notice id,
// version, photo SHA-256 and size, whether the photo is here and verified) plus the deletions
// the hub has not yet acknowledged. Names, conditions and photo bytes are not flash's job.
//
// The handset logic (firmware-sim/handset.hpp) owns a Flash value and says when it changed;
// the I/O glue writes it (firmware-sim/flash_file.hpp) and reads it back at power-on. The text form is JSON; reading refuses anything malformed with a reason.
// Plain values and functions; no shared state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace saferlink::sim {

struct PendingItem {
  enum class Kind { panic, cancel, sighting };
  Kind kind = Kind::panic;
  std::string id;                // alert id or sighting id ("<device>:<seq>"); for a cancel,
                                 // the alert it cancels
  std::uint64_t device_seq = 0;  // panic and sighting
  std::int64_t created_at_ms = 0;  // press or sighting time (device clock)
  std::string text;              // panic note, sighting text, cancel reason
  int status = 0;                // panic: v1::AlertStatusKind
  bool operator==(const PendingItem&) const = default;
};

// One exclusion-gallery entry held (docs/protocol.md section 5.12).
struct GalleryHeld {
  std::int64_t notice_id = 0;
  std::uint64_t version = 0;     // the gallery version that brought it (a sync's to_version)
  std::string photo_sha256;      // empty: no photo
  std::uint64_t photo_size = 0;
  bool photo_ok = false;         // downloaded and its SHA-256 verified
  bool operator==(const GalleryHeld&) const = default;
};

struct Flash {
  std::uint64_t next_device_seq = 1;
  // Highest Envelope.seq processed, per lane (docs/protocol.md section 5.11): the alert lane
  // (panics, cancels) and the other lane (sightings). Alerts overtake sightings on the way, so
  // numbers grow within a lane, not across both.
  std::uint64_t resume_cursor = 0;        // alert lane: Hello.resume_cursor
  std::uint64_t resume_cursor_other = 0;  // other lane: Hello.resume_cursor_other
  std::uint64_t gallery_version = 0;
  std::vector<PendingItem> pending;  // oldest first
  std::vector<GalleryHeld> gallery;  // by notice id
  // Entries deleted here whose GalleryRemoved the hub has not answered yet: sent again on the
  // next connection.
  std::vector<std::int64_t> gallery_unconfirmed;
  bool operator==(const Flash&) const = default;
};

std::string to_text(const Flash& flash);
// nullopt with *why set when `text` is not a flash image this version wrote.
std::optional<Flash> flash_from_text(const std::string& text, std::string* why);

}  // namespace saferlink::sim
