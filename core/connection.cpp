#include "core/connection.hpp"

#include "core/metrics.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/ssl/error.hpp>
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

Connection::Connection(Stream stream, Options options, std::string log_name)
    : strand_(stream.get_executor()),
      stream_(std::move(stream)),
      options_(options),
      log_name_(std::move(log_name)),
      decoder_(options.max_frame_bytes),
      queue_(options.limits),
      done_(strand_),
      tick_(strand_) {}

awaitable<void> Connection::run(Handler on_message) {
  auto self = shared_from_this();  // the parts' handlers hold it too, until they end
  on_message_ = std::move(on_message);
  started_ = last_rx_ = last_tx_ = Clock::now();
  if (!finished_) {
    running_ = true;
    schedule_tick();
    start_write();  // what was sent before run()
    read_more();
  }
  if (!finished_) {
    done_.expires_at(asio::steady_timer::time_point::max());
    co_await done_.async_wait(asio::as_tuple(use_awaitable));
    if (!finished_) finish("cancelled", true);  // run() itself was cancelled
  }
  // The handler usually holds what holds this connection: drop it to break the cycle.
  on_message_ = nullptr;
  throw ConnectionEnded(end_reason_, end_expected_);
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
    if (self->close_reason_.empty()) self->close_reason_ = reason;
    self->finish(std::move(reason), true);
  });
}

void Connection::finish(std::string reason, bool expected) {
  if (finished_) return;
  finished_ = true;
  end_reason_ = std::move(reason);
  end_expected_ = expected;
  stream_.close();  // pending waits fail; no SSL call is made on this socket again
  tick_.cancel();
  done_.cancel();
}

void Connection::enqueue(Frame frame, Priority priority) {
  if (closing_ || finished_) return;
  if (queue_.push(std::move(frame), priority) == OutQueue::Push::overflow) {
    // The peer is not reading. Closing is the only way to keep its backlog bounded; what is
    // queued already still gets its chance to drain within the closing deadline.
    count(net_counters().slow_consumer_disconnects);
    request_close("slow consumer: outgoing queue full", false);
    return;
  }
  queued_messages_.store(queue_.messages(), std::memory_order_relaxed);
  write_soon();
}

void Connection::write_soon() {
  // Not at once: frames queued by the same burst of work (the answers to one read's worth of
  // frames, a fan-out's sends) go out together in one batch.
  if (write_scheduled_ || writing_ || !running_ || finished_) return;
  write_scheduled_ = true;
  asio::post(strand_, [self = shared_from_this()] {
    self->write_scheduled_ = false;
    self->start_write();
  });
}

void Connection::request_close(std::string reason, bool expected) {
  if (closing_ || finished_) return;
  closing_ = true;
  close_expected_ = expected;
  close_reason_ = std::move(reason);
  closing_since_ = Clock::now();
  write_soon();  // ends the connection when nothing is left to send
}

void Connection::wait_then(TlsSocket::Step::Wait what, void (Connection::*next)()) {
  const auto type = what == TlsSocket::Step::Wait::read ? TlsSocket::Socket::wait_read
                                                        : TlsSocket::Socket::wait_write;
  stream_.lowest_layer().async_wait(
      type, [self = shared_from_this(), next](const boost::system::error_code& ec) {
        if (self->finished_) return;
        if (ec) {
          self->finish(ec.message(), expected_ending(ec));
          return;
        }
        ((*self).*next)();
      });
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

void Connection::read_more() {
  try {
    // A few reads, then the strand's other work gets a turn (a peer sending without pause
    // must not starve this connection's writes).
    for (int round = 0; round < 16; ++round) {
      if (finished_ || closing_) return;  // closing: the writer flushes, then it ends
      // The thread's buffer: the decoder copies the bytes before anything else runs here.
      char* const buffer = TlsSocket::shared_read_buffer();
      const TlsSocket::Step step = stream_.read_now(buffer, TlsSocket::kSharedReadBytes);
      if (step.wait != TlsSocket::Step::Wait::none) {
        wait_then(step.wait, &Connection::read_more);
        return;
      }
      if (step.error) {
        finish(step.error.message(), expected_ending(step.error));
        return;
      }
      decoder_.feed(buffer, step.bytes);
      last_rx_ = Clock::now();
      for (bool more = true; more && !closing_ && !finished_;) {
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
                "frame of " + std::to_string(decoder_.announced()) +
                    " bytes exceeds the cap of " + std::to_string(decoder_.cap()) +
                    " bytes; closing");
            enqueue(encode(error), Priority::control);
            request_close(
                "frame over the cap (" + std::to_string(decoder_.announced()) + " bytes)", false);
            more = false;
            break;
          }
        }
      }
    }
    asio::post(strand_, [self = shared_from_this()] { self->read_more(); });
  } catch (const std::exception& e) {
    finish(std::string("message handling failed: ") + e.what(), false);
  }
}

