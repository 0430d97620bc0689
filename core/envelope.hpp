// Building and classifying envelopes: message ids, timestamps, encoding into a shareable frame,
// and the priority class each message travels in. Plain functions; callable from any thread.
#pragma once

#include "proto/saferlink.pb.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace saferlink {

inline constexpr std::uint32_t kProtocolVersion = 1;

// The largest frame a client accepts from the hub (a query result); the hub refuses to send a
// larger one and asks for a narrower query instead. Devices' frames to the hub are capped by
// the hub's own max_frame_bytes (64 KiB by default).
inline constexpr std::uint32_t kMaxResultFrameBytes = 4 * 1024 * 1024;

// An encoded frame (length prefix + envelope), shared by every recipient of a broadcast.
using Frame = std::shared_ptr<const std::string>;

// Priority classes of the outgoing queue, highest first (shared/SPEC.md section 4).
enum class Priority : std::uint8_t { alert = 0, control = 1, normal = 2, bulk = 3 };
inline constexpr std::size_t kPriorityClasses = 4;

Priority priority_of(const v1::Envelope& envelope);

// Unix wall-clock milliseconds.
std::int64_t now_ms();

// A process-wide message id: unique for this process and, being seeded from the start time in
// microseconds, not reused by the next run of the same program.
std::uint64_t next_msg_id();

// Stamps msg_id (if 0) and sent_at_ms (if 0) and encodes.
Frame encode(v1::Envelope& envelope);

// The frame of an already-serialized Envelope `body` (without a seq) with Envelope.seq set to
// `seq`: the field is appended to the bytes (protobuf merges it), so one serialization is shared
// by every recipient of a store-and-forward message and each gets its own number cheaply.
Frame encode_with_seq(std::string_view body, std::uint64_t seq);

// Lower-case name of a body case for logs and errors ("panic", "status", ...).
std::string_view body_name(v1::Envelope::BodyCase body);

// Lower-case names of enum values, as used in logs, JSON and the database.
std::string_view to_string(v1::AlertStatusKind status);
std::string_view to_string(v1::Severity severity);
std::string_view to_string(v1::RecipientStatusKind status);
std::string_view to_string(v1::AlertEvent event);

// The reverse of to_string above; nullopt for a name that is not one of them.
std::optional<v1::AlertStatusKind> parse_alert_status(std::string_view text);
std::optional<v1::Severity> parse_severity(std::string_view text);
std::optional<v1::RecipientStatusKind> parse_recipient_status(std::string_view text);

// An Error envelope in reply to `in_reply_to`.
v1::Envelope make_error(std::uint64_t in_reply_to, v1::ErrorCode code, std::string message);

}  // namespace saferlink
