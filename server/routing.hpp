// Routing and authorisation decisions of the hub: pure functions of identities and message
// kinds, with no I/O, callable from any thread. The hub's sessions and alert tracker ask these;
// tests drive them for every role and town combination.
//
// Panic routing (shared/SPEC.md section 2):
//   normal    -> every CCTV operator (any town); police of the sender's town and police with
//                town "all"; every other shop of the sender's town.
//   escalated -> every police officer and CCTV operator in every town, and every coordinator.
//   The sender itself never receives its own alert.
//
// Sighting routing (shared/SPEC.md section 2, "Offender sighting"): everyone in the sighting's
// town — shops of that town, police of that town — plus every CCTV operator (any town) and every
// police officer with town "all"; coordinators only when the sighting is flagged as a possible
// breach of an active exclusion notice. The sender never receives its own sighting.
#pragma once

#include "core/identity.hpp"
#include "proto/saferlink.pb.h"

namespace saferlink::server {

// True when `recipient` should get a panic alert sent by `sender`.
bool receives_panic(const Identity& sender, const Identity& recipient, bool escalated);

// True when `recipient` should get a sighting sent by `sender`. `sender.town` is the sighting's
// town: the sender's certificate town, or for a sender whose certificate says "all" (CCTV,
// police) the town named in the message (the hub substitutes it before asking).
bool receives_sighting(const Identity& sender, const Identity& recipient, bool possible_breach);

// Deny by default: true only for the (role, message) pairs a device of that role may send.
//   hello, heartbeat, error: everyone
//   panic, cancel:           shop
//   sighting:                shop, police, cctv (not coordinators)
//   status:                  shop, police, cctv, coordinator (which statuses: may_report)
//   form, query:             shop, police, cctv, coordinator (finer rules: forms::validate,
//                            server/queries.cpp)
//   upload_begin, upload_chunk: shop, police, cctv, coordinator (image checks: server/uploads)
//   anything else (hub-to-device messages): nobody
bool may_send(Role role, v1::Envelope::BodyCase body);

// Which recipient statuses a role may report: delivered and acknowledged for every role that
// receives alerts; en_route, on_scene and resolved for police only.
bool may_report(Role role, v1::RecipientStatusKind status);

// A person of this role acknowledging an alert stops its escalation (CCTV, police, and the
// coordinators who receive escalated alerts). A neighbouring shop's acknowledgement does not.
bool is_responder(Role role);

// Human-readable reason for a refusal by may_send/may_report, e.g.
// "role shop may not send status en_route".
std::string refusal_reason(Role role, v1::Envelope::BodyCase body);
std::string refusal_reason(Role role, v1::RecipientStatusKind status);

}  // namespace saferlink::server
