#include "model/trace.h"

namespace memlens::model {

uint64_t Trace::total_loss() const {
  uint64_t n = 0;
  for (const auto& [stage, count] : info.loss) n += count;
  return n;
}

double Trace::seconds_since_start(uint64_t boot_ns) const {
  if (boot_ns < info.started_boot_ns) return 0;
  return static_cast<double>(boot_ns - info.started_boot_ns) / 1e9;
}

}  // namespace memlens::model
