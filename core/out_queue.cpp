#include "core/out_queue.hpp"

namespace saferlink {

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
  auto take = [&](std::deque<Frame>& from) {
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
