#include "client/gallery.hpp"

#include "client/commands.hpp"
#include "core/image.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>

namespace saferlink::client {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using asio::awaitable;
using json = nlohmann::json;

namespace {

constexpr std::uint32_t kWindowBytes = 256 * 1024;

std::string extension_of(const std::string& mime) {
  if (mime == "image/png") return ".png";
  if (mime == "image/webp") return ".webp";
  return ".jpg";
}

json to_json(const GalleryItem& item) {
  return {{"notice_id", item.notice_id},     {"profile_id", item.profile_id},
          {"name", item.name},               {"conditions", item.conditions},
          {"towns", item.towns},             {"expires_at_ms", item.expires_at_ms},
          {"photo_sha256", item.photo_sha256}, {"photo_size", item.photo_size},
          {"photo_mime", item.photo_mime},   {"photo_file", item.photo_file}};
}

GalleryItem item_of(const json& j) {
  GalleryItem item;
  item.notice_id = j.at("notice_id").get<std::int64_t>();
  item.profile_id = j.at("profile_id").get<std::int64_t>();
  item.name = j.at("name").get<std::string>();
  item.conditions = j.at("conditions").get<std::string>();
  item.towns = j.at("towns").get<std::vector<std::string>>();
  item.expires_at_ms = j.at("expires_at_ms").get<std::int64_t>();
  item.photo_sha256 = j.at("photo_sha256").get<std::string>();
  item.photo_size = j.at("photo_size").get<std::uint64_t>();
  item.photo_mime = j.at("photo_mime").get<std::string>();
  item.photo_file = j.at("photo_file").get<std::string>();
  return item;
}

GalleryItem item_of(const v1::GalleryEntry& e) {
  GalleryItem item;
  item.notice_id = e.notice_id();
  item.profile_id = e.profile_id();
  item.name = e.name();
  item.conditions = e.conditions();
  item.towns.assign(e.towns().begin(), e.towns().end());
  item.expires_at_ms = e.expires_at_ms();
  item.photo_sha256 = e.photo_sha256();
  item.photo_size = e.photo_size();
  item.photo_mime = e.photo_mime();
  return item;
}

// Writes `bytes` to `path` durably: a temporary file beside it, fsync, rename.
void write_file_atomically(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw ClientSetupError("cannot write " + tmp.string());
  std::size_t done = 0;
  while (done < bytes.size()) {
    const auto n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) {
      ::close(fd);
      throw ClientSetupError("cannot write " + tmp.string());
    }
    done += static_cast<std::size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw ClientSetupError("cannot replace " + path.string() + ": " + ec.message());
}

std::string format_utc(std::int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d", &tm);
  return text;
}

std::string describe_item(const GalleryItem& item) {
  std::ostringstream line;
  line << "notice " << item.notice_id << "  " << item.name << "  (";
  for (std::size_t i = 0; i < item.towns.size(); ++i) line << (i ? ", " : "") << item.towns[i];
  line << ")  " << item.conditions;
  if (item.expires_at_ms > 0) line << "  until " << format_utc(item.expires_at_ms);
  line << "  photo: " << (item.photo_sha256.empty() ? "none"
                          : item.photo_file.empty()  ? "not downloaded"
                                                     : item.photo_file);
  return line.str();
}

}  // namespace

GalleryFolder::GalleryFolder(fs::path dir) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_ / "photos", ec);
  if (!ec) fs::create_directories(dir_ / ".partial", ec);
  if (ec) throw ClientSetupError("cannot use " + dir_.string() + ": " + ec.message());
  const fs::path file = dir_ / "gallery.json";
  if (!fs::exists(file)) return;
  std::ifstream in(file);
  try {
    const json j = json::parse(in);
    version_ = j.at("version").get<std::uint64_t>();
    for (const auto& e : j.at("entries")) {
      GalleryItem item = item_of(e);
      items_[item.notice_id] = std::move(item);
    }
  } catch (const std::exception& e) {
    throw ClientSetupError(file.string() + " is not a gallery file written by saferlink (" +
                           e.what() + "); move it away to start afresh");
  }
}

