// NetCounters: process-wide counts of what the framed connections (core/connection.hpp) did —
// frames in and out, frames refused, connections closed for being slow, stalled or idle. The
// hub exposes them on its /metrics endpoint (server/metrics.hpp); a client process has its own.
//
// Thread contract: any thread. Relaxed atomics: each value is a monotonic counter read for
// display, never used to order other memory.
#pragma once

#include <atomic>
#include <cstdint>

namespace saferlink {

struct NetCounters {
  std::atomic<std::uint64_t> slow_consumer_disconnects{0};  // outgoing queue overflowed
  std::atomic<std::uint64_t> write_stall_disconnects{0};    // a write outlived the write deadline
  std::atomic<std::uint64_t> idle_disconnects{0};           // nothing received in time
  std::atomic<std::uint64_t> frames_sent{0};
  std::atomic<std::uint64_t> frames_received{0};            // well-formed envelopes handed on
  std::atomic<std::uint64_t> malformed_frames{0};           // undecodable or empty
  std::atomic<std::uint64_t> oversize_frames{0};            // length prefix above the cap
};

// The one instance of this process.
NetCounters& net_counters();

// Adds one to a counter (relaxed).
inline void count(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);
}

}  // namespace saferlink
