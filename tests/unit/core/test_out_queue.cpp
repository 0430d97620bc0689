#include "core/out_queue.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

namespace {

using saferlink::Frame;
using saferlink::OutQueue;
using saferlink::Priority;
using Push = OutQueue::Push;

// A frame whose content starts with `tag` and is padded to `size` bytes, so a test can tell
// frames apart after they come out.
Frame frame(const std::string& tag, std::size_t size = 10) {
  std::string bytes = tag;
  if (bytes.size() < size) bytes.resize(size, '.');
  return std::make_shared<const std::string>(std::move(bytes));
}

std::string tag_of(const Frame& f) {
  const auto dot = f->find('.');
  return dot == std::string::npos ? *f : f->substr(0, dot);
}

// The batch's tags in order, space-separated ("alert1 control1 bulk1").
std::string tags(const std::vector<Frame>& batch) {
  std::string out;
  for (const auto& f : batch) out += (out.empty() ? "" : " ") + tag_of(f);
  return out;
}

constexpr std::size_t kBig = 1 << 20;  // a batch limit nothing in these tests reaches

OutQueue unbounded() { return OutQueue(OutQueue::Limits{1 << 24, 1 << 16}); }

}  // namespace

TEST_CASE("frames come out alert then control then normal then bulk whatever the push order") {
  OutQueue queue = unbounded();
  REQUIRE(queue.push(frame("bulk1"), Priority::bulk) == Push::queued);
  REQUIRE(queue.push(frame("normal1"), Priority::normal) == Push::queued);
  REQUIRE(queue.push(frame("control1"), Priority::control) == Push::queued);
  REQUIRE(queue.push(frame("alert1"), Priority::alert) == Push::queued);
  REQUIRE(queue.push(frame("normal2"), Priority::normal) == Push::queued);
  REQUIRE(queue.push(frame("alert2"), Priority::alert) == Push::queued);
  REQUIRE(queue.push(frame("control2"), Priority::control) == Push::queued);

  std::vector<Frame> batch;
  queue.pop_batch(batch, kBig);
  CHECK(tags(batch) == "alert1 alert2 control1 control2 normal1 normal2 bulk1");
  CHECK(queue.empty());
}

TEST_CASE("a batch holds at most one bulk frame and it comes last") {
  OutQueue queue = unbounded();
  for (int i = 1; i <= 3; ++i) {
    REQUIRE(queue.push(frame("bulk" + std::to_string(i)), Priority::bulk) == Push::queued);
  }
  REQUIRE(queue.push(frame("normal1"), Priority::normal) == Push::queued);

  std::vector<Frame> batch;
  queue.pop_batch(batch, kBig);
  CHECK(tags(batch) == "normal1 bulk1");
  queue.pop_batch(batch, kBig);
  CHECK(tags(batch) == "bulk2");
  queue.pop_batch(batch, kBig);
  CHECK(tags(batch) == "bulk3");
  CHECK(queue.empty());
  queue.pop_batch(batch, kBig);
  CHECK(batch.empty());
}

TEST_CASE("an alert pushed behind queued bulk chunks goes out in the next batch ahead of them") {
  OutQueue queue = unbounded();
  for (int i = 1; i <= 5; ++i) {
    REQUIRE(queue.push(frame("chunk" + std::to_string(i), 16 * 1024), Priority::bulk) ==
            Push::queued);
  }
  std::vector<Frame> batch;
  queue.pop_batch(batch, 64 * 1024);  // the writer is busy with this one when the alert comes
  CHECK(tags(batch) == "chunk1");

  REQUIRE(queue.push(frame("alert"), Priority::alert) == Push::queued);
  queue.pop_batch(batch, 64 * 1024);
  REQUIRE(!batch.empty());
  CHECK(tag_of(batch.front()) == "alert");
  CHECK(tags(batch) == "alert chunk2");
  CHECK(queue.messages(Priority::bulk) == 3);
}

