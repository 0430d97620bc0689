#include "core/frame.hpp"

namespace saferlink {

std::string frame_bytes(std::string_view body) {
  const auto n = static_cast<std::uint32_t>(body.size());
  std::string out;
  out.reserve(kFrameHeaderBytes + body.size());
  out.push_back(static_cast<char>((n >> 24) & 0xff));
  out.push_back(static_cast<char>((n >> 16) & 0xff));
  out.push_back(static_cast<char>((n >> 8) & 0xff));
  out.push_back(static_cast<char>(n & 0xff));
  out.append(body);
  return out;
}

FrameDecoder::FrameDecoder(std::uint32_t max_frame_bytes) : cap_(max_frame_bytes) {}

void FrameDecoder::feed(const char* data, std::size_t size) {
  // Drop what was handed out before growing, so the buffer holds at most one frame plus what
  // arrived behind it.
  if (consumed_ > 0) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  body_ = {};
  buffer_.append(data, size);
}

FrameDecoder::Status FrameDecoder::next() {
  body_ = {};
  const std::size_t available = buffer_.size() - consumed_;
  if (available < kFrameHeaderBytes) return Status::need_more;
  const auto* p = reinterpret_cast<const unsigned char*>(buffer_.data() + consumed_);
  const std::uint32_t length = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                               (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
  if (length > cap_) {
    announced_ = length;
    return Status::too_large;
  }
  if (length == 0) {
    consumed_ += kFrameHeaderBytes;
    return Status::empty;
  }
  if (available < kFrameHeaderBytes + length) return Status::need_more;
  body_ = std::string_view(buffer_).substr(consumed_ + kFrameHeaderBytes, length);
  consumed_ += kFrameHeaderBytes + length;
  return Status::frame;
}

}  // namespace saferlink
