#include "model/trace.h"

namespace memlens::model {

EventLoss Trace::events_lost() const {
  EventLoss total;
  for (const auto& [source, loss] : info.loss_by_source) total += loss;
  return total;
}

Trace::Untraced Trace::untraced(double now_s) const {
  Untraced u;
  for (const auto& p : processes.all()) {
    if (!p->untraced.any()) continue;
    ++u.processes;
    u.seconds += p->untraced.seconds(p->exited_at_s.value_or(now_s));
  }
  return u;
}

double Trace::seconds_since_start(uint64_t boot_ns) const {
  if (boot_ns < info.started_boot_ns) return 0;
  return static_cast<double>(boot_ns - info.started_boot_ns) / 1e9;
}

}  // namespace memlens::model
