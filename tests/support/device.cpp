#include "tests/support/device.hpp"

#include "client/upload.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <future>
#include <variant>

namespace saferlink::test {

namespace asio = boost::asio;

TestDevice::TestDevice(const std::filesystem::path& certs, const std::string& id,
                       const std::string& hub, bool auto_delivered)
    : id_(id) {
  client::ClientOptions options;
  options.hub = hub;
  options.certs = certs;
  options.id = id;
  options.auto_delivered = auto_delivered;
  options.connect_timeout = 5s;
  start(std::move(options));
}

TestDevice::TestDevice(const std::filesystem::path& certs, const std::string& id,
                       const std::string& hub,
                       const std::function<void(client::ClientOptions&)>& tweak)
    : id_(id) {
  client::ClientOptions options;
  options.hub = hub;
  options.certs = certs;
  options.id = id;
  options.connect_timeout = 5s;
  if (tweak) tweak(options);
  start(std::move(options));
}

void TestDevice::start(client::ClientOptions options) {
  client_ = std::make_unique<client::Client>(io_.get_executor(), std::move(options));
  work_ = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
      io_.get_executor());
  thread_ = std::thread([this] { io_.run(); });
}

client::Cursors TestDevice::cursor() {
  return run<client::Cursors>([this]() -> asio::awaitable<client::Cursors> {
    co_return client_->cursor();
  });
}

std::uint64_t TestDevice::duplicates() {
  return run<std::uint64_t>([this]() -> asio::awaitable<std::uint64_t> {
    co_return client_->duplicates();
  });
}

void TestDevice::abort() {
  run<int>([this]() -> asio::awaitable<int> {
    client_->abort();
    co_return 0;
  });
}

client::PhotoFetch TestDevice::fetch_photo(client::GalleryFolder& folder,
                                           const std::string& sha256, std::uint64_t size,
                                           std::uint64_t cut_link_after) {
  return run<client::PhotoFetch>([&]() -> asio::awaitable<client::PhotoFetch> {
    std::deque<v1::Envelope> other;
    // Runs on this device's thread, inside the download.
    std::function<void(std::uint64_t)> on_progress = [this, cut_link_after](std::uint64_t have) {
      if (cut_link_after != 0 && have >= cut_link_after) client_->abort();
    };
    auto result = co_await client::fetch_photo(*client_, folder, sha256, size, other, 10s,
                                               std::move(on_progress));
    for (auto& e : other) seen.push_back(std::move(e));
    co_return result;
  });
}

TestDevice::~TestDevice() {
  asio::post(io_, [this] { client_.reset(); });
  work_.reset();
  io_.stop();
  thread_.join();
}

template <class T>
T TestDevice::run(std::function<asio::awaitable<T>()> body) {
  // Failures cross back to the test's thread as plain text and are thrown there: an
  // exception_ptr made on the device thread and freed on this one upsets the thread sanitizer.
  auto guarded = [&body]() -> asio::awaitable<std::variant<T, std::string>> {
    try {
      co_return co_await body();
    } catch (const std::exception& e) {
      co_return std::string(e.what());
    }
  };
  auto result = asio::co_spawn(io_, guarded(), asio::use_future).get();
  if (auto* error = std::get_if<std::string>(&result)) throw client::ClientError(*error);
  return std::get<T>(std::move(result));
}

v1::Welcome TestDevice::connect() {
  return run<v1::Welcome>([this] { return client_->connect(); });
}

std::uint64_t TestDevice::send(v1::Envelope envelope) {
  std::promise<std::uint64_t> id;
  asio::post(io_, [&] {
    try {
      id.set_value(client_->send(std::move(envelope)));
    } catch (...) {
      id.set_exception(std::current_exception());
    }
  });
  return id.get_future().get();
}

std::optional<v1::Envelope> TestDevice::next(std::chrono::milliseconds timeout) {
  return run<std::optional<v1::Envelope>>([this, timeout] { return client_->next(timeout); });
}

std::optional<v1::Envelope> TestDevice::wait_for(
    const std::function<bool(const v1::Envelope&)>& pred, std::chrono::milliseconds timeout) {
  for (auto it = seen.begin(); it != seen.end(); ++it) {
    if (pred(*it)) {
      v1::Envelope e = *it;
      seen.erase(it);
      return e;
    }
  }
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left <= 0ms) return std::nullopt;
    auto e = next(left);
    if (!e) return std::nullopt;
    if (pred(*e)) return e;
    seen.push_back(std::move(*e));
  }
}

std::vector<v1::Envelope> TestDevice::drain(std::chrono::milliseconds window) {
  std::vector<v1::Envelope> out = std::move(seen);
  seen.clear();
  const auto until = std::chrono::steady_clock::now() + window;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left <= 0ms) return out;
    auto e = next(left);
    if (!e) return out;
    out.push_back(std::move(*e));
  }
}