void GalleryFolder::save() const {
  json entries = json::array();
  for (const auto& [id, item] : items_) entries.push_back(to_json(item));
  const json j = {{"version", version_}, {"entries", entries}};
  write_file_atomically(dir_ / "gallery.json", j.dump(2) + "\n");
}

void GalleryFolder::delete_photo_if_unused(const std::string& sha256, std::int64_t except) {
  if (sha256.empty()) return;
  for (const auto& [id, item] : items_) {
    if (id != except && item.photo_sha256 == sha256) return;  // another entry shows it
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_ / "photos", ec)) {
    if (entry.path().stem() == sha256) fs::remove(entry.path(), ec);
  }
  fs::remove(partial_path(sha256), ec);
}

std::vector<std::int64_t> GalleryFolder::apply(const v1::Envelope& envelope) {
  std::vector<std::int64_t> deleted;
  auto remove_item = [&](std::int64_t notice_id) {
    auto it = items_.find(notice_id);
    if (it == items_.end()) return;
    const std::string sha = it->second.photo_sha256;
    delete_photo_if_unused(sha, notice_id);
    items_.erase(it);
    deleted.push_back(notice_id);
  };
  switch (envelope.body_case()) {
    case v1::Envelope::kGallerySync: {
      const auto& sync = envelope.gallery_sync();
      if (!sync.done()) {
        in_reset_sync_ = sync.reset();
        seen_in_sync_.clear();
        return deleted;
      }
      if (in_reset_sync_) {
        std::vector<std::int64_t> stale;
        for (const auto& [id, item] : items_) {
          if (std::find(seen_in_sync_.begin(), seen_in_sync_.end(), id) == seen_in_sync_.end()) {
            stale.push_back(id);
          }
        }
        for (const auto id : stale) remove_item(id);
      }
      in_reset_sync_ = false;
      seen_in_sync_.clear();
      version_ = sync.to_version();
      save();
      return deleted;
    }
    case v1::Envelope::kGalleryEntry: {
      GalleryItem item = item_of(envelope.gallery_entry());
      seen_in_sync_.push_back(item.notice_id);
      auto it = items_.find(item.notice_id);
      if (it != items_.end()) {
        if (it->second.photo_sha256 == item.photo_sha256) {
          item.photo_file = it->second.photo_file;
        } else {
          delete_photo_if_unused(it->second.photo_sha256, item.notice_id);
        }
      }
      if (item.photo_file.empty() && !item.photo_sha256.empty()) {
        // Another entry may show the same photo, already here.
        for (const auto& [id, other] : items_) {
          if (other.photo_sha256 == item.photo_sha256 && !other.photo_file.empty()) {
            item.photo_file = other.photo_file;
          }
        }
      }
      items_[item.notice_id] = std::move(item);
      if (envelope.gallery_entry().version() != 0) {
        version_ = envelope.gallery_entry().version();
        save();
      }
      return deleted;
    }
    case v1::Envelope::kGalleryRemove: {
      remove_item(envelope.gallery_remove().notice_id());
      if (envelope.gallery_remove().version() != 0) {
        version_ = envelope.gallery_remove().version();
        save();
      }
      return deleted;
    }
    default:
      return deleted;
  }
}

std::vector<std::pair<std::string, std::uint64_t>> GalleryFolder::missing_photos() const {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  std::set<std::string> listed;
  for (const auto& [id, item] : items_) {
    if (item.photo_sha256.empty() || !item.photo_file.empty()) continue;
    if (listed.insert(item.photo_sha256).second) out.emplace_back(item.photo_sha256, item.photo_size);
  }
  return out;
}

fs::path GalleryFolder::partial_path(const std::string& sha256) const {
  return dir_ / ".partial" / sha256;
}

