// The V8 columns and the verdict column of `memlens top`: V8's GC probes (collect/v8_gc_probes.h, nothing
// else) on each Node process the view shows, at most a bounded number of them, and the history the verdict
// is judged on (RSS at each refresh, heap used after each GC). Where each column comes from: docs/top.md.
#pragma once

#include <sys/types.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "analyze/after_gc.h"
#include "analyze/trend.h"
#include "collect/v8_gc_probes.h"
#include "host/top_view.h"

namespace memlens::cli {

struct TopV8Cells {
  std::string heap_used = "-", heap_committed = "-", array_buffers = "-", native = "-", code = "-",
              gc_share = "-", verdict = "-";
};

class TopV8Columns {
 public:
  // max_processes: at most this many processes get probes (0: none; the V8 columns then show `-`).
  explicit TopV8Columns(uint32_t max_processes);
  // After each refresh of the view: probes attached to the processes it shows that have none yet (up to the
  // bound), detached from those gone; the GCs since the last call taken.
  void update(const std::vector<host::TopRow>& rows);
  TopV8Cells cells(const host::TopRow& row) const;
  // One header line: how many processes are probed, which are not and why, GC events lost.
  std::string header() const;

 private:
  struct PerProcess {
    uint64_t start_time_ticks = 0;
    bool probed = false;
    std::string why_not;  // when not probed
    std::optional<uint64_t> heap_used_after_gc;
    std::optional<uint64_t> heap_committed;  // V8's, at its last GC (or heap statistics call)
    std::optional<uint64_t> array_buffers;   // the allocator's counter, read at each refresh
    std::optional<uint64_t> code;            // anonymous executable resident memory, at each refresh
    std::optional<double> gc_share;          // of the last interval, 0..1
    std::deque<analyze::SeriesPoint> rss;
    std::deque<analyze::GcPoint> gcs;
  };
  uint32_t max_;
  std::unique_ptr<collect::V8GcProbes> probes_;
  std::string unavailable_;  // why no process can be probed
  std::map<pid_t, PerProcess> procs_;
  double boot0_s_ = 0, last_s_ = 0;
};

}  // namespace memlens::cli
