#include "firmware-sim/backoff.hpp"

#include <algorithm>

namespace saferlink::sim {

std::int64_t Backoff::ceiling(std::uint32_t attempt) const {
  std::int64_t ceiling = limits_.floor_ms;
  // Doubling past the cap is pointless (and would overflow for large attempts).
  for (std::uint32_t i = 0; i <= attempt && ceiling < limits_.cap_ms; ++i) ceiling *= 2;
  return std::clamp(ceiling, limits_.floor_ms, std::max(limits_.floor_ms, limits_.cap_ms));
}

std::int64_t Backoff::next_delay() {
  std::uniform_int_distribution<std::int64_t> pick(limits_.floor_ms, ceiling(attempt_));
  if (attempt_ < 64) ++attempt_;
  return pick(rng_);
}

}  // namespace saferlink::sim
