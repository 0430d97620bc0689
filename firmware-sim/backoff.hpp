// Reconnect backoff of a handset: exponential growth with full jitter, so that ten thousand
// handsets that lost the hub at the same moment spread their reconnects instead of arriving
// together (the "thundering herd" after a hub restart).
//
// Attempt n (0 after a link that worked, counting up with each failed dial) waits a uniformly
// random time in [floor, ceiling(n)], ceiling(n) = min(cap, floor * 2^(n+1)). With the defaults
// (floor 0.5 s, cap 30 s): 0.5..1 s, 0.5..2 s, 0.5..4 s, ... 0.5..30 s from the seventh attempt.
//
// Plain value with its own random generator (seeded by the owner, so tests are repeatable);
// belongs to one handset.
#pragma once

#include <cstdint>
#include <random>

namespace saferlink::sim {

class Backoff {
 public:
  struct Limits {
    std::int64_t floor_ms = 500;
    std::int64_t cap_ms = 30'000;
  };

  Backoff(Limits limits, std::uint64_t seed) : limits_(limits), rng_(seed) {}

  // The upper bound of the delay for `attempt` (0-based).
  std::int64_t ceiling(std::uint32_t attempt) const;

  // The delay before the next dial, counting the attempt.
  std::int64_t next_delay();

  // The link worked: the next failure starts again from attempt 0.
  void reset() { attempt_ = 0; }

  std::uint32_t attempt() const { return attempt_; }
  const Limits& limits() const { return limits_; }

 private:
  Limits limits_;
  std::mt19937_64 rng_;
  std::uint32_t attempt_ = 0;
};

}  // namespace saferlink::sim
