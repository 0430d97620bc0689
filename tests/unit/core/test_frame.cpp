#include "core/frame.hpp"

#include <doctest/doctest.h>

#include "proto/saferlink.pb.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <string_view>
#include <vector>

// The largest single allocation made by this thread while `tracking_allocations` is set: shows
// that a hostile length prefix does not make the decoder reserve memory for it. (Replacing the
// global operator new is process-wide; it only records, and only while a test asks.)
namespace {
thread_local bool tracking_allocations = false;
thread_local std::size_t largest_allocation = 0;
}  // namespace

void* operator new(std::size_t size) {
  if (tracking_allocations) largest_allocation = std::max(largest_allocation, size);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using saferlink::FrameDecoder;
using saferlink::frame_bytes;
using saferlink::kFrameHeaderBytes;
using Status = FrameDecoder::Status;

// A length prefix on its own (big-endian), whatever the length.
std::string prefix(std::uint32_t length) {
  std::string out;
  out.push_back(static_cast<char>((length >> 24) & 0xff));
  out.push_back(static_cast<char>((length >> 16) & 0xff));
  out.push_back(static_cast<char>((length >> 8) & 0xff));
  out.push_back(static_cast<char>(length & 0xff));
  return out;
}

void feed(FrameDecoder& decoder, std::string_view bytes) {
  decoder.feed(bytes.data(), bytes.size());
}

std::string serialized_panic(const std::string& alert_id, std::uint64_t seq) {
  saferlink::v1::Envelope envelope;
  envelope.set_msg_id(seq);
  envelope.mutable_panic()->set_alert_id(alert_id);
  envelope.mutable_panic()->set_device_seq(seq);
  envelope.mutable_panic()->set_note("man with a crowbar at the till");
  return envelope.SerializeAsString();
}

// Largest single allocation made while `step` runs.
template <class Step>
std::size_t largest_allocation_in(Step step) {
  largest_allocation = 0;
  tracking_allocations = true;
  step();
  tracking_allocations = false;
  return largest_allocation;
}

}  // namespace

TEST_CASE("frame_bytes prefixes the body with its length in big-endian order") {
  const std::string body(0x0102, 'x');
  const std::string framed = frame_bytes(body);
  REQUIRE(framed.size() == kFrameHeaderBytes + body.size());
  CHECK(framed.substr(0, 4) == prefix(0x0102));
  CHECK(framed.substr(4) == body);
  CHECK(frame_bytes("") == prefix(0));
}

TEST_CASE("a frame fed one byte at a time decodes once its last byte arrives") {
  const std::string body = serialized_panic("shop-chatham-01:7", 7);
  const std::string framed = frame_bytes(body);
  FrameDecoder decoder(64 * 1024);
  for (std::size_t i = 0; i + 1 < framed.size(); ++i) {
    feed(decoder, framed.substr(i, 1));
    REQUIRE_MESSAGE(decoder.next() == Status::need_more, "complete too early, at byte " << i);
  }
  feed(decoder, framed.substr(framed.size() - 1));
  REQUIRE(decoder.next() == Status::frame);
  CHECK(decoder.body() == body);
  CHECK(decoder.next() == Status::need_more);
  CHECK(decoder.buffered() == 0);
}

TEST_CASE("several frames in one feed all decode in order") {
  std::vector<std::string> bodies;
  std::string stream;
  for (std::uint64_t seq = 1; seq <= 5; ++seq) {
    bodies.push_back(serialized_panic("shop-chatham-01:" + std::to_string(seq), seq));
    stream += frame_bytes(bodies.back());
  }
  // Half of a sixth frame trails behind them.
  const std::string sixth = frame_bytes(serialized_panic("shop-chatham-01:6", 6));
  stream += sixth.substr(0, sixth.size() / 2);

  FrameDecoder decoder(64 * 1024);
  feed(decoder, stream);
  for (const auto& body : bodies) {
    REQUIRE(decoder.next() == Status::frame);
    CHECK(decoder.body() == body);
  }
  CHECK(decoder.next() == Status::need_more);
  CHECK(decoder.buffered() == sixth.size() / 2);

  feed(decoder, std::string_view(sixth).substr(sixth.size() / 2));
  REQUIRE(decoder.next() == Status::frame);
  CHECK(decoder.body() == serialized_panic("shop-chatham-01:6", 6));
}

TEST_CASE("a length exactly at the cap is accepted") {
  constexpr std::uint32_t cap = 1024;
  const std::string body(cap, '\x5a');
  FrameDecoder decoder(cap);
  feed(decoder, prefix(cap));
  CHECK(decoder.next() == Status::need_more);
  feed(decoder, body);
  REQUIRE(decoder.next() == Status::frame);
  CHECK(decoder.body().size() == cap);
  CHECK(decoder.body() == body);
}

TEST_CASE("decoder refuses a length one above the cap before any body byte arrives") {
  constexpr std::uint32_t cap = 1024;
  FrameDecoder decoder(cap);
  CHECK(decoder.cap() == cap);
  feed(decoder, prefix(cap + 1));
  CHECK(decoder.next() == Status::too_large);
  CHECK(decoder.announced() == cap + 1);
  // The stream cannot be trusted further: asking again does not resynchronise.
  CHECK(decoder.next() == Status::too_large);
}

