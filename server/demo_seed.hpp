// Demo data: a generated, realistic partnership for `./run demo` — a few hundred incident forms
// over the towns in the last 18 months, a few dozen offender profiles with a realistic skew
// (a handful of prolific offenders), and exclusion notices in every state. Deterministic for a
// given seed. Runs on the store thread (one Store job); writes through the same functions the
// hub uses, so audit rows and notice histories are real.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace SQLite {
class Database;
}

namespace saferlink::server {

struct SeedReport {
  std::size_t forms = 0;
  std::size_t profiles = 0;
  std::size_t notices = 0;
};

// Seeds only an empty store (no incident forms yet); returns what it wrote (all zero if the
// store already held forms).
SeedReport seed_demo(SQLite::Database& db, const std::vector<std::string>& towns,
                     std::int64_t now_ms, std::uint32_t seed = 2026);

}  // namespace saferlink::server
