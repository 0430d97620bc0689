// Histogram: an HDR-style log-linear latency histogram for the bench load clients.
//
// Values are nanoseconds. Below 128 ns every value has its own bucket; above, each power of two
// is split into 64 buckets, so a recorded value is known to within 1/64 (1.6 %) of itself. The
// exact minimum, maximum and mean are kept besides. Recording is O(1) and allocation-free; the
// whole table is ~30 KiB. Not thread-safe: one histogram per thread (the load clients have one).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace saferlink::bench {

class Histogram {
 public:
  void record(std::uint64_t value) {
    ++counts_[index_of(value)];
    ++total_;
    sum_ += static_cast<double>(value);
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }

  void merge(const Histogram& other) {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  void reset() { *this = Histogram{}; }

  std::uint64_t count() const { return total_; }
  std::uint64_t min() const { return total_ == 0 ? 0 : min_; }
  std::uint64_t max() const { return max_; }
  double mean() const { return total_ == 0 ? 0.0 : sum_ / static_cast<double>(total_); }

  // The value at quantile q (0..1): the highest value of the bucket holding the rank, capped by
  // the exact maximum (so p100 is the true maximum).
  std::uint64_t quantile(double q) const {
    if (total_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(
        std::max(1.0, std::ceil(q * static_cast<double>(total_))));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(highest_in(i), max_);
    }
    return max_;
  }

 private:
  static constexpr unsigned kSubBits = 7;                // 128 values below the first split
  static constexpr std::uint64_t kHalf = 1u << (kSubBits - 1);  // 64 buckets per power of two
  static constexpr std::size_t kBuckets = (64 - kSubBits + 1) * kHalf + 2 * kHalf;

  static std::size_t index_of(std::uint64_t v) {
    if (v < 2 * kHalf) return static_cast<std::size_t>(v);
    const unsigned msb = 63u - static_cast<unsigned>(std::countl_zero(v));
    const unsigned shift = msb - kSubBits + 1;  // >= 1
    const std::uint64_t sub = v >> shift;       // in [64, 128)
    return static_cast<std::size_t>(shift * kHalf + sub);
  }
  static std::uint64_t highest_in(std::size_t index) {
    if (index < 2 * kHalf) return index;
    const std::uint64_t shift = (index - kHalf) / kHalf;  // inverse of index_of
    const std::uint64_t sub = index - shift * kHalf;
    return ((sub + 1) << shift) - 1;
  }

  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t total_ = 0;
  double sum_ = 0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_ = 0;
};

}  // namespace saferlink::bench
