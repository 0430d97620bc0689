#include "core/metrics.hpp"

namespace saferlink {

NetCounters& net_counters() {
  static NetCounters counters;
  return counters;
}

}  // namespace saferlink
