// Frame codec of the device protocol: a 4-byte big-endian length, then that many bytes of one
// serialized v1::Envelope. The decoder checks the length against its cap before it reserves a
// byte for the body, so a hostile prefix cannot make anyone allocate.
//
// Plain values; a FrameDecoder belongs to one connection (call it only on that connection's
// strand).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace saferlink {

inline constexpr std::size_t kFrameHeaderBytes = 4;

// Prepends the length prefix to an already-serialized body.
std::string frame_bytes(std::string_view body);

class FrameDecoder {
 public:
  enum class Status {
    need_more,   // feed more bytes
    frame,       // body() holds one complete frame's body
    empty,       // a zero-length frame (no body to decode); framing stays in step
    too_large,   // the length prefix exceeds the cap; the stream cannot be trusted further
  };

  explicit FrameDecoder(std::uint32_t max_frame_bytes);

  // Appends received bytes. Call next() until it returns need_more before feeding again
  // (feeding is allowed at any time; buffered bytes are kept).
  void feed(const char* data, std::size_t size);

  // Extracts the next frame, if a whole one is buffered. After `frame`, body() is valid until
  // the next call to next() or feed().
  Status next();
  std::string_view body() const { return body_; }

  // The length the last too_large prefix announced.
  std::uint32_t announced() const { return announced_; }
  std::uint32_t cap() const { return cap_; }
  std::size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  std::uint32_t cap_;
  std::uint32_t announced_ = 0;
  std::string buffer_;
  std::size_t consumed_ = 0;  // bytes of buffer_ already handed out
  std::string_view body_;
};

}  // namespace saferlink