void Connection::start_write() {
  if (!running_ || finished_ || writing_) return;
  if (queue_.empty()) {
    if (closing_) finish(close_reason_, close_expected_);
    return;
  }
  queue_.pop_batch(batch_, options_.max_batch_bytes);
  queued_messages_.store(queue_.messages(), std::memory_order_relaxed);
  out_.clear();
  for (const auto& frame : batch_) out_.append(*frame);
  out_written_ = 0;
  writing_ = true;
  write_started_ = Clock::now();
  write_more();
}

void Connection::write_more() {
  while (out_written_ < out_.size()) {
    if (finished_) return;
    const TlsSocket::Step step =
        stream_.write_now(out_.data() + out_written_, out_.size() - out_written_);
    out_written_ += step.bytes;
    if (step.wait != TlsSocket::Step::Wait::none) {
      wait_then(step.wait, &Connection::write_more);
      return;
    }
    if (step.error) {
      finish(step.error.message(), expected_ending(step.error));
      return;
    }
  }
  writing_ = false;
  last_tx_ = Clock::now();
  frames_sent_.fetch_add(batch_.size(), std::memory_order_relaxed);
  count(net_counters().frames_sent, batch_.size());
  batch_.clear();
  // The bytes are sent: an idle connection keeps no buffer (a burst of photo chunks would
  // leave a large one).
  std::string().swap(out_);
  // The next batch from the strand's queue, so that a long backlog neither recurses nor
  // starves this connection's reads.
  write_soon();
}

void Connection::schedule_tick() {
  using std::chrono::milliseconds;
  const milliseconds tick = std::max(
      milliseconds(10), std::min({options_.heartbeat_interval, options_.write_timeout,
                                  options_.idle_timeout, options_.first_message_timeout}) /
                            4);
  tick_.expires_after(tick);
  tick_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->finished_) return;
    self->on_tick();
  });
}

void Connection::on_tick() {
  if (!stream_.lowest_layer().is_open()) {
    finish(close_reason_.empty() ? "closed" : close_reason_, true);
    return;
  }
  const auto now = Clock::now();
  if (closing_) {
    if (now - closing_since_ > options_.write_timeout) {
      finish(close_reason_ + " (queue not drained in time)", close_expected_);
      return;
    }
    schedule_tick();
    return;
  }
  if (!got_message_ && now - started_ > options_.first_message_timeout) {
    finish("no message within the first-message deadline", true);
    return;
  }
  if (now - last_rx_ > options_.idle_timeout) {
    count(net_counters().idle_disconnects);
    finish("idle: nothing received within the idle deadline", true);
    return;
  }
  if (writing_ && now - write_started_ > options_.write_timeout) {
    count(net_counters().write_stall_disconnects);
    finish("write stalled beyond the write deadline", false);
    return;
  }
  if (!writing_ && queue_.empty() && now - last_tx_ >= options_.heartbeat_interval) {
    v1::Envelope heartbeat;
    heartbeat.mutable_heartbeat();
    enqueue(encode(heartbeat), Priority::control);
  }
  schedule_tick();
}

}  // namespace saferlink
