#include "firmware-sim/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace saferlink::sim {

// Values below kSub are their own bucket. Above, a value with its highest bit at position p
// (p >= kSubBits) falls in group p - kSubBits + 1, sub-bucket = the kSubBits bits after the
// highest bit.
int Histogram::bucket_of(std::uint64_t value) {
  if (value < static_cast<std::uint64_t>(kSub)) return static_cast<int>(value);
  const int p = 63 - std::countl_zero(value);
  const int group = p - kSubBits + 1;
  const auto sub = static_cast<int>((value >> (p - kSubBits)) & (kSub - 1));
  return std::min(group * kSub + sub, kBuckets - 1);
}

std::uint64_t Histogram::upper_edge(int bucket) {
  if (bucket < kSub) return static_cast<std::uint64_t>(bucket);
  const int group = bucket / kSub;
  const auto sub = static_cast<std::uint64_t>(bucket % kSub);
  const int p = group + kSubBits - 1;
  const std::uint64_t base = (std::uint64_t{1} << p) | (sub << (p - kSubBits));
  return base + (std::uint64_t{1} << (p - kSubBits)) - 1;
}

void Histogram::record(std::int64_t value_us) {
  const std::int64_t v = std::max<std::int64_t>(value_us, 0);
  ++buckets_[static_cast<std::size_t>(bucket_of(static_cast<std::uint64_t>(v)))];
  if (count_ == 0 || v < min_) min_ = v;
  if (count_ == 0 || v > max_) max_ = v;
  ++count_;
  sum_ += v;
}

void Histogram::merge(const Histogram& other) {
  if (other.count_ == 0) return;
  for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  if (count_ == 0 || other.min_ < min_) min_ = other.min_;
  if (count_ == 0 || other.max_ > max_) max_ = other.max_;
  count_ += other.count_;
  sum_ += other.sum_;
}

std::int64_t Histogram::percentile(double percentile) const {
  if (count_ == 0) return 0;
  const double p = std::clamp(percentile, 0.0, 100.0);
  // The rank (1-based) of the sample at this percentile.
  auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += buckets_[static_cast<std::size_t>(b)];
    if (seen >= rank) {
      const auto edge = static_cast<std::int64_t>(upper_edge(b));
      return std::clamp(edge, min_, max_);
    }
  }
  return max_;
}

}  // namespace saferlink::sim
