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
#include <vector>

namespace saferlink {

// First in, first out, allocating nothing until a frame is pushed and giving its memory back
// once emptied (a std::deque allocates about 576 bytes up front: for four classes, 2 KiB for
// every idle connection).
class FrameFifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  const Frame& front() const { return items_[head_]; }
  Frame& front() { return items_[head_]; }
  void push_back(Frame frame) { items_.push_back(std::move(frame)); }
  void pop_front();

 private:
  std::vector<Frame> items_;
  std::size_t head_ = 0;  // items_[0, head_) are taken
};

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
  std::array<FrameFifo, kPriorityClasses> classes_;
  std::size_t bytes_ = 0;
  std::size_t messages_ = 0;
};

}  // namespace saferlink