void GalleryFolder::photo_verified(const std::string& sha256) {
  std::string mime;
  for (const auto& [id, item] : items_) {
    if (item.photo_sha256 == sha256) mime = item.photo_mime;
  }
  const std::string file = "photos/" + sha256 + extension_of(mime);
  std::error_code ec;
  fs::rename(partial_path(sha256), dir_ / file, ec);
  if (ec) throw ClientSetupError("cannot move the photo into " + dir_.string() + ": " + ec.message());
  for (auto& [id, item] : items_) {
    if (item.photo_sha256 == sha256) item.photo_file = file;
  }
  save();
}

awaitable<PhotoFetch> fetch_photo(Client& client, GalleryFolder& folder, const std::string& sha256,
                                  std::uint64_t size, std::deque<v1::Envelope>& other,
                                  std::chrono::milliseconds timeout,
                                  std::function<void(std::uint64_t)> progress) {
  PhotoFetch result;
  const fs::path partial = folder.partial_path(sha256);
  std::error_code ec;
  std::uint64_t have = fs::exists(partial) ? fs::file_size(partial, ec) : 0;
  if (ec || have > size) {
    fs::remove(partial, ec);
    have = 0;
  }
  result.resumed_from = have;
  std::ofstream out(partial, std::ios::binary | std::ios::app);
  if (!out) throw ClientSetupError("cannot write " + partial.string());

  std::uint64_t requested = have;  // bytes asked for so far
  std::set<std::uint64_t> my_requests;
  auto ask = [&] {
    // Two windows in flight keep the link busy without queueing a whole photo at the hub.
    while (requested < size && requested - have < 2ull * kWindowBytes) {
      v1::Envelope request;
      request.mutable_photo_request()->set_sha256(sha256);
      request.mutable_photo_request()->set_offset(requested);
      request.mutable_photo_request()->set_max_bytes(kWindowBytes);
      my_requests.insert(client.send(std::move(request)));
      requested = std::min<std::uint64_t>(size, requested + kWindowBytes);
    }
  };
  ask();
  while (have < size) {
    auto e = co_await client.next(timeout);
    if (!e) throw ClientError("the hub sent no photo data for " + sha256.substr(0, 12) + " in time");
    if (e->has_error() && my_requests.count(e->error().in_reply_to())) {
      throw ClientFinalError("photo " + sha256.substr(0, 12) + ": " + e->error().message());
    }
    if (!e->has_photo_chunk() || e->photo_chunk().sha256() != sha256) {
      other.push_back(std::move(*e));
      continue;
    }
    const auto& chunk = e->photo_chunk();
    if (chunk.offset() != have || chunk.data().empty() ||
        have + chunk.data().size() > size) {
      throw ClientError("photo " + sha256.substr(0, 12) + ": piece at " +
                        std::to_string(chunk.offset()) + " where " + std::to_string(have) +
                        " was expected");
    }
    out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    out.flush();
    if (!out) throw ClientSetupError("cannot write " + partial.string());
    have += chunk.data().size();
    result.received += chunk.data().size();
    if (progress) progress(have);
    ask();
  }
  out.close();
  std::ifstream in(partial, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (sha256_hex(bytes.str()) != sha256) {
    fs::remove(partial, ec);
    throw ClientFinalError("photo " + sha256.substr(0, 12) +
                           ": the bytes received do not match its SHA-256; deleted");
  }
  folder.photo_verified(sha256);
  co_return result;
}

namespace {

void confirm(Client& client, const std::vector<std::int64_t>& deleted) {
  for (const auto id : deleted) {
    v1::Envelope e;
    e.mutable_gallery_removed()->set_notice_id(id);
    client.send(std::move(e));
  }
}

void print_change(std::ostream& out, const v1::Envelope& e, const GalleryFolder& folder,
                  bool json_lines) {
  if (e.has_gallery_entry()) {
    auto it = folder.items().find(e.gallery_entry().notice_id());
    if (it == folder.items().end()) return;
    if (json_lines) {
      out << json({{"event", "gallery_entry"}, {"entry", to_json(it->second)}}).dump()
          << std::endl;
    } else {
      out << "added or changed: " << describe_item(it->second) << std::endl;
    }
  } else if (e.has_gallery_remove()) {
    if (json_lines) {
      out << json({{"event", "gallery_remove"},
                   {"notice_id", e.gallery_remove().notice_id()},
                   {"reason", e.gallery_remove().reason()}})
                 .dump()
          << std::endl;
    } else {
      out << "removed: notice " << e.gallery_remove().notice_id() << " ("
          << e.gallery_remove().reason() << ")" << std::endl;
    }
  }
}

// One connection's worth: sync, photos, and with `watch` live changes until `until`.
awaitable<int> gallery_session(const ClientOptions& base, const GalleryArgs& args,
                               GalleryFolder& folder, std::ostream& out,
                               std::chrono::steady_clock::time_point until) {
  ClientOptions options = base;
  options.gallery = true;
  options.gallery_version = folder.version();
  Client client(co_await asio::this_coro::executor, options);
  co_await client.connect();
  std::deque<v1::Envelope> pending;
  bool synced = false;
  for (;;) {
    std::optional<v1::Envelope> e;
    if (!pending.empty()) {
      e = std::move(pending.front());
      pending.pop_front();
    } else {
      const auto now = std::chrono::steady_clock::now();
      if (synced && (!args.watch || now >= until)) break;
      const auto wait = synced ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::min(until - now, std::chrono::steady_clock::duration(
                                                               std::chrono::seconds(60))))
                               : base.connect_timeout;
      e = co_await client.next(wait);
      if (!e) {
        if (!synced) throw ClientError("the hub sent no gallery in time");
        continue;
      }
    }
    const auto deleted = folder.apply(*e);
    confirm(client, deleted);
    if (synced) print_change(out, *e, folder, args.json);
    if (e->has_gallery_sync() && e->gallery_sync().done()) synced = true;
    if (synced) {
      for (const auto& [sha, size] : folder.missing_photos()) {
        co_await fetch_photo(client, folder, sha, size, pending);
      }
    }
  }
  client.close();
  co_return 0;
}

}  // namespace

