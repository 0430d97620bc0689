#include "core/connection.hpp"

#include "core/metrics.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/multiple_exceptions.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace saferlink {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

bool expected_ending(const boost::system::error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::operation_aborted ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::bad_descriptor || ec == asio::ssl::error::stream_truncated ||
         ec == asio::error::not_connected;
}

namespace {

[[noreturn]] void end_from(const boost::system::error_code& ec) {
  throw ConnectionEnded(ec.message(), expected_ending(ec));
}


}  // namespace

Connection::Connection(Stream stream, Options options, std::string log_name)
    : strand_(stream.get_executor()),
      stream_(std::move(stream)),
      options_(options),
      log_name_(std::move(log_name)),
      decoder_(options.max_frame_bytes),
      queue_(options.limits),
      wake_(strand_),
      tick_(strand_) {}

awaitable<void> Connection::run(Handler on_message) {
  using namespace asio::experimental::awaitable_operators;
  auto self = shared_from_this();  // the coroutines below use members until they end
  on_message_ = std::move(on_message);
  started_ = last_rx_ = last_tx_ = Clock::now();
  std::exception_ptr ending;
  try {
    co_await (reader() && writer() && ticker());
  } catch (...) {
    ending = std::current_exception();
  }
  // The handler usually holds what holds this connection: drop it to break the cycle.
  on_message_ = nullptr;
  // Several parts usually end at once (each ends by throwing); `&&` nests them in
  // multiple_exceptions. The first one says why.
  for (;;) {
    try {
      std::rethrow_exception(ending);
    } catch (const asio::multiple_exceptions& e) {
      ending = e.first_exception();
    }
  }
}

void Connection::send(Frame frame, Priority priority) {
  asio::post(strand_, [self = shared_from_this(), frame = std::move(frame), priority]() mutable {
    self->enqueue(std::move(frame), priority);
  });
}

void Connection::close(std::string reason) {
  asio::post(strand_, [self = shared_from_this(), reason = std::move(reason)]() mutable {
    self->request_close(std::move(reason), true);
  });
}

void Connection::abort(std::string reason) {
  asio::post(strand_, [self = shared_from_this(), reason = std::move(reason)]() mutable {
    if (self->close_reason_.empty()) self->close_reason_ = std::move(reason);
    boost::system::error_code ignored;
    self->stream_.lowest_layer().close(ignored);
    self->wake_.cancel();
    self->tick_.cancel();
  });
}

void Connection::enqueue(Frame frame, Priority priority) {
  if (closing_) return;
  if (queue_.push(std::move(frame), priority) == OutQueue::Push::overflow) {
    // The peer is not reading. Closing is the only way to keep its backlog bounded; what is
    // queued already still gets its chance to drain within the closing deadline.
    count(net_counters().slow_consumer_disconnects);
    request_close("slow consumer: outgoing queue full", false);
    return;
  }
  queued_messages_.store(queue_.messages(), std::memory_order_relaxed);
  wake_.cancel();
}

void Connection::request_close(std::string reason, bool expected) {
  if (closing_) return;
  closing_ = true;
  close_expected_ = expected;
  close_reason_ = std::move(reason);
  closing_since_ = Clock::now();
  wake_.cancel();
}

void Connection::handle_frame(std::string_view body) {
  v1::Envelope envelope;
  if (!envelope.ParseFromArray(body.data(), static_cast<int>(body.size())) ||
      envelope.body_case() == v1::Envelope::BODY_NOT_SET) {
    count(net_counters().malformed_frames);
    v1::Envelope error = make_error(envelope.msg_id(), v1::MALFORMED,
                                    "frame body is not a SaferLink envelope with a message");
    enqueue(encode(error), Priority::control);
    return;
  }
  got_message_ = true;
  count(net_counters().frames_received);
  on_message_(std::move(envelope));
}

