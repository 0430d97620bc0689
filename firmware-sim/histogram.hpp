// Histogram: latency samples in log-linear buckets (64 sub-buckets per power of two, so a
// percentile is within 1.6 % of the true value), with exact count, min, max and sum. Constant
// memory whatever the number of samples, so a swarm can record every alert of a long run.
// Plain value; not thread-safe.
#pragma once

#include <array>
#include <cstdint>

namespace saferlink::sim {

class Histogram {
 public:
  void record(std::int64_t value_us);
  void merge(const Histogram& other);

  std::uint64_t count() const { return count_; }
  std::int64_t min() const { return count_ ? min_ : 0; }
  std::int64_t max() const { return count_ ? max_ : 0; }
  double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0; }
  // The value at or below which `percentile` (0..100) of the samples lie: the upper edge of
  // the bucket holding that rank, never above max(). 0 without samples.
  std::int64_t percentile(double percentile) const;

 private:
  static constexpr int kSubBits = 6;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = (64 - kSubBits) * kSub;
  static int bucket_of(std::uint64_t value);
  static std::uint64_t upper_edge(int bucket);

  std::array<std::uint64_t, kBuckets> buckets_{};
  std::uint64_t count_ = 0;
  std::int64_t min_ = 0;
  std::int64_t max_ = 0;
  std::int64_t sum_ = 0;
};

}  // namespace saferlink::sim
