// Small helpers shared by the bench load clients (bench/saferlink_load.cpp, bench/mqtt_load.cpp):
// clocks, the process's own CPU time, /proc readings of another process, the file-descriptor
// limit, and histogram summaries as JSON. Plain functions; callable from any thread.
#pragma once

#include "bench/histogram.hpp"

#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace saferlink::bench {

// CLOCK_MONOTONIC in nanoseconds: the same clock as Python's time.monotonic_ns(), so the
// harness and the load clients can compare instants.
inline std::int64_t mono_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// User + system CPU seconds this process has used so far.
inline double self_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Resident set size of `pid` in KiB (VmRSS), 0 when unreadable.
inline std::uint64_t rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      std::uint64_t kib = 0;
      fields >> kib;
      return kib;
    }
  }
  return 0;
}

// Raises RLIMIT_NOFILE to `wanted`: the hard limit too when the process may (root), else the
// soft limit up to the hard one. Returns the soft limit in force.
inline std::uint64_t raise_fd_limit(std::uint64_t wanted) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_max < wanted) {
    rlimit raised{static_cast<rlim_t>(wanted), static_cast<rlim_t>(wanted)};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return wanted;
  }
  const rlim_t target = std::min<rlim_t>(static_cast<rlim_t>(wanted), limit.rlim_max);
  if (limit.rlim_cur < target) {
    limit.rlim_cur = target;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  return static_cast<std::uint64_t>(limit.rlim_cur);
}

// {"count", "p50_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms", "min_ms"} of a histogram of ns.
inline nlohmann::json summary(const Histogram& h) {
  auto ms = [](std::uint64_t ns) { return static_cast<double>(ns) / 1e6; };
  return nlohmann::json{{"count", h.count()},
                        {"min_ms", ms(h.min())},
                        {"p50_ms", ms(h.quantile(0.50))},
                        {"p99_ms", ms(h.quantile(0.99))},
                        {"p999_ms", ms(h.quantile(0.999))},
                        {"max_ms", ms(h.max())},
                        {"mean_ms", h.mean() / 1e6}};
}

// Measures this process's CPU over a phase: cpu_s and the share of one core it used.
class CpuMeter {
 public:
  CpuMeter() : cpu0_(self_cpu_seconds()), t0_(mono_ns()) {}
  nlohmann::json json() const {
    const double cpu = self_cpu_seconds() - cpu0_;
    const double wall = static_cast<double>(mono_ns() - t0_) / 1e9;
    return nlohmann::json{{"cpu_s", cpu}, {"wall_s", wall},
                          {"cpu_pct", wall > 0 ? 100.0 * cpu / wall : 0.0}};
  }

 private:
  double cpu0_;
  std::int64_t t0_;
};

}  // namespace saferlink::bench