TEST_CASE("a non-alert frame past the byte bound or the message bound overflows") {
  SUBCASE("bytes") {
    OutQueue queue(OutQueue::Limits{100, 1000});
    REQUIRE(queue.push(frame("a", 60), Priority::normal) == Push::queued);
    REQUIRE(queue.push(frame("b", 40), Priority::control) == Push::queued);  // exactly at 100
    CHECK(queue.push(frame("c", 1), Priority::bulk) == Push::overflow);
    CHECK(queue.push(frame("d", 1), Priority::control) == Push::overflow);
    CHECK(queue.push(frame("e", 1), Priority::normal) == Push::overflow);
    CHECK(queue.bytes() == 100);
    CHECK(queue.messages() == 2);
  }
  SUBCASE("messages") {
    OutQueue queue(OutQueue::Limits{1 << 20, 3});
    for (int i = 0; i < 3; ++i) REQUIRE(queue.push(frame("n"), Priority::normal) == Push::queued);
    CHECK(queue.push(frame("x"), Priority::normal) == Push::overflow);
    CHECK(queue.push(frame("x"), Priority::bulk) == Push::overflow);
    CHECK(queue.push(frame("x"), Priority::control) == Push::overflow);
    CHECK(queue.messages() == 3);
  }
  SUBCASE("a single frame larger than the byte bound") {
    OutQueue queue(OutQueue::Limits{100, 1000});
    CHECK(queue.push(frame("huge", 101), Priority::bulk) == Push::overflow);
    CHECK(queue.empty());
    CHECK(queue.bytes() == 0);
  }
}

TEST_CASE("alerts are accepted past the bounds up to twice the bounds and then overflow") {
  SUBCASE("message bound") {
    OutQueue queue(OutQueue::Limits{1 << 20, 4});
    for (int i = 0; i < 4; ++i) REQUIRE(queue.push(frame("n"), Priority::normal) == Push::queued);
    REQUIRE(queue.push(frame("n"), Priority::normal) == Push::overflow);
    for (int i = 0; i < 4; ++i) {
      REQUIRE_MESSAGE(queue.push(frame("a"), Priority::alert) == Push::queued, "alert " << i);
    }
    CHECK(queue.messages() == 8);
    CHECK(queue.push(frame("a"), Priority::alert) == Push::overflow);
    CHECK(queue.messages() == 8);
    CHECK(queue.messages(Priority::alert) == 4);
  }
  SUBCASE("byte bound") {
    OutQueue queue(OutQueue::Limits{100, 1000});
    REQUIRE(queue.push(frame("n", 100), Priority::normal) == Push::queued);
    REQUIRE(queue.push(frame("a", 60), Priority::alert) == Push::queued);   // 160 of 200
    REQUIRE(queue.push(frame("a", 40), Priority::alert) == Push::queued);   // 200 of 200
    CHECK(queue.push(frame("a", 1), Priority::alert) == Push::overflow);    // 201
    CHECK(queue.bytes() == 200);
  }
}

TEST_CASE("bytes() and messages() follow pushes and pops and refusals") {
  OutQueue queue = unbounded();
  CHECK(queue.empty());
  CHECK(queue.bytes() == 0);
  CHECK(queue.messages() == 0);
  REQUIRE(queue.push(frame("a", 11), Priority::alert) == Push::queued);
  REQUIRE(queue.push(frame("c", 22), Priority::control) == Push::queued);
  REQUIRE(queue.push(frame("b1", 33), Priority::bulk) == Push::queued);
  REQUIRE(queue.push(frame("b2", 44), Priority::bulk) == Push::queued);
  CHECK(!queue.empty());
  CHECK(queue.bytes() == 110);
  CHECK(queue.messages() == 4);
  CHECK(queue.messages(Priority::alert) == 1);
  CHECK(queue.messages(Priority::control) == 1);
  CHECK(queue.messages(Priority::normal) == 0);
  CHECK(queue.messages(Priority::bulk) == 2);

  std::vector<Frame> batch;
  queue.pop_batch(batch, kBig);
  CHECK(batch.size() == 3);
  CHECK(queue.bytes() == 44);
  CHECK(queue.messages() == 1);
  CHECK(queue.messages(Priority::bulk) == 1);

  queue.pop_batch(batch, kBig);
  CHECK(batch.size() == 1);  // cleared first, not appended to
  CHECK(queue.bytes() == 0);
  CHECK(queue.messages() == 0);
  CHECK(queue.empty());

  // Room freed by popping can be used again.
  OutQueue tight(OutQueue::Limits{50, 2});
  REQUIRE(tight.push(frame("x", 25), Priority::normal) == Push::queued);
  REQUIRE(tight.push(frame("y", 25), Priority::normal) == Push::queued);
  REQUIRE(tight.push(frame("z", 1), Priority::normal) == Push::overflow);
  tight.pop_batch(batch, 25);
  CHECK(tags(batch) == "x");
  CHECK(tight.push(frame("z", 25), Priority::normal) == Push::queued);
  CHECK(tight.bytes() == 50);
  CHECK(tight.messages() == 2);
}