TEST_CASE("a zero-length frame is reported as empty and the next frame still decodes") {
  const std::string body = serialized_panic("shop-chatham-01:1", 1);
  FrameDecoder decoder(64 * 1024);
  feed(decoder, prefix(0) + frame_bytes(body));
  CHECK(decoder.next() == Status::empty);
  CHECK(decoder.body().empty());
  REQUIRE(decoder.next() == Status::frame);
  CHECK(decoder.body() == body);
  CHECK(decoder.next() == Status::need_more);
}

TEST_CASE("a 0xFFFFFFFF prefix is refused without buffering towards it") {
  FrameDecoder decoder(64 * 1024);
  feed(decoder, prefix(0xFFFFFFFFu));
  CHECK(decoder.next() == Status::too_large);
  CHECK(decoder.announced() == 0xFFFFFFFFu);
  CHECK(decoder.buffered() == kFrameHeaderBytes);
  // More bytes behind it do not change the verdict; only what arrived is held.
  feed(decoder, std::string(100, '\0'));
  CHECK(decoder.next() == Status::too_large);
  CHECK(decoder.buffered() == kFrameHeaderBytes + 100);
}

TEST_CASE("a hostile length prefix makes the decoder allocate nothing near the announced size") {
  for (const std::uint32_t announced : {0xFFFFFFFFu, 0x00100000u, 64u * 1024u + 1u}) {
    CAPTURE(announced);
    FrameDecoder decoder(64 * 1024);
    const std::string header = prefix(announced);
    const std::size_t largest = largest_allocation_in([&] {
      feed(decoder, header);
      CHECK(decoder.next() == Status::too_large);
      feed(decoder, std::string_view("\x0a\x05hello", 7));
      CHECK(decoder.next() == Status::too_large);
    });
    CHECK(largest < 1024);
  }
  // The same decoder does allocate for a frame within the cap (the check above can see it).
  FrameDecoder decoder(64 * 1024);
  const std::string whole = frame_bytes(std::string(60 * 1024, 'b'));
  CHECK(largest_allocation_in([&] { feed(decoder, whole); }) >= whole.size());
  CHECK(decoder.next() == Status::frame);
}

TEST_CASE("random bytes only ever give need_more or too_large or empty or in-cap frames") {
  // Fixed seed: a failure reproduces. Small cap, so that random prefixes sometimes fit.
  std::mt19937 rng(20240607);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> length(0, 300);
  std::uniform_int_distribution<std::size_t> chunk(1, 64);
  constexpr std::uint32_t cap = 256;
  std::size_t frames = 0;
  std::size_t too_large = 0;
  std::size_t parsed = 0;
  for (int round = 0; round < 4000; ++round) {
    std::string garbage(length(rng), '\0');
    for (auto& c : garbage) c = static_cast<char>(byte(rng));
    // Every other buffer starts with a small valid-looking prefix, so bodies get decoded too.
    if (round % 2 == 0 && garbage.size() >= kFrameHeaderBytes) {
      const std::string p = prefix(static_cast<std::uint32_t>(garbage.size() % (cap + 1)));
      garbage.replace(0, kFrameHeaderBytes, p);
    }
    FrameDecoder decoder(cap);
    std::size_t offset = 0;
    bool stop = false;
    while (offset < garbage.size() && !stop) {
      const std::size_t n = std::min(chunk(rng), garbage.size() - offset);
      decoder.feed(garbage.data() + offset, n);
      offset += n;
      for (;;) {
        const Status s = decoder.next();
        if (s == Status::need_more) break;
        if (s == Status::too_large) {
          CHECK(decoder.announced() > cap);
          // Nothing is reserved for the announced length: only what arrived is held.
          CHECK(decoder.buffered() <= offset);
          ++too_large;
          stop = true;
          break;
        }
        if (s == Status::empty) continue;
        REQUIRE(s == Status::frame);
        REQUIRE(decoder.body().size() <= cap);
        REQUIRE(decoder.body().size() > 0);
        ++frames;
        saferlink::v1::Envelope envelope;
        if (envelope.ParseFromArray(decoder.body().data(),
                                    static_cast<int>(decoder.body().size()))) {
          ++parsed;
        }
      }
    }
    CHECK(decoder.buffered() <= garbage.size());
  }
  // The loop exercised every outcome, so the checks above were not vacuous.
  CHECK(frames > 100);
  CHECK(too_large > 100);
  INFO("bodies that happened to parse as envelopes: " << parsed);
}

TEST_CASE("frame_bytes output round-trips through the decoder including an empty body") {
  const std::vector<std::string> bodies = {serialized_panic("shop-rochester-02:3", 3),
                                           std::string(1, '\0'), std::string(4096, '\xff')};
  std::string stream;
  for (const auto& b : bodies) stream += frame_bytes(b);
  stream += frame_bytes("");
  FrameDecoder decoder(4096);
  feed(decoder, stream);
  for (const auto& b : bodies) {
    REQUIRE(decoder.next() == Status::frame);
    CHECK(decoder.body() == b);
  }
  CHECK(decoder.next() == Status::empty);
  CHECK(decoder.next() == Status::need_more);
  CHECK(decoder.buffered() == 0);

  saferlink::v1::Envelope parsed;
  FrameDecoder again(4096);
  feed(again, frame_bytes(bodies[0]));
  REQUIRE(again.next() == Status::frame);
  REQUIRE(parsed.ParseFromArray(again.body().data(), static_cast<int>(again.body().size())));
  CHECK(parsed.panic().alert_id() == "shop-rochester-02:3");
  CHECK(parsed.panic().device_seq() == 3);
}
