// OutQueue: one connection's outgoing frames, by priority class (alerts > acknowledgements and
// control > other > bulk), bounded in bytes and messages. Pure data structure; owned by the
// connection and touched only on its strand.
//
// Bounds: a non-alert frame that would take the queue past either bound is refused (overflow:
// the connection treats the peer as a slow consumer). Alerts are never refused until the
// queue holds twice its bounds; a peer that far behind is disconnected rather than let grow.
// pop_batch() takes frames for one write, highest class first, and at most one bulk frame,
// always last: an alert that arrives during a write waits behind at most one bulk chunk.
#pragma once

#include "core/envelope.hpp"

#include <array>
#include <cstddef>
#include <deque>
#include <vector>

namespace saferlink {

class OutQueue {
 public:
  struct Limits {
    std::size_t max_bytes = 4 * 1024 * 1024;
    std::size_t max_messages = 4096;
  };
  enum class Push { queued, overflow };

  explicit OutQueue(Limits limits) : limits_(limits) {}

  Push push(Frame frame, Priority priority);

  // Moves frames for one write into `out` (cleared first): all queued alert, control and
  // normal frames in class order until `max_batch_bytes` is reached (at least one frame),
  // then at most one bulk frame if there is room.
  void pop_batch(std::vector<Frame>& out, std::size_t max_batch_bytes);

  bool empty() const { return messages_ == 0; }
  std::size_t bytes() const { return bytes_; }
  std::size_t messages() const { return messages_; }
  std::size_t messages(Priority priority) const {
    return classes_[static_cast<std::size_t>(priority)].size();
  }

 private:
  Limits limits_;
  std::array<std::deque<Frame>, kPriorityClasses> classes_;
  std::size_t bytes_ = 0;
  std::size_t messages_ = 0;
};

}  // namespace saferlink
