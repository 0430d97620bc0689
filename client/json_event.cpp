// Rendering of received events for people (describe) and scripts (event_json).
#include "client/client.hpp"

#include <nlohmann/json.hpp>

#include <ctime>

namespace saferlink::client {

namespace {

std::string clock_time(std::int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

std::string upper_role(const std::string& role) {
  if (role == "cctv") return "CCTV";
  if (role == "police") return "Police";
  if (role == "shop") return "Shop";
  if (role == "coordinator") return "Coordinator";
  return role;
}

std::string age_text(std::int64_t ms) {
  if (ms < 60'000) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms / 60'000) + " min";
}

}  // namespace

std::string describe(const v1::Envelope& e) {
  switch (e.body_case()) {
    case v1::Envelope::kPanic: {
      const auto& p = e.panic();
      std::string s;
      if (p.status() == v1::EXERCISE) s += "[EXERCISE] ";
      if (p.status() == v1::TEST) s += "[TEST] ";
      s += p.escalated() ? "ESCALATED PANIC (round " + std::to_string(p.escalation_round()) + ")"
                         : "PANIC";
      s += " " + p.alert_id() + " from " + p.origin_member() + " (" + p.origin_id() + ", " +
           p.origin_town() + "), pressed " + clock_time(p.pressed_at_ms());
      const std::int64_t age = now_ms() - p.pressed_at_ms();
      if (age > 5'000) s += ", " + age_text(age) + " ago";
      if (!p.note().empty()) s += ": " + p.note();
      return s;
    }
    case v1::Envelope::kCancel:
      return "CANCELLED " + e.cancel().alert_id() + " by " + e.cancel().origin_id() +
             (e.cancel().reason().empty() ? "" : ": " + e.cancel().reason());
    case v1::Envelope::kAccepted:
      return "accepted " + e.accepted().alert_id() + " at " +
             clock_time(e.accepted().accepted_at_ms()) + ", relayed to " +
             std::to_string(e.accepted().recipients()) +
             (e.accepted().duplicate() ? " (already accepted earlier)" : "");
    case v1::Envelope::kUpdate: {
      const auto& u = e.update();
      switch (u.event()) {
        case v1::ESCALATED:
          return "escalated " + u.alert_id() + " (round " + std::to_string(u.escalation_round()) +
                 "): nobody acknowledged yet";
        case v1::CANCELLED:
          return "cancelled " + u.alert_id() + " at " + clock_time(u.at_ms());
        default:
          return upper_role(u.by_role()) + ": " + std::string(to_string(u.recipient_status())) +
                 " by " + u.by_id() + (u.by_town().empty() ? "" : " (" + u.by_town() + ")") +
                 " at " + clock_time(u.at_ms());
      }
    }
    case v1::Envelope::kSighting: {
      const auto& x = e.sighting();
      std::string s = x.possible_breach() ? "SIGHTING (POSSIBLE BREACH of notice " +
                                                std::to_string(x.notice_id()) + ")"
                                          : std::string("SIGHTING");
      s += " " + x.sighting_id() + " from " + x.origin_member() + " (" + x.origin_id() + ", " +
           upper_role(x.origin_role()) + ", " + x.town() + "), seen " +
           clock_time(x.seen_at_ms());
      if (x.profile_id() > 0) {
        s += ", profile " + std::to_string(x.profile_id()) +
             (x.profile_name().empty() ? "" : " (" + x.profile_name() + ")");
      }
      if (!x.location().empty()) s += ", at " + x.location();
      if (!x.heading().empty()) s += ", heading " + x.heading();
      if (!x.photo_sha256().empty()) s += ", photo " + x.photo_sha256().substr(0, 12);
      s += ": " + x.text();
      return s;
    }
    case v1::Envelope::kSightingAccepted: {
      const auto& a = e.sighting_accepted();
      std::string s = "accepted, relayed to " + std::to_string(a.recipients());
      if (a.possible_breach()) {
        s += " (possible breach of notice " + std::to_string(a.notice_id()) + ")";
      }
      if (a.duplicate()) s += " (already accepted earlier)";
      return s;
    }
    case v1::Envelope::kError:
      return "error: " + e.error().message();
    case v1::Envelope::kReceipt:
      return "done";
    case v1::Envelope::kWelcome:
      return "connected as " + e.welcome().device_id() + " (" + e.welcome().role() + ", " +
             e.welcome().town() + ")";
    default:
      return std::string(body_name(e.body_case()));
  }
}

std::string event_json(const v1::Envelope& e, std::int64_t received_at_ms) {
  nlohmann::json j;
  j["type"] = std::string(body_name(e.body_case()));
  j["msg_id"] = e.msg_id();
  j["sent_at_ms"] = e.sent_at_ms();
  j["received_at_ms"] = received_at_ms;
  switch (e.body_case()) {
    case v1::Envelope::kPanic: {
      const auto& p = e.panic();
      j["alert_id"] = p.alert_id();
      j["from_id"] = p.origin_id();
      j["from_role"] = "shop";
      j["member"] = p.origin_member();
      j["town"] = p.origin_town();
      j["status"] = std::string(to_string(p.status()));
      j["severity"] = std::string(to_string(p.severity()));
      j["note"] = p.note();
      j["pressed_at_ms"] = p.pressed_at_ms();
      j["accepted_at_ms"] = p.accepted_at_ms();
      j["expires_at_ms"] = p.expires_at_ms();
      j["escalated"] = p.escalated();
      j["escalation_round"] = p.escalation_round();
      break;
    }
    case v1::Envelope::kCancel:
      j["alert_id"] = e.cancel().alert_id();
      j["from_id"] = e.cancel().origin_id();
      j["from_role"] = "shop";
      j["status"] = "cancelled";
      j["reason"] = e.cancel().reason();
      break;
    case v1::Envelope::kAccepted:
      j["alert_id"] = e.accepted().alert_id();
      j["status"] = "accepted";
      j["accepted_at_ms"] = e.accepted().accepted_at_ms();
      j["duplicate"] = e.accepted().duplicate();
      j["recipients"] = e.accepted().recipients();
      break;
    case v1::Envelope::kUpdate: {
      const auto& u = e.update();
      j["alert_id"] = u.alert_id();
      j["event"] = std::string(to_string(u.event()));
      j["from_id"] = u.by_id();
      j["from_role"] = u.by_role();
      j["town"] = u.by_town();
      j["member"] = u.by_member();
      j["status"] = u.event() == v1::RECIPIENT ? std::string(to_string(u.recipient_status()))
                                               : std::string(to_string(u.event()));
      j["at_ms"] = u.at_ms();
      j["escalation_round"] = u.escalation_round();
      break;
    }
    case v1::Envelope::kSighting: {
      const auto& x = e.sighting();
      j["sighting_id"] = x.sighting_id();
      j["from_id"] = x.origin_id();
      j["from_role"] = x.origin_role();
      j["member"] = x.origin_member();
      j["town"] = x.town();
      j["possible_breach"] = x.possible_breach();
      j["profile_id"] = x.profile_id() > 0 ? nlohmann::json(x.profile_id()) : nlohmann::json();
      j["profile_name"] = x.profile_name();
      j["notice_id"] = x.notice_id() > 0 ? nlohmann::json(x.notice_id()) : nlohmann::json();
      j["text"] = x.text();
      j["location"] = x.location();
      j["heading"] = x.heading();
      j["photo_sha256"] = x.photo_sha256();
      j["seen_at_ms"] = x.seen_at_ms();
      j["accepted_at_ms"] = x.accepted_at_ms();
      break;
    }
    case v1::Envelope::kSightingAccepted: {
      const auto& a = e.sighting_accepted();
      j["sighting_id"] = a.sighting_id();
      j["status"] = "accepted";
      j["accepted_at_ms"] = a.accepted_at_ms();
      j["recipients"] = a.recipients();
      j["possible_breach"] = a.possible_breach();
      j["notice_id"] = a.notice_id() > 0 ? nlohmann::json(a.notice_id()) : nlohmann::json();
      j["profile_id"] = a.profile_id() > 0 ? nlohmann::json(a.profile_id()) : nlohmann::json();
      j["duplicate"] = a.duplicate();
      break;
    }
    case v1::Envelope::kError:
      j["code"] = v1::ErrorCode_Name(e.error().code());
      j["message"] = e.error().message();
      j["in_reply_to"] = e.error().in_reply_to();
      break;
    case v1::Envelope::kReceipt:
      j["in_reply_to"] = e.receipt().in_reply_to();
      break;
    case v1::Envelope::kFormConfirmed:
      j["form_id"] = e.form_confirmed().form_id();
      j["status"] = "confirmed";
      j["confirmation"] = e.form_confirmed().confirmation();
      j["duplicate"] = e.form_confirmed().duplicate();
      j["hub_received_at_ms"] = e.form_confirmed().received_at_ms();
      break;
    default:
      break;
  }
  return j.dump();
}

}  // namespace saferlink::client
