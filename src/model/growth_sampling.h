// Address-space growth stacks may be sampled (--mmap-sample-bytes): the kernel side keeps the stack of a
// call that grows the address space by n bytes with probability min(1, n / every), each call on its own.
// Weighing each sampled call by the inverse of that chance keeps the mmap_growth profile's totals unbiased
// estimates of what every call added (a Horvitz-Thompson estimator; tcmalloc weighs its sampled heap
// profile the same way): a call as large as the mean or larger is always sampled and weighs its own bytes.
#pragma once

#include <cstdint>

namespace memlens::model {

// The inverse of the chance that a call growing `bytes` had its stack; 1 when every call has its stack
// (every == 0) or the call was at least `every` bytes.
inline double growth_stack_weight(uint64_t bytes, uint32_t every) {
  if (every == 0 || bytes == 0 || bytes >= every) return 1.0;
  return static_cast<double>(every) / static_cast<double>(bytes);
}

}  // namespace memlens::model
