#include "core/envelope.hpp"

#include "core/frame.hpp"

#include <atomic>
#include <chrono>

namespace saferlink {

Priority priority_of(const v1::Envelope& envelope) {
  switch (envelope.body_case()) {
    case v1::Envelope::kPanic:
    case v1::Envelope::kCancel:
      return Priority::alert;
    case v1::Envelope::kHello:
    case v1::Envelope::kWelcome:
    case v1::Envelope::kAccepted:
    case v1::Envelope::kStatus:
    case v1::Envelope::kUpdate:
    case v1::Envelope::kHeartbeat:
    case v1::Envelope::kError:
    case v1::Envelope::kReceipt:
    case v1::Envelope::kFormConfirmed:
    case v1::Envelope::kUploadStatus:
    case v1::Envelope::kSightingAccepted:
    case v1::Envelope::kGalleryRemoved:
      return Priority::control;
    case v1::Envelope::kUploadChunk:
    case v1::Envelope::kPhotoChunk:
      return Priority::bulk;
    case v1::Envelope::kForm:
    case v1::Envelope::kUploadBegin:
    case v1::Envelope::kQuery:
    case v1::Envelope::kQueryResult:
    case v1::Envelope::kSighting:  // behind alerts and control, ahead of bulk
    case v1::Envelope::kGallerySync:  // the gallery's messages share one class: kept in order
    case v1::Envelope::kGalleryEntry:
    case v1::Envelope::kGalleryRemove:
    case v1::Envelope::kPhotoRequest:
    case v1::Envelope::BODY_NOT_SET:
      break;
  }
  return Priority::normal;
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::uint64_t next_msg_id() {
  using namespace std::chrono;
  static std::atomic<std::uint64_t> next{static_cast<std::uint64_t>(
      duration_cast<microseconds>(system_clock::now().time_since_epoch()).count())};
  return next.fetch_add(1, std::memory_order_relaxed);
}

Frame encode(v1::Envelope& envelope) {
  if (envelope.msg_id() == 0) envelope.set_msg_id(next_msg_id());
  if (envelope.sent_at_ms() == 0) envelope.set_sent_at_ms(now_ms());
  return std::make_shared<const std::string>(frame_bytes(envelope.SerializeAsString()));
}

Frame encode_with_seq(std::string_view body, std::uint64_t seq) {
  std::string bytes;
  bytes.reserve(body.size() + 11);
  bytes.append(body);
  bytes.push_back(static_cast<char>((3 << 3) | 0));  // field 3 (seq), wire type varint
  do {
    auto byte = static_cast<unsigned char>(seq & 0x7f);
    seq >>= 7;
    if (seq != 0) byte |= 0x80;
    bytes.push_back(static_cast<char>(byte));
  } while (seq != 0);
  return std::make_shared<const std::string>(frame_bytes(bytes));
}

std::string_view body_name(v1::Envelope::BodyCase body) {
  switch (body) {
    case v1::Envelope::kHello: return "hello";
    case v1::Envelope::kWelcome: return "welcome";
    case v1::Envelope::kPanic: return "panic";
    case v1::Envelope::kAccepted: return "accepted";
    case v1::Envelope::kCancel: return "cancel";
    case v1::Envelope::kStatus: return "status";
    case v1::Envelope::kUpdate: return "update";
    case v1::Envelope::kHeartbeat: return "heartbeat";
    case v1::Envelope::kError: return "error";
    case v1::Envelope::kReceipt: return "receipt";
    case v1::Envelope::kForm: return "form";
    case v1::Envelope::kFormConfirmed: return "form_confirmed";
    case v1::Envelope::kUploadBegin: return "upload_begin";
    case v1::Envelope::kUploadChunk: return "upload_chunk";
    case v1::Envelope::kUploadStatus: return "upload_status";
    case v1::Envelope::kQuery: return "query";
    case v1::Envelope::kQueryResult: return "query_result";
    case v1::Envelope::kSighting: return "sighting";
    case v1::Envelope::kSightingAccepted: return "sighting_accepted";
    case v1::Envelope::kGallerySync: return "gallery_sync";
    case v1::Envelope::kGalleryEntry: return "gallery_entry";
    case v1::Envelope::kGalleryRemove: return "gallery_remove";
    case v1::Envelope::kGalleryRemoved: return "gallery_removed";
    case v1::Envelope::kPhotoRequest: return "photo_request";
    case v1::Envelope::kPhotoChunk: return "photo_chunk";
    case v1::Envelope::BODY_NOT_SET: return "empty envelope";
  }
  return "unknown";
}

std::string_view to_string(v1::AlertStatusKind status) {
  switch (status) {
    case v1::EXERCISE: return "exercise";
    case v1::TEST: return "test";
    default: return "actual";
  }
}

std::string_view to_string(v1::Severity severity) {
  switch (severity) {
    case v1::EXTREME: return "extreme";
    case v1::MODERATE: return "moderate";
    case v1::MINOR: return "minor";
    default: return "severe";
  }
}

std::string_view to_string(v1::RecipientStatusKind status) {
  switch (status) {
    case v1::DELIVERED: return "delivered";
    case v1::ACKNOWLEDGED: return "acknowledged";
    case v1::EN_ROUTE: return "en_route";
    case v1::ON_SCENE: return "on_scene";
    case v1::RESOLVED: return "resolved";
    default: return "unspecified";
  }
}

std::string_view to_string(v1::AlertEvent event) {
  switch (event) {
    case v1::RECIPIENT: return "recipient";
    case v1::ESCALATED: return "escalated";
    case v1::CANCELLED: return "cancelled";
    default: return "unspecified";
  }
}

std::optional<v1::AlertStatusKind> parse_alert_status(std::string_view text) {
  for (auto k : {v1::ACTUAL, v1::EXERCISE, v1::TEST}) {
    if (text == to_string(k)) return k;
  }
  return std::nullopt;
}

std::optional<v1::Severity> parse_severity(std::string_view text) {
  for (auto k : {v1::EXTREME, v1::SEVERE, v1::MODERATE, v1::MINOR}) {
    if (text == to_string(k)) return k;
  }
  return std::nullopt;
}

std::optional<v1::RecipientStatusKind> parse_recipient_status(std::string_view text) {
  for (auto k : {v1::DELIVERED, v1::ACKNOWLEDGED, v1::EN_ROUTE, v1::ON_SCENE, v1::RESOLVED}) {
    if (text == to_string(k)) return k;
  }
  return std::nullopt;
}

v1::Envelope make_error(std::uint64_t in_reply_to, v1::ErrorCode code, std::string message) {
  v1::Envelope envelope;
  auto* error = envelope.mutable_error();
  error->set_in_reply_to(in_reply_to);
  error->set_code(code);
  error->set_message(std::move(message));
  return envelope;
}

}  // namespace saferlink