TEST_CASE("max_batch_bytes limits a batch but a batch always takes at least one frame") {
  SUBCASE("the limit stops the batch within a class, lower classes wait") {
    OutQueue queue = unbounded();
    for (int i = 1; i <= 4; ++i) {
      REQUIRE(queue.push(frame("c" + std::to_string(i), 100), Priority::control) ==
              Push::queued);
    }
    REQUIRE(queue.push(frame("n1", 10), Priority::normal) == Push::queued);
    REQUIRE(queue.push(frame("b1", 10), Priority::bulk) == Push::queued);
    std::vector<Frame> batch;
    queue.pop_batch(batch, 250);
    CHECK(tags(batch) == "c1 c2");
    // The rest fits in one batch: the two remaining controls, then the lower classes.
    queue.pop_batch(batch, 250);
    CHECK(tags(batch) == "c3 c4 n1 b1");
    CHECK(queue.empty());
  }
  SUBCASE("a frame larger than the limit still goes out alone") {
    OutQueue queue = unbounded();
    REQUIRE(queue.push(frame("big", 1000), Priority::normal) == Push::queued);
    REQUIRE(queue.push(frame("small", 10), Priority::normal) == Push::queued);
    std::vector<Frame> batch;
    queue.pop_batch(batch, 100);
    CHECK(tags(batch) == "big");
    queue.pop_batch(batch, 100);
    CHECK(tags(batch) == "small");
  }
  SUBCASE("a bulk chunk larger than the limit goes out alone") {
    OutQueue queue = unbounded();
    REQUIRE(queue.push(frame("chunk", 1000), Priority::bulk) == Push::queued);
    std::vector<Frame> batch;
    queue.pop_batch(batch, 100);
    CHECK(tags(batch) == "chunk");
  }
  SUBCASE("a bulk chunk that does not fit behind other frames waits for the next batch") {
    OutQueue queue = unbounded();
    REQUIRE(queue.push(frame("chunk", 100), Priority::bulk) == Push::queued);
    REQUIRE(queue.push(frame("alert", 60), Priority::alert) == Push::queued);
    std::vector<Frame> batch;
    queue.pop_batch(batch, 120);
    CHECK(tags(batch) == "alert");
    queue.pop_batch(batch, 120);
    CHECK(tags(batch) == "chunk");
  }
}

TEST_CASE("a frame FIFO keeps order through long interleaved runs of pushes and pops and is "
          "empty when everything is taken") {
  saferlink::FrameFifo fifo;
  CHECK(fifo.empty());
  std::size_t next_in = 0;
  std::size_t next_out = 0;
  // Grows past the compaction point (256 taken) while never running empty, then drains.
  for (int round = 0; round < 2000; ++round) {
    for (int i = 0; i < 3; ++i) fifo.push_back(frame("f" + std::to_string(next_in++)));
    for (int i = 0; i < 2; ++i) {
      REQUIRE_FALSE(fifo.empty());
      REQUIRE(tag_of(fifo.front()) == "f" + std::to_string(next_out++));
      fifo.pop_front();
    }
    REQUIRE(fifo.size() == next_in - next_out);
  }
  while (!fifo.empty()) {
    REQUIRE(tag_of(fifo.front()) == "f" + std::to_string(next_out++));
    fifo.pop_front();
  }
  CHECK(next_out == next_in);
  CHECK(fifo.size() == 0);
  fifo.push_back(frame("again"));
  CHECK(tag_of(fifo.front()) == "again");
}
