// Connection: one framed, prioritised TLS connection, used by the hub for each device and by
// every client for its link to the hub.
//
// Three parts run on the connection's strand as chains of completion handlers (not coroutines:
// an idle connection then holds no coroutine frames, a large share of the memory of ten
// thousand idle handsets). Whichever part ends the connection calls finish() once, which closes
// the socket, stops the others and wakes run():
//   reading  - reads bytes, decodes frames (FrameDecoder, cap checked before allocating), and
//              hands each Envelope to the message handler; answers undecodable or empty frames
//              with Error(MALFORMED) and carries on; answers an over-cap prefix with
//              Error(FRAME_TOO_LARGE) and closes (the stream cannot be resynchronised).
//   writing  - the only code that writes to the socket: pops batches from the OutQueue
//              (alerts > control > normal > bulk) and writes each as one buffer.
//   ticking  - heartbeats when nothing was sent for a heartbeat interval; closes the connection
//              when nothing was received within the idle timeout, when the first message does
//              not come within first_message_timeout, or when a write stays stalled beyond the
//              write timeout.
//
// Counts frames in and out, refused frames, and slow-consumer, write-stall and idle endings in
// the process's NetCounters (core/metrics.hpp).
//
// Thread contract: send(), close() and the counters may be called from any thread (they post
// to the strand). run() must be co_spawned on the strand that is the stream's executor. The
// message handler is called on that strand.
#pragma once

#include "core/envelope.hpp"
#include "core/frame.hpp"
#include "core/link.hpp"
#include "core/out_queue.hpp"
#include "core/tls_socket.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace saferlink {

// Thrown by the connection's coroutines to end it. `expected` endings (peer closed, timeout,
// close requested, cancelled) are logged as information, not as errors.
struct ConnectionEnded : std::runtime_error {
  ConnectionEnded(const std::string& why, bool is_expected)
      : std::runtime_error(why), expected(is_expected) {}
  bool expected;
};

// True for error codes that mean "the peer went away" rather than a fault of ours.
bool expected_ending(const boost::system::error_code& ec);

class Connection : public Link, public std::enable_shared_from_this<Connection> {
 public:
  // The socket's executor must be a strand (accept or connect onto make_strand(...)).
  using Executor = boost::asio::any_io_executor;
  using Stream = TlsSocket;
  using Handler = std::function<void(v1::Envelope&&)>;

  struct Options {
    std::uint32_t max_frame_bytes = 64 * 1024;
    std::chrono::milliseconds heartbeat_interval{10'000};
    std::chrono::milliseconds idle_timeout{35'000};
    std::chrono::milliseconds write_timeout{20'000};
    std::chrono::milliseconds first_message_timeout{10'000};
    OutQueue::Limits limits{};
    std::size_t max_batch_bytes = 64 * 1024;
  };

  Connection(Stream stream, Options options, std::string log_name);

  Stream& stream() { return stream_; }
  const Executor& executor() const override { return strand_; }
  const std::string& log_name() const { return log_name_; }

  // Runs reader, writer and ticker until the connection ends; always ends by throwing
  // ConnectionEnded (or the unexpected exception). The caller closes the socket afterwards.
  boost::asio::awaitable<void> run(Handler on_message);

  // Queues a frame (any thread). A queue overflow closes the connection as a slow consumer.
  void send(Frame frame, Priority priority) override;
  using Link::send;

  // Sends what is queued, then ends the connection (any thread). `reason` is logged.
  void close(std::string reason) override;

  // Closes the socket now (any thread): pending operations fail and run() ends.
  void abort(std::string reason) override;

  // Observability (any thread).
  std::size_t queued_messages() const override { return queued_messages_.load(); }
  std::uint64_t frames_sent() const { return frames_sent_.load(); }

 private:
  void read_more();                              // strand only: reads until it must wait
  void write_more();                             // strand only: writes out_ until done or wait
  void start_write();                            // strand only: a new batch, if idle
  void write_soon();                             // strand only: start_write() from the queue
  void schedule_tick();                          // strand only
  void on_tick();                                // strand only
  // Calls `next` on the strand once the socket is ready for what `step` waits for.
  void wait_then(TlsSocket::Step::Wait what, void (Connection::*next)());
  void enqueue(Frame frame, Priority priority);  // strand only
  void handle_frame(std::string_view body);      // strand only
  void request_close(std::string reason, bool expected);  // strand only
  // Ends the connection (once): closes the socket, stops the timers, wakes run().
  void finish(std::string reason, bool expected);  // strand only

  using Clock = std::chrono::steady_clock;

  // All members below are touched only on the strand, except the atomics.
  Executor strand_;
  Stream stream_;
  Options options_;
  std::string log_name_;
  Handler on_message_;
  FrameDecoder decoder_;
  OutQueue queue_;
  std::vector<Frame> batch_;
  std::string out_;  // the batch's frames back to back, written as one (TLS records of 16 KiB)
  std::size_t out_written_ = 0;
  boost::asio::steady_timer done_;    // run() sleeps on it; finish() wakes it
  boost::asio::steady_timer tick_;
  Clock::time_point started_;
  Clock::time_point last_rx_;
  Clock::time_point last_tx_;
  Clock::time_point write_started_;
  Clock::time_point closing_since_;
  bool got_message_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool close_expected_ = true;
  bool running_ = false;   // run() has started the parts
  bool write_scheduled_ = false;
  bool finished_ = false;  // finish() ran: nothing more is read, written or ticked
  bool end_expected_ = true;
  std::string close_reason_;
  std::string end_reason_;
  std::atomic<std::size_t> queued_messages_{0};
  std::atomic<std::uint64_t> frames_sent_{0};
};

}  // namespace saferlink