awaitable<void> Connection::reader() {
  for (;;) {
    // The bytes are in a buffer shared by the connections of this thread (an idle connection
    // keeps none): the decoder copies them before anything is awaited.
    auto [ec, bytes] = co_await stream_.read_some_shared();
    if (ec) end_from(ec);
    decoder_.feed(bytes.data(), bytes.size());
    last_rx_ = Clock::now();
    for (bool more = true; more && !closing_;) {
      switch (decoder_.next()) {
        case FrameDecoder::Status::need_more:
          more = false;
          break;
        case FrameDecoder::Status::frame:
          handle_frame(decoder_.body());
          break;
        case FrameDecoder::Status::empty: {
          count(net_counters().malformed_frames);
          v1::Envelope error = make_error(0, v1::MALFORMED, "empty frame");
          enqueue(encode(error), Priority::control);
          break;
        }
        case FrameDecoder::Status::too_large: {
          count(net_counters().oversize_frames);
          v1::Envelope error = make_error(
              0, v1::FRAME_TOO_LARGE,
              "frame of " + std::to_string(decoder_.announced()) + " bytes exceeds the cap of " +
                  std::to_string(decoder_.cap()) + " bytes; closing");
          enqueue(encode(error), Priority::control);
          request_close("frame over the cap (" + std::to_string(decoder_.announced()) + " bytes)",
                        false);
          more = false;
          break;
        }
      }
    }
    if (closing_) {
      // Stop reading; the writer flushes and ends the connection (the ticker bounds how long).
      asio::steady_timer hold(strand_, asio::steady_timer::time_point::max());
      co_await hold.async_wait(asio::as_tuple(use_awaitable));
      throw ConnectionEnded(close_reason_, close_expected_);
    }
  }
}

awaitable<void> Connection::writer() {
  for (;;) {
    if (queue_.empty()) {
      if (closing_) throw ConnectionEnded(close_reason_, close_expected_);
      wake_.expires_at(asio::steady_timer::time_point::max());
      co_await wake_.async_wait(asio::as_tuple(use_awaitable));
      auto state = co_await asio::this_coro::cancellation_state;
      if (state.cancelled() != asio::cancellation_type::none) {
        throw ConnectionEnded("cancelled", true);
      }
      if (!stream_.lowest_layer().is_open()) throw ConnectionEnded(close_reason_, true);
      continue;
    }
    queue_.pop_batch(batch_, options_.max_batch_bytes);
    queued_messages_.store(queue_.messages(), std::memory_order_relaxed);
    out_.clear();
    for (const auto& frame : batch_) out_.append(*frame);
    writing_ = true;
    write_started_ = Clock::now();
    const boost::system::error_code ec = co_await stream_.write_all(out_.data(), out_.size());
    writing_ = false;
    if (ec) end_from(ec);
    // A burst (photo chunks) leaves a large buffer behind: an idle connection should not keep it.
    if (out_.capacity() > 4096) std::string().swap(out_);
    last_tx_ = Clock::now();
    frames_sent_.fetch_add(batch_.size(), std::memory_order_relaxed);
    count(net_counters().frames_sent, batch_.size());
    batch_.clear();
  }
}

awaitable<void> Connection::ticker() {
  using std::chrono::milliseconds;
  const milliseconds tick = std::max(
      milliseconds(10), std::min({options_.heartbeat_interval, options_.write_timeout,
                                  options_.idle_timeout, options_.first_message_timeout}) /
                            4);
  for (;;) {
    tick_.expires_after(tick);
    co_await tick_.async_wait(asio::as_tuple(use_awaitable));
    auto state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none) {
      throw ConnectionEnded("cancelled", true);
    }
    if (!stream_.lowest_layer().is_open()) {
      throw ConnectionEnded(close_reason_.empty() ? "closed" : close_reason_, true);
    }
    const auto now = Clock::now();
    if (closing_) {
      if (now - closing_since_ > options_.write_timeout) {
        throw ConnectionEnded(close_reason_ + " (queue not drained in time)", close_expected_);
      }
      continue;
    }
    if (!got_message_ && now - started_ > options_.first_message_timeout) {
      throw ConnectionEnded("no message within the first-message deadline", true);
    }
    if (now - last_rx_ > options_.idle_timeout) {
      count(net_counters().idle_disconnects);
      throw ConnectionEnded("idle: nothing received within the idle deadline", true);
    }
    if (writing_ && now - write_started_ > options_.write_timeout) {
      count(net_counters().write_stall_disconnects);
      throw ConnectionEnded("write stalled beyond the write deadline", false);
    }
    if (!writing_ && queue_.empty() && now - last_tx_ >= options_.heartbeat_interval) {
      v1::Envelope heartbeat;
      heartbeat.mutable_heartbeat();
      enqueue(encode(heartbeat), Priority::control);
    }
  }
}

}  // namespace saferlink
