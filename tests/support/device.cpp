#include "tests/support/device.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <future>

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
  client_ = std::make_unique<client::Client>(io_.get_executor(), options);
  work_ = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
      io_.get_executor());
  thread_ = std::thread([this] { io_.run(); });
}

TestDevice::~TestDevice() {
  asio::post(io_, [this] { client_.reset(); });
  work_.reset();
  io_.stop();
  thread_.join();
}

template <class T>
T TestDevice::run(std::function<asio::awaitable<T>()> body) {
  return asio::co_spawn(io_, body(), asio::use_future).get();
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