int run_gallery_sync(const ClientOptions& options, const GalleryArgs& args, std::ostream& out,
                     std::ostream& err) {
  std::unique_ptr<GalleryFolder> folder;
  try {
    folder = std::make_unique<GalleryFolder>(args.dir);
  } catch (const ClientError& e) {
    err << "saferlink: " << e.what() << std::endl;
    return 1;
  }
  const auto until = args.seconds
                         ? std::chrono::steady_clock::now() +
                               std::chrono::milliseconds(static_cast<std::int64_t>(*args.seconds * 1000))
                         : std::chrono::steady_clock::time_point::max();
  const int rc = run_command(err, [&]() -> awaitable<int> {
    for (int attempt = 1;; ++attempt) {
      try {
        co_return co_await gallery_session(options, args, *folder, out, until);
      } catch (const ClientFinalError&) {
        throw;
      } catch (const ClientError& e) {
        // A lost connection: the folder holds what arrived (and the partial photo); the next
        // connection continues from there.
        if (!args.watch && attempt >= 5) throw;
        if (std::chrono::steady_clock::now() >= until) throw;
        err << "saferlink: " << e.what() << "; reconnecting" << std::endl;
      }
      asio::steady_timer pause(co_await asio::this_coro::executor,
                               std::chrono::milliseconds(std::min(500 * attempt, 30'000)));
      co_await pause.async_wait(asio::use_awaitable);
    }
  });
  if (rc != 0) return rc;
  if (!args.watch) {
    if (args.json) {
      for (const auto& [id, item] : folder->items()) out << to_json(item).dump() << std::endl;
    } else {
      out << "gallery version " << folder->version() << ", " << folder->items().size()
          << " entr" << (folder->items().size() == 1 ? "y" : "ies") << " in "
          << folder->dir().string() << std::endl;
      for (const auto& [id, item] : folder->items()) out << describe_item(item) << std::endl;
    }
  }
  return 0;
}

}  // namespace saferlink::client
