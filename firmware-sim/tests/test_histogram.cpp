#include "firmware-sim/histogram.hpp"

#include <doctest/doctest.h>

#include "firmware-sim/report.hpp"

#include <cmath>
#include <nlohmann/json.hpp>

using saferlink::sim::Histogram;

TEST_CASE("histogram percentiles are within 2 % of the exact ones") {
  Histogram h;
  for (int i = 1; i <= 100'000; ++i) h.record(i);  // 1..100000 us
  CHECK(h.count() == 100'000);
  CHECK(h.min() == 1);
  CHECK(h.max() == 100'000);
  auto near = [](std::int64_t got, double want) { return std::abs(static_cast<double>(got) - want) <= want * 0.02; };
  CHECK(near(h.percentile(50), 50'000));
  CHECK(near(h.percentile(90), 90'000));
  CHECK(near(h.percentile(99), 99'000));
  CHECK(near(h.percentile(99.9), 99'900));
  CHECK(h.percentile(100) == 100'000);
  // Percentiles never go below an observed value of that rank.
  CHECK(h.percentile(50) >= 50'000);
}

TEST_CASE("one slow sample shows at p99.9 and max but not at p50") {
  Histogram h;
  for (int i = 0; i < 999; ++i) h.record(2000);
  h.record(5'000'000);
  CHECK(h.percentile(50) < 2100);
  CHECK(h.percentile(99) < 2100);
  CHECK(h.percentile(100) == 5'000'000);
  CHECK(h.max() == 5'000'000);
  Histogram other;
  other.record(7);
  h.merge(other);
  CHECK(h.min() == 7);
  CHECK(h.count() == 1001);
}

TEST_CASE("an empty histogram reports zeros") {
  Histogram h;
  CHECK(h.percentile(99) == 0);
  CHECK(h.max() == 0);
}

TEST_CASE("the JSON report has sent, lost and duplicates at the top level") {
  saferlink::sim::Report r;
  r.sent = 5;
  r.lost = 1;
  r.duplicates = 2;
  r.accept_latency_us.record(1500);
  auto doc = nlohmann::json::parse(saferlink::sim::to_json(r));
  CHECK(doc["sent"] == 5);
  CHECK(doc["lost"] == 1);
  CHECK(doc["duplicates"] == 2);
  CHECK(doc["latency"]["press_to_accepted"]["count"] == 1);
  CHECK(doc["latency"]["press_to_accepted"]["p99_ms"].get<double>() == doctest::Approx(1.5).epsilon(0.02));
  CHECK(saferlink::sim::to_table(r).find("LOST 1") != std::string::npos);
}