std::uint64_t TestDevice::panic(std::uint64_t seq, v1::AlertStatusKind status) {
  v1::Envelope e;
  auto* p = e.mutable_panic();
  p->set_alert_id(id_ + ":" + std::to_string(seq));
  p->set_device_seq(seq);
  p->set_pressed_at_ms(now_ms());
  p->set_status(status);
  p->set_severity(v1::SEVERE);
  return send(std::move(e));
}

std::uint64_t TestDevice::status(const std::string& alert_id, v1::RecipientStatusKind kind) {
  v1::Envelope e;
  e.mutable_status()->set_alert_id(alert_id);
  e.mutable_status()->set_status(kind);
  return send(std::move(e));
}

std::uint64_t TestDevice::cancel(const std::string& alert_id) {
  v1::Envelope e;
  e.mutable_cancel()->set_alert_id(alert_id);
  e.mutable_cancel()->set_reason("false alarm");
  return send(std::move(e));
}

v1::Envelope TestDevice::query(const std::string& op, const std::string& args_json) {
  v1::Envelope e;
  e.mutable_query()->set_op(op);
  e.mutable_query()->set_args_json(args_json);
  const std::uint64_t id = send(std::move(e));
  auto reply = wait_for([id](const v1::Envelope& x) {
    return (x.has_query_result() && x.query_result().in_reply_to() == id) ||
           (x.has_error() && x.error().in_reply_to() == id);
  });
  if (!reply) throw client::ClientError("no answer to query " + op);
  return *reply;
}

namespace {

// How an upload ended, as plain values: an exception object handed from the device's thread to
// the test's through a future is destroyed on whichever thread lets go last, which the thread
// sanitizer cannot see ordered (libstdc++'s exception_ptr count is not instrumented).
struct UploadOutcome {
  std::optional<v1::UploadStatus> status;
  bool refused = false;
  std::string error;
};

}  // namespace

v1::UploadStatus TestDevice::upload(std::string bytes) {
  const auto outcome =
      run<UploadOutcome>([this, bytes = std::move(bytes)]() -> asio::awaitable<UploadOutcome> {
        UploadOutcome out;
        try {
          out.status = co_await client::upload_image(*client_, bytes, 10s);
        } catch (const client::UploadRefused& e) {
          out.refused = true;
          out.error = e.what();
        } catch (const std::exception& e) {
          out.error = e.what();
        }
        co_return out;
      });
  if (outcome.status) return *outcome.status;
  if (outcome.refused) throw client::UploadRefused(outcome.error);
  throw client::ClientError(outcome.error);
}

std::uint64_t TestDevice::upload_begin(const std::string& sha256, std::uint64_t size) {
  v1::Envelope e;
  e.mutable_upload_begin()->set_sha256(sha256);
  e.mutable_upload_begin()->set_size(size);
  return send(std::move(e));
}

std::uint64_t TestDevice::upload_chunk(const std::string& sha256, std::uint64_t offset,
                                       std::string data) {
  v1::Envelope e;
  e.mutable_upload_chunk()->set_sha256(sha256);
  e.mutable_upload_chunk()->set_offset(offset);
  e.mutable_upload_chunk()->set_data(std::move(data));
  return send(std::move(e));
}

std::optional<v1::UploadStatus> TestDevice::upload_status(const std::string& sha256,
                                                          std::chrono::milliseconds timeout) {
  auto e = wait_for(
      [&sha256](const v1::Envelope& x) {
        return x.has_upload_status() && x.upload_status().sha256() == sha256;
      },
      timeout);
  if (!e) return std::nullopt;
  return e->upload_status();
}

std::function<bool(const v1::Envelope&)> is_panic(const std::string& alert_id) {
  return [alert_id](const v1::Envelope& e) {
    return e.has_panic() && e.panic().alert_id() == alert_id;
  };
}

std::function<bool(const v1::Envelope&)> is_update(const std::string& alert_id,
                                                   v1::RecipientStatusKind status) {
  return [alert_id, status](const v1::Envelope& e) {
    return e.has_update() && e.update().alert_id() == alert_id &&
           e.update().event() == v1::RECIPIENT && e.update().recipient_status() == status;
  };
}

std::function<bool(const v1::Envelope&)> is_reply(std::uint64_t msg_id) {
  return [msg_id](const v1::Envelope& e) {
    return (e.has_receipt() && e.receipt().in_reply_to() == msg_id) ||
           (e.has_error() && e.error().in_reply_to() == msg_id);
  };
}

}  // namespace saferlink::test
