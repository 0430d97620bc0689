// The exclusion gallery on a device: a local folder kept in sync with the hub, as
// docs/protocol.md ("Gallery sync" and "Photo download") describes.
//
// Folder layout:
//   DIR/gallery.json         {"version": N, "entries": [...]}: what the device holds
//   DIR/photos/SHA256.jpg    the entries' photos (extension from the MIME type)
//   DIR/.partial/SHA256      a photo download in progress (resumed from its size)
// gallery.json is replaced atomically (write, fsync, rename) after every change, so a device
// switched off mid-sync restarts from the last version it saved.
//
// Thread contract: as Client's (one io_context).
#pragma once

#include "client/client.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace saferlink::client {

struct GalleryItem {
  std::int64_t notice_id = 0;
  std::int64_t profile_id = 0;
  std::string name;
  std::string conditions;
  std::vector<std::string> towns;
  std::int64_t expires_at_ms = 0;
  std::string photo_sha256;  // empty: none
  std::uint64_t photo_size = 0;
  std::string photo_mime;
  std::string photo_file;  // relative to the folder; empty until downloaded and verified
};

class GalleryFolder {
 public:
  // Creates the folder if needed and loads gallery.json if there is one. Throws
  // ClientSetupError when the folder cannot be used or gallery.json is not one of ours.
  explicit GalleryFolder(std::filesystem::path dir);

  const std::filesystem::path& dir() const { return dir_; }
  std::uint64_t version() const { return version_; }
  const std::map<std::int64_t, GalleryItem>& items() const { return items_; }

  // Applies one gallery message from the hub (GallerySync, GalleryEntry, GalleryRemove; others
  // are ignored). Returns the notices whose entries (and photos) were deleted here, to confirm
  // to the hub with GalleryRemoved. Saves after a live change and at the end of a sync.
  std::vector<std::int64_t> apply(const v1::Envelope& envelope);

  // Entries whose photo is not here yet: (sha256, size) once per image.
  std::vector<std::pair<std::string, std::uint64_t>> missing_photos() const;

  // Where a download of `sha256` in progress is kept.
  std::filesystem::path partial_path(const std::string& sha256) const;
  // Moves a verified download into photos/ and records it on every entry that shows it.
  void photo_verified(const std::string& sha256);

  void save() const;

 private:
  void delete_photo_if_unused(const std::string& sha256, std::int64_t except_notice);

  std::filesystem::path dir_;
  std::uint64_t version_ = 0;
  std::map<std::int64_t, GalleryItem> items_;
  bool in_reset_sync_ = false;
  std::vector<std::int64_t> seen_in_sync_;
};

struct PhotoFetch {
  std::uint64_t resumed_from = 0;  // bytes already here from an interrupted download
  std::uint64_t received = 0;      // bytes received now
};

// Downloads one image into `folder` with PhotoRequest windows (two outstanding), appending
// each 16 KiB piece to the partial file after checking its offset, then checks the SHA-256 of
// the whole and records it (photo_verified). A download interrupted by a lost connection is
// resumed by the next call from the partial file's size. Envelopes that arrive meanwhile and
// are not this download's are appended to `other` for the caller. Throws ClientError (lost
// connection, no answer within `timeout`, hub error) and ClientFinalError when the bytes do
// not match the SHA-256 (the partial file is deleted: the next call starts again).
// `progress`, when set, is called with the bytes held after each piece is written.
boost::asio::awaitable<PhotoFetch> fetch_photo(
    Client& client, GalleryFolder& folder, const std::string& sha256, std::uint64_t size,
    std::deque<v1::Envelope>& other, std::chrono::milliseconds timeout = std::chrono::seconds(30),
    std::function<void(std::uint64_t)> progress = {});

struct GalleryArgs {
  std::filesystem::path dir;
  bool watch = false;  // stay connected and apply live changes until interrupted
  bool json = false;   // list as one JSON object per entry
  std::optional<double> seconds;  // with watch: stop after this long
};

// `saferlink gallery --dir DIR [--watch]`: syncs the folder with the hub (changes since the
// version it holds, photos downloaded and verified, deletions confirmed), then lists it. With
// `watch`, keeps applying live changes (reconnecting after a lost connection) and prints each.
int run_gallery_sync(const ClientOptions& options, const GalleryArgs& args, std::ostream& out,
                     std::ostream& err);

}  // namespace saferlink::client
