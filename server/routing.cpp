#include "server/routing.hpp"

#include "core/envelope.hpp"

#include <string>

namespace saferlink::server {
namespace {

using Body = v1::Envelope::BodyCase;

// A town shared by two shops: exactly equal, and a specific town. A shop certificate with
// town "all" should never be issued; if one is, it hears no neighbours and no neighbour hears
// it (CCTV and police still do).
bool same_specific_town(const Identity& a, const Identity& b) {
  return a.town == b.town && !a.all_towns() && !b.all_towns();
}

bool receives_normal(const Identity& sender, const Identity& recipient) {
  switch (recipient.role) {
    case Role::cctv:
      return true;
    case Role::police:
      return recipient.all_towns() || recipient.town == sender.town;
    case Role::shop:
      return same_specific_town(sender, recipient);
    case Role::coordinator:  // only escalated alerts
    case Role::hub:
      return false;
  }
  return false;
}

bool receives_escalated(const Identity& recipient) {
  switch (recipient.role) {
    case Role::cctv:
    case Role::police:
    case Role::coordinator:
      return true;
    case Role::shop:
    case Role::hub:
      return false;
  }
  return false;
}

std::string status_name(v1::RecipientStatusKind status) {
  switch (status) {
    case v1::DELIVERED: return "delivered";
    case v1::ACKNOWLEDGED: return "acknowledged";
    case v1::EN_ROUTE: return "en_route";
    case v1::ON_SCENE: return "on_scene";
    case v1::RESOLVED: return "resolved";
    case v1::RECIPIENT_STATUS_UNSPECIFIED: return "unspecified";
    default: break;  // values outside the enum (protobuf keeps unknown enum numbers)
  }
  return "unknown " + std::to_string(static_cast<int>(status));
}

// The roles that receive alerts and so may report on them.
bool receives_alerts(Role role) {
  return role == Role::shop || role == Role::police || role == Role::cctv ||
         role == Role::coordinator;
}

}  // namespace

bool receives_panic(const Identity& sender, const Identity& recipient, bool escalated) {
  if (recipient.id == sender.id) return false;
  return escalated ? receives_escalated(recipient) : receives_normal(sender, recipient);
}

bool receives_sighting(const Identity& sender, const Identity& recipient, bool possible_breach) {
  if (recipient.id == sender.id) return false;
  switch (recipient.role) {
    case Role::cctv:
      return true;
    case Role::police:
      return recipient.all_towns() || (recipient.town == sender.town && !sender.all_towns());
    case Role::shop:
      return same_specific_town(sender, recipient);
    case Role::coordinator:
      return possible_breach;
    case Role::hub:
      return false;
  }
  return false;
}

bool may_send(Role role, v1::Envelope::BodyCase body) {
  if (role == Role::hub) return false;  // the hub speaks for itself; it never sends through here
  switch (body) {
    case v1::Envelope::kHello:
    case v1::Envelope::kHeartbeat:
    case v1::Envelope::kError:
      return true;
    case v1::Envelope::kPanic:
    case v1::Envelope::kCancel:
      return role == Role::shop;
    case v1::Envelope::kSighting:
      return role == Role::shop || role == Role::police || role == Role::cctv;
    case v1::Envelope::kStatus:
      return receives_alerts(role);
    case v1::Envelope::kForm:
    case v1::Envelope::kQuery:
      return receives_alerts(role);  // which forms and which ops: forms::validate, queries
    case v1::Envelope::kUploadBegin:
    case v1::Envelope::kUploadChunk:
      return receives_alerts(role);  // CCTV stills and photos; checked in server/uploads
    case v1::Envelope::kGalleryRemoved:
    case v1::Envelope::kPhotoRequest:
      return receives_alerts(role);  // which photos: checked against the store per image
    case v1::Envelope::kWelcome:
    case v1::Envelope::kAccepted:
    case v1::Envelope::kUpdate:
    case v1::Envelope::kReceipt:
    case v1::Envelope::kFormConfirmed:
    case v1::Envelope::kUploadStatus:
    case v1::Envelope::kQueryResult:
    case v1::Envelope::kSightingAccepted:
    case v1::Envelope::kGallerySync:
    case v1::Envelope::kGalleryEntry:
    case v1::Envelope::kGalleryRemove:
    case v1::Envelope::kPhotoChunk:
    case v1::Envelope::BODY_NOT_SET:
      return false;
  }
  return false;
}

bool may_report(Role role, v1::RecipientStatusKind status) {
  if (!receives_alerts(role)) return false;
  switch (status) {
    case v1::DELIVERED:
    case v1::ACKNOWLEDGED:
      return true;
    case v1::EN_ROUTE:
    case v1::ON_SCENE:
    case v1::RESOLVED:
      return role == Role::police;
    default:
      return false;
  }
}

bool is_responder(Role role) {
  return role == Role::cctv || role == Role::police || role == Role::coordinator;
}

std::string refusal_reason(Role role, v1::Envelope::BodyCase body) {
  return "role " + std::string(to_string(role)) + " may not send " + std::string(body_name(body));
}

std::string refusal_reason(Role role, v1::RecipientStatusKind status) {
  return "role " + std::string(to_string(role)) + " may not send status " + status_name(status);
}

}  // namespace saferlink::server
