#include "firmware-sim/flash.hpp"

#include <nlohmann/json.hpp>


namespace saferlink::sim {

namespace {

using json = nlohmann::json;

constexpr int kFlashFormat = 1;

const char* kind_name(PendingItem::Kind kind) {
  switch (kind) {
    case PendingItem::Kind::panic: return "panic";
    case PendingItem::Kind::cancel: return "cancel";
    case PendingItem::Kind::sighting: return "sighting";
  }
  return "panic";
}

std::optional<PendingItem::Kind> parse_kind(const std::string& name) {
  if (name == "panic") return PendingItem::Kind::panic;
  if (name == "cancel") return PendingItem::Kind::cancel;
  if (name == "sighting") return PendingItem::Kind::sighting;
  return std::nullopt;
}

}  // namespace

std::string to_text(const Flash& flash) {
  json pending = json::array();
  for (const PendingItem& item : flash.pending) {
    pending.push_back({{"kind", kind_name(item.kind)},
                       {"id", item.id},
                       {"device_seq", item.device_seq},
                       {"created_at_ms", item.created_at_ms},
                       {"text", item.text},
                       {"status", item.status}});
  }
  json gallery = json::array();
  for (const GalleryHeld& g : flash.gallery) {
    gallery.push_back({{"notice_id", g.notice_id},
                       {"version", g.version},
                       {"photo_sha256", g.photo_sha256},
                       {"photo_size", g.photo_size},
                       {"photo_ok", g.photo_ok}});
  }
  json doc = {{"format", kFlashFormat},
              {"next_device_seq", flash.next_device_seq},
              {"resume_cursor", flash.resume_cursor},
              {"resume_cursor_other", flash.resume_cursor_other},
              {"gallery_version", flash.gallery_version},
              {"pending", pending},
              {"gallery", gallery},
              {"gallery_unconfirmed", flash.gallery_unconfirmed}};
  return doc.dump() + "\n";
}

std::optional<Flash> flash_from_text(const std::string& text, std::string* why) {
  auto fail = [&](const std::string& reason) -> std::optional<Flash> {
    if (why) *why = reason;
    return std::nullopt;
  };
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return fail("not a JSON object");
  if (!doc.contains("format") || doc["format"] != kFlashFormat) {
    return fail("unknown flash format (expected " + std::to_string(kFlashFormat) + ")");
  }
  Flash flash;
  try {
    flash.next_device_seq = doc.at("next_device_seq").get<std::uint64_t>();
    flash.resume_cursor = doc.at("resume_cursor").get<std::uint64_t>();
    flash.resume_cursor_other = doc.value("resume_cursor_other", std::uint64_t{0});
    flash.gallery_version = doc.value("gallery_version", std::uint64_t{0});
    if (flash.next_device_seq == 0) return fail("next_device_seq must be positive");
    for (const json& entry : doc.at("pending")) {
      PendingItem item;
      auto kind = parse_kind(entry.at("kind").get<std::string>());
      if (!kind) return fail("pending: unknown kind " + entry.at("kind").dump());
      item.kind = *kind;
      item.id = entry.at("id").get<std::string>();
      item.device_seq = entry.at("device_seq").get<std::uint64_t>();
      item.created_at_ms = entry.at("created_at_ms").get<std::int64_t>();
      item.text = entry.at("text").get<std::string>();
      item.status = entry.at("status").get<int>();
      if (item.id.empty()) return fail("pending: an item without an id");
      flash.pending.push_back(std::move(item));
    }
    // Written since the gallery came to the handset; older images have none.
    if (doc.contains("gallery")) {
      for (const json& entry : doc.at("gallery")) {
        GalleryHeld g;
        g.notice_id = entry.at("notice_id").get<std::int64_t>();
        g.version = entry.at("version").get<std::uint64_t>();
        g.photo_sha256 = entry.at("photo_sha256").get<std::string>();
        g.photo_size = entry.at("photo_size").get<std::uint64_t>();
        g.photo_ok = entry.at("photo_ok").get<bool>();
        if (g.notice_id <= 0) return fail("gallery: an entry without a notice id");
        flash.gallery.push_back(std::move(g));
      }
    }
    if (doc.contains("gallery_unconfirmed")) {
      flash.gallery_unconfirmed = doc.at("gallery_unconfirmed").get<std::vector<std::int64_t>>();
    }
  } catch (const json::exception& e) {
    return fail(std::string("missing or wrong field: ") + e.what());
  }
  return flash;
}

}  // namespace saferlink::sim
