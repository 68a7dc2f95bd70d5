// When one process's ArrayBuffer sampling windows open and close (docs/v8-probes.md). Pure timing: the V8
// extension attaches and detaches the window's probes as this says.
//
// While a window is open every allocation is a breakpoint trap (about 7 us here, 30 us with its stack), so
// a window ends after kWindowAllocations allocations or its time, whichever comes first: at most ~2 ms of
// traps per window in Buffer-heavy code, where a 200 ms window alone would cost almost 200 ms. 64 stacks
// every 5 s is about 770 a minute: enough to rank the sites that allocate backing stores, and the walks
// were the largest part of memlens's kernel work on the allocation benchmark at 256 (docs/benchmarks.md). Its
// end costs as much again: detaching takes the kernel 40 to 100 ms, and allocations trap until then. Windows
// that sample stacks: every 5 s. Windows that only look for the allocators of new worker threads: every
// 10 s, closed at the first allocation seen.
#pragma once

#include <cstdint>

namespace memlens::collect {

class AbWindow {
 public:
  static constexpr uint64_t kMsNs = 1000000;
  static constexpr uint32_t kWindowAllocations = 64;
  static constexpr uint64_t kStackWindowNs = 200 * kMsNs, kStackWindowPeriodNs = 5000 * kMsNs;
  static constexpr uint64_t kFindWindowNs = 100 * kMsNs, kFindWindowPeriodNs = 10000 * kMsNs;

  bool is_open() const { return open_; }
  bool samples_stacks() const { return stacks_; }
  // How long a window that samples stacks (or only finds allocators) stays open.
  static uint64_t length_ns(bool stacks) { return stacks ? kStackWindowNs : kFindWindowNs; }

  // Whether the next window is due at now (none is open).
  bool due(uint64_t now) const { return !open_ && now >= next_ns_; }
  // Whether the open window's time is over at now. Until the first allocator is found the window stays
  // open: without allocations it costs nothing.
  bool time_over(uint64_t now, bool allocators_known) const {
    return open_ && now - opened_ns_ >= length_ns(stacks_) && allocators_known;
  }

  // A window opened at now.
  void opened(uint64_t now, bool stacks) {
    open_ = true;
    stacks_ = stacks;
    opened_ns_ = now;
  }
  // Opening one failed at now: try again a finding period later.
  void failed(uint64_t now) {
    open_ = false;
    next_ns_ = now + kFindWindowPeriodNs;
  }
  // The open window closed at now: the next one a period later.
  void closed(uint64_t now) {
    open_ = false;
    next_ns_ = now + (stacks_ ? kStackWindowPeriodNs : kFindWindowPeriodNs);
  }
  // Dropped without its period (exit, exec): the next window may open at once.
  void reset() { open_ = false; }

 private:
  bool open_ = false, stacks_ = false;
  uint64_t opened_ns_ = 0, next_ns_ = 0;
};

}  // namespace memlens::collect
