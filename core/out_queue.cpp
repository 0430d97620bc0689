#include "core/out_queue.hpp"

namespace saferlink {

void FrameFifo::pop_front() {
  items_[head_++].reset();
  if (head_ == items_.size()) {
    items_.clear();
    head_ = 0;
    if (items_.capacity() > 64) std::vector<Frame>().swap(items_);  // after a burst
  } else if (head_ >= 256 && head_ * 2 >= items_.size()) {
    // Never empty for long (a photo streaming): drop the taken slots now and then.
    items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

OutQueue::Push OutQueue::push(Frame frame, Priority priority) {
  const std::size_t size = frame->size();
  const std::size_t factor = priority == Priority::alert ? 2 : 1;
  if (bytes_ + size > factor * limits_.max_bytes ||
      messages_ + 1 > factor * limits_.max_messages) {
    return Push::overflow;
  }
  bytes_ += size;
  ++messages_;
  classes_[static_cast<std::size_t>(priority)].push_back(std::move(frame));
  return Push::queued;
}

void OutQueue::pop_batch(std::vector<Frame>& out, std::size_t max_batch_bytes) {
  out.clear();
  std::size_t batch_bytes = 0;
  auto take = [&](FrameFifo& from) {
    batch_bytes += from.front()->size();
    bytes_ -= from.front()->size();
    --messages_;
    out.push_back(std::move(from.front()));
    from.pop_front();
  };
  constexpr auto bulk = static_cast<std::size_t>(Priority::bulk);
  for (std::size_t c = 0; c < bulk; ++c) {
    auto& q = classes_[c];
    while (!q.empty() && (out.empty() || batch_bytes + q.front()->size() <= max_batch_bytes)) {
      take(q);
    }
    if (!q.empty()) return;  // batch full: lower classes wait for the next write
  }
  auto& q = classes_[bulk];
  if (!q.empty() && (out.empty() || batch_bytes + q.front()->size() <= max_batch_bytes)) {
    take(q);
  }
}

}  // namespace saferlink
