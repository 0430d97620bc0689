#include "client/commands.hpp"

#include "client/upload.hpp"
#include "core/forms.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>

namespace saferlink::client {

namespace asio = boost::asio;
using asio::awaitable;
using std::chrono::milliseconds;

namespace {

// The largest image file the CLI reads (the most any hub may be configured to accept); the
// hub's own cap (8 MiB by default) is checked by the hub.
constexpr std::uintmax_t kMaxImageFileBytes = 64 * 1024 * 1024;

// The bytes of an image file to upload; a ClientSetupError (retrying cannot cure it) when it
// cannot be read or is larger than any hub accepts.
std::string read_image_file(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw ClientSetupError("cannot read " + path + ": " + ec.message());
  if (size > kMaxImageFileBytes) {
    throw ClientSetupError(path + " is " + std::to_string(size) +
                           " bytes; no hub accepts an image larger than " +
                           std::to_string(kMaxImageFileBytes) + " bytes");
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (!in) throw ClientSetupError("cannot read " + path);
  return bytes.str();
}

bool is_responder_role(const std::string& role) {
  return role == "cctv" || role == "police" || role == "coordinator";
}

void print_event(std::ostream& out, const v1::Envelope& e, bool json) {
  if (json) {
    out << event_json(e, now_ms()) << std::endl;
  } else {
    out << describe(e) << std::endl;
  }
}

// Sends one request and waits for its receipt or error.
awaitable<int> request(ClientOptions options, v1::Envelope envelope, std::string done_text,
                       std::ostream& out, std::ostream& err) {
  Client client(co_await asio::this_coro::executor, options);
  co_await client.connect();
  const std::uint64_t id = client.send(std::move(envelope));
  for (;;) {
    auto reply = co_await client.next(options.connect_timeout);
    if (!reply) throw ClientError("the hub did not answer in time");
    if (reply->has_receipt() && reply->receipt().in_reply_to() == id) {
      out << done_text << std::endl;
      client.close();
      co_return 0;
    }
    if (reply->has_error() && reply->error().in_reply_to() == id) {
      err << "saferlink: " << reply->error().message() << std::endl;
      co_return 1;
    }
  }
}

// Runs `attempt` on a fresh connection. A ClientError that retrying may cure (a lost
// connection, STORE_FAILED, a timeout) is reported on `err` and tried again after a growing
// pause, at most kAttempts times and not once `*may_retry` says no; a ClientFinalError (a
// missing certificate, a refused image) is not retried. Parameters are references: GCC 12
// mishandles temporaries passed to coroutines.
constexpr int kAttempts = 5;

awaitable<int> with_retries(const ClientOptions& options, std::ostream& err,
                            const std::function<awaitable<int>(Client&)>& attempt,
                            const std::function<bool()>* may_retry = nullptr) {
  for (int n = 1;; ++n) {
    try {
      Client client(co_await asio::this_coro::executor, options);
      co_await client.connect();
      co_return co_await attempt(client);
    } catch (const ClientFinalError&) {
      throw;
    } catch (const ClientError& e) {
      if (n >= kAttempts || (may_retry != nullptr && !(*may_retry)())) throw;
      err << "saferlink: " << e.what() << "; retrying (" << n << ")" << std::endl;
    }
    asio::steady_timer pause(co_await asio::this_coro::executor, milliseconds(500 * n));
    co_await pause.async_wait(asio::use_awaitable);
  }
}

}  // namespace

int run_command(std::ostream& err, std::function<awaitable<int>()> body) {
  asio::io_context io;
  auto result = asio::co_spawn(io, body(), asio::use_future);
  io.run();
  try {
    return result.get();
  } catch (const ClientError& e) {
    err << "saferlink: " << e.what() << std::endl;
  } catch (const std::exception& e) {
    err << "saferlink: " << e.what() << std::endl;
  }
  return 1;
}

int run_panic(const ClientOptions& options, const PanicArgs& args, std::ostream& out,
              std::ostream& err) {
  const auto status = parse_alert_status(args.status);
  if (!status) {
    err << "saferlink: --status must be actual, exercise or test" << std::endl;
    return 1;
  }
  const auto sev = parse_severity(args.severity);
  if (!sev) {
    err << "saferlink: --severity must be extreme, severe, moderate or minor" << std::endl;
    return 1;
  }
  if (args.note.size() > 500) {
    err << "saferlink: --note is longer than 500 bytes" << std::endl;
    return 1;
  }
  const std::uint64_t seq = args.seq ? *args.seq : static_cast<std::uint64_t>(now_ms());
  const std::string alert_id = options.id + ":" + std::to_string(seq);
  const std::int64_t pressed_at = now_ms();
  out << alert_id << std::endl;

  return run_command(err, [&]() -> awaitable<int> {
    const auto give_up = std::chrono::steady_clock::now() +
                         milliseconds(static_cast<std::int64_t>(args.wait_seconds * 1000));
    auto remaining = [&] {
      return std::chrono::duration_cast<milliseconds>(give_up - std::chrono::steady_clock::now());
    };
    // A lost connection means: connect again and send the same alert again (same id: the hub
    // recognises the retry, answers accepted again and never relays it twice; statuses reach
    // every connection of this device).
    const std::function<awaitable<int>(Client&)> attempt =
        [&](Client& client) -> awaitable<int> {
      v1::Envelope envelope;
      auto* p = envelope.mutable_panic();
      p->set_alert_id(alert_id);
      p->set_device_seq(seq);
      p->set_pressed_at_ms(pressed_at);
      p->set_note(args.note);
      p->set_status(*status);
      p->set_severity(*sev);
      client.send(std::move(envelope));
      for (;;) {
        if (remaining() <= milliseconds(0)) {
          err << "saferlink: nobody acknowledged " << alert_id << " within "
              << args.wait_seconds << " s" << std::endl;
          co_return 1;
        }
        auto e = co_await client.next(remaining());
        if (!e) continue;
        if (e->has_error()) {
          // STORE_FAILED: not stored yet; retried like a lost connection (bounded).
          if (e->error().code() == v1::STORE_FAILED) throw ClientError(e->error().message());
          err << "saferlink: hub refused the alert: " << e->error().message() << std::endl;
          co_return 1;
        }
        if (e->has_accepted() && e->accepted().alert_id() == alert_id) {
          print_event(out, *e, args.json);
          continue;
        }
        if (!e->has_update() || e->update().alert_id() != alert_id) continue;
        print_event(out, *e, args.json);
        const auto& u = e->update();
        if (u.event() == v1::CANCELLED) co_return 0;
        if (u.event() == v1::RECIPIENT && u.recipient_status() != v1::DELIVERED &&
            is_responder_role(u.by_role())) {
          client.close();
          co_return 0;
        }
      }
    };
    const std::function<bool()> time_left = [&] { return remaining() > milliseconds(0); };
    co_return co_await with_retries(options, err, attempt, &time_left);
  });
}

int run_cancel(const ClientOptions& options, const std::string& alert_id,
               const std::string& reason, std::ostream& out, std::ostream& err) {
  v1::Envelope envelope;
  envelope.mutable_cancel()->set_alert_id(alert_id);
  envelope.mutable_cancel()->set_reason(reason);
  return run_command(err, [&]() {
    return request(options, envelope, "cancelled " + alert_id, out, err);
  });
}

int run_ack(const ClientOptions& options, const std::string& alert_id, const std::string& status,
            std::ostream& out, std::ostream& err) {
  const auto kind = parse_recipient_status(status);
  if (!kind) {
    err << "saferlink: --status must be delivered, acknowledged, en_route, on_scene or resolved"
        << std::endl;
    return 1;
  }
  v1::Envelope envelope;
  envelope.mutable_status()->set_alert_id(alert_id);
  envelope.mutable_status()->set_status(*kind);
  return run_command(err, [&]() {
    return request(options, envelope, status + " " + alert_id, out, err);
  });
}

int run_listen(const ClientOptions& options, const ListenArgs& args, std::ostream& out,
               std::ostream& err) {
  // With a state file the listener is a handset: it resumes from the last message it
  // processed, and reconnects after a lost connection instead of exiting.
  Cursors cursor;
  const bool stateful = !args.state.empty();
  if (stateful && std::filesystem::exists(args.state)) {
    std::ifstream in(args.state);
    std::string extra;
    if (!(in >> cursor.alert >> cursor.other) || (in >> extra)) {
      err << "saferlink: --state " << args.state.string()
          << " does not hold two sequence numbers; delete it to start afresh" << std::endl;
      return 1;
    }
  }
  auto save_cursor = [&](const Cursors& value) {
    const auto tmp = args.state.string() + ".tmp";
    {
      std::ofstream state(tmp, std::ios::trunc);
      state << value.alert << " " << value.other << "\n";
      if (!state) throw ClientSetupError("cannot write " + tmp);
    }
    std::filesystem::rename(tmp, args.state);
  };
  return run_command(err, [&]() -> awaitable<int> {
    const auto until = args.seconds ? std::chrono::steady_clock::now() +
                                          milliseconds(static_cast<std::int64_t>(*args.seconds * 1000))
                                    : std::chrono::steady_clock::time_point::max();
    std::size_t seen = 0;
    bool greeted = false;
    for (int attempt = 1;; ++attempt) {
      try {
        ClientOptions connect_options = options;
        connect_options.resume = stateful;
        connect_options.resume_cursor = cursor;
        Client client(co_await asio::this_coro::executor, connect_options);
        const v1::Welcome welcome = co_await client.connect();
        attempt = 0;
        if (!args.json && !greeted) {
          out << "listening as " << welcome.device_id() << " (" << welcome.role() << ", "
              << welcome.town() << ")" << std::endl;
        }
        greeted = true;
        for (;;) {
          const auto now = std::chrono::steady_clock::now();
          if (now >= until) co_return 0;
          const auto wait = args.seconds ? std::chrono::duration_cast<milliseconds>(until - now)
                                         : milliseconds(60'000);
          auto e = co_await client.next(wait);
          if (!e || e->has_receipt()) continue;  // receipts answer our own `delivered`
          print_event(out, *e, args.json);
          if (stateful && client.cursor() != cursor) {
            cursor = client.cursor();
            save_cursor(cursor);
          }
          if (args.count && ++seen >= *args.count) {
            client.close();
            co_return 0;
          }
        }
      } catch (const ClientFinalError&) {
        throw;
      } catch (const ClientError& e) {
        if (!stateful || std::chrono::steady_clock::now() >= until) throw;
        err << "saferlink: " << e.what() << "; reconnecting" << std::endl;
      }
      asio::steady_timer pause(co_await asio::this_coro::executor,
                               milliseconds(std::min(500 * std::max(attempt, 1), 30'000)));
      co_await pause.async_wait(asio::use_awaitable);
    }
  });
}

int run_report(const ClientOptions& options, const std::string& form_json_text,
               const std::vector<std::string>& still_files, bool json, std::ostream& out,
               std::ostream& err) {
  auto parsed = forms::form_from_json(form_json_text);
  if (!parsed) {
    err << "saferlink: the form is not valid: " << parsed.error << std::endl;
    return 1;
  }
  std::vector<std::string> stills;  // the files' bytes, read before anything is sent
  try {
    for (const auto& file : still_files) stills.push_back(read_image_file(file));
  } catch (const ClientError& e) {
    err << "saferlink: " << e.what() << std::endl;
    return 1;
  }
  v1::Envelope form_only;
  *form_only.mutable_form() = forms::to_wire(*parsed.form);
  const std::string form_id = parsed.form->form_id;
  out << form_id << std::endl;
  return run_command(err, [&]() -> awaitable<int> {
    // A lost connection before the confirmation: connect again and send the same form (same
    // form_id: the hub answers a retry with the same confirmation and stores it once). Stills
    // go first, every attempt: one the hub holds already is answered at once, one cut off
    // resumes, and the same bytes always give the same stored SHA-256, so every retry sends
    // the same form.
    bool stills_printed = false;
    const std::function<awaitable<int>(Client&)> attempt =
        [&](Client& client) -> awaitable<int> {
      v1::Envelope envelope = form_only;
      for (std::size_t i = 0; i < stills.size(); ++i) {
        v1::UploadStatus stored;
        try {
          stored = co_await upload_image(client, stills[i]);
        } catch (const UploadRefused& e) {
          throw UploadRefused("still " + still_files[i] + ": " + e.what());
        }
        const auto& listed = envelope.form().still_sha256();
        if (std::find(listed.begin(), listed.end(), stored.stored_sha256()) == listed.end()) {
          envelope.mutable_form()->add_still_sha256(stored.stored_sha256());
        }
        if (!json && !stills_printed) {
          out << "still " << still_files[i] << " stored as " << stored.stored_sha256() << " ("
              << stored.mime() << ")" << std::endl;
        }
      }
      stills_printed = true;
      const std::uint64_t id = client.send(envelope);
      for (;;) {
        auto e = co_await client.next(options.connect_timeout * 3);
        if (!e) throw ClientError("the hub did not confirm the form in time");
        if (e->has_error() && e->error().in_reply_to() == id) {
          if (e->error().code() == v1::STORE_FAILED) throw ClientError(e->error().message());
          err << "saferlink: form refused: " << e->error().message() << std::endl;
          co_return 1;
        }
        if (e->has_form_confirmed() && e->form_confirmed().form_id() == form_id) {
          if (json) {
            out << event_json(*e, now_ms()) << std::endl;
          } else {
            out << "confirmed " << e->form_confirmed().confirmation()
                << (e->form_confirmed().duplicate() ? " (already filed earlier)" : "")
                << std::endl;
          }
          client.close();
          co_return 0;
        }
      }
    };
    co_return co_await with_retries(options, err, attempt);
  });
}

int run_upload(const ClientOptions& options, const std::string& file, bool json,
               std::ostream& out, std::ostream& err) {
  std::string bytes;
  try {
    bytes = read_image_file(file);
  } catch (const ClientError& e) {
    err << "saferlink: " << e.what() << std::endl;
    return 1;
  }
  return run_command(err, [&]() -> awaitable<int> {
    // A lost connection: connect again and begin again; the hub resumes from the last byte it
    // holds (or answers at once if the image got stored meanwhile).
    const std::function<awaitable<int>(Client&)> attempt =
        [&](Client& client) -> awaitable<int> {
      v1::UploadStatus stored;
      try {
        stored = co_await upload_image(client, bytes);
      } catch (const UploadRefused& e) {
        throw UploadRefused(file + ": " + e.what());
      }
      if (json) {
        out << nlohmann::json{{"file", file},
                              {"sha256", stored.sha256()},
                              {"stored_sha256", stored.stored_sha256()},
                              {"mime", stored.mime()},
                              {"size", bytes.size()}}
                   .dump()
            << std::endl;
      } else {
        out << stored.stored_sha256() << std::endl;
      }
      client.close();
      co_return 0;
    };
    co_return co_await with_retries(options, err, attempt);
  });
}

int run_sighting(const ClientOptions& options, const SightingArgs& args, std::ostream& out,
                 std::ostream& err) {
  auto refuse = [&err](const std::string& why) {
    err << "saferlink: " << why << std::endl;
    return 1;
  };
  if (args.text.empty()) return refuse("--text is required");
  if (args.text.size() > 500) return refuse("--text is longer than 500 bytes");
  if (args.location.size() > 200) return refuse("--location is longer than 200 bytes");
  if (args.heading.size() > 100) return refuse("--heading is longer than 100 bytes");
  if (args.profile_id && *args.profile_id <= 0) return refuse("--profile must be a positive id");
  std::string photo;
  if (!args.photo_file.empty()) {
    try {
      photo = read_image_file(args.photo_file);
    } catch (const ClientError& e) {
      return refuse(e.what());
    }
  }
  const std::uint64_t seq = args.seq ? *args.seq : static_cast<std::uint64_t>(now_ms());
  const std::string sighting_id = options.id + ":" + std::to_string(seq);
  const std::int64_t seen_at = now_ms();
  out << sighting_id << std::endl;
  return run_command(err, [&]() -> awaitable<int> {
    // A lost connection or STORE_FAILED: connect again and send the same sighting (same id:
    // the hub stores it once and never relays it twice). The photo goes first, every attempt:
    // one the hub holds is answered at once, and the same bytes give the same stored SHA-256.
    const std::function<awaitable<int>(Client&)> attempt =
        [&](Client& client) -> awaitable<int> {
      v1::Envelope envelope;
      auto* x = envelope.mutable_sighting();
      x->set_sighting_id(sighting_id);
      x->set_device_seq(seq);
      x->set_text(args.text);
      if (args.profile_id) x->set_profile_id(*args.profile_id);
      x->set_location(args.location);
      x->set_heading(args.heading);
      x->set_town(args.town);
      x->set_seen_at_ms(seen_at);
      if (!photo.empty()) {
        v1::UploadStatus stored;
        try {
          stored = co_await upload_image(client, photo);
        } catch (const UploadRefused& e) {
          throw UploadRefused("photo " + args.photo_file + ": " + e.what());
        }
        x->set_photo_sha256(stored.stored_sha256());
      }
      const std::uint64_t id = client.send(std::move(envelope));
      for (;;) {
        auto e = co_await client.next(options.connect_timeout * 3);
        if (!e) throw ClientError("the hub did not answer in time");
        if (e->has_error() && e->error().in_reply_to() == id) {
          if (e->error().code() == v1::STORE_FAILED) throw ClientError(e->error().message());
          err << "saferlink: sighting refused: " << e->error().message() << std::endl;
          co_return 1;
        }
        if (e->has_sighting_accepted() && e->sighting_accepted().sighting_id() == sighting_id) {
          print_event(out, *e, args.json);
          client.close();
          co_return 0;
        }
      }
    };
    co_return co_await with_retries(options, err, attempt);
  });
}

int run_query(const ClientOptions& options, const std::string& op, const std::string& args_json,
              bool json, std::ostream& out, std::ostream& err) {
  v1::Envelope envelope;
  envelope.mutable_query()->set_op(op);
  envelope.mutable_query()->set_args_json(args_json);
  return run_command(err, [&]() -> awaitable<int> {
    Client client(co_await asio::this_coro::executor, options);
    co_await client.connect();
    const std::uint64_t id = client.send(envelope);
    for (;;) {
      auto e = co_await client.next(options.connect_timeout * 6);
      if (!e) throw ClientError("the hub did not answer in time");
      if (e->has_error() && e->error().in_reply_to() == id) {
        err << "saferlink: " << e->error().message() << std::endl;
        co_return 1;
      }
      if (!e->has_query_result() || e->query_result().in_reply_to() != id) continue;
      const auto result = nlohmann::json::parse(e->query_result().result_json(), nullptr, false);
      if (result.is_discarded()) throw ClientError("the hub answered with malformed JSON");
      if (json && result.is_array()) {
        for (const auto& item : result) out << item.dump() << std::endl;
      } else if (json) {
        out << result.dump() << std::endl;
      } else {
        out << result.dump(2) << std::endl;
      }
      client.close();
      co_return 0;
    }
  });
}

}  // namespace saferlink::client
