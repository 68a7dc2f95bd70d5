// The two clocks memlens reads. Boot time is the kernel's event clock (bpf_ktime_get_boot_ns, a task's
// start_boottime): every trace time is measured on it, so events and samples line up across suspends.
// The monotonic clock times memlens's own waits.
#pragma once

#include <time.h>

#include <cstdint>

namespace memlens {

inline uint64_t boot_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

inline double monotonic_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace memlens
