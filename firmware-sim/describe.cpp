#include "firmware-sim/describe.hpp"

#include "core/envelope.hpp"

namespace saferlink::sim {

std::string describe(const v1::Envelope& e) {
  std::string seq = e.seq() > 0 ? " [seq " + std::to_string(e.seq()) + "]" : "";
  switch (e.body_case()) {
    case v1::Envelope::kPanic: {
      const auto& p = e.panic();
      std::string line = "PANIC " + p.alert_id() + " from " + p.origin_id() + " (" +
                         p.origin_member() + ", " + p.origin_town() + ")";
      if (p.status() == v1::EXERCISE || p.status() == v1::TEST) {
        line += " [" + std::string(to_string(p.status())) + "]";
      }
      if (p.escalated()) line += " ESCALATED round " + std::to_string(p.escalation_round());
      if (!p.note().empty()) line += ": " + p.note();
      return line + seq;
    }
    case v1::Envelope::kCancel:
      return "CANCELLED " + e.cancel().alert_id() + " by " + e.cancel().origin_id() +
             (e.cancel().reason().empty() ? "" : ": " + e.cancel().reason()) + seq;
    case v1::Envelope::kSighting: {
      const auto& s = e.sighting();
      std::string line = "SIGHTING " + s.sighting_id() + " from " + s.origin_id() + " in " +
                         s.town() + ": " + s.text();
      if (s.possible_breach()) line += " (possible breach of notice " + std::to_string(s.notice_id()) + ")";
      return line + seq;
    }
    case v1::Envelope::kUpdate: {
      const auto& u = e.update();
      switch (u.event()) {
        case v1::RECIPIENT:
          return std::string(to_string(u.recipient_status())) + " by " + u.by_id() + " (" +
                 u.by_role() + ", " + u.by_town() + ") for " + u.alert_id();
        case v1::ESCALATED:
          return "escalated " + u.alert_id() + " (round " + std::to_string(u.escalation_round()) + ")";
        case v1::CANCELLED:
          return "cancel of " + u.alert_id() + " done";
        default:
          return "update for " + u.alert_id();
      }
    }
    case v1::Envelope::kGalleryEntry: {
      const auto& g = e.gallery_entry();
      std::string towns;
      for (const auto& t : g.towns()) towns += (towns.empty() ? "" : ", ") + t;
      return "notice " + std::to_string(g.notice_id()) + ": " + g.name() + " (" + towns + "): " +
             g.conditions() +
             (g.photo_sha256().empty() ? ", no photo"
                                       : ", photo " + g.photo_sha256().substr(0, 12) + " (" +
                                             std::to_string(g.photo_size()) + " bytes)");
    }
    case v1::Envelope::kGalleryRemove:
      return "notice " + std::to_string(e.gallery_remove().notice_id()) + " left the gallery (" +
             e.gallery_remove().reason() + ")";
    default:
      return std::string(body_name(e.body_case()));
  }
}

}  // namespace saferlink::sim
