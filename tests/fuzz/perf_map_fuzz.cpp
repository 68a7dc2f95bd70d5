// Fuzzes the perf map parser (a file the traced process writes) and the /proc/PID/status identity parser.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "symbolize/perf_map.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  memlens::symbolize::PerfMap map;
  // Split at an input-chosen point to exercise the partial-line path of incremental reading.
  size_t split = size ? data[0] % (size + 1) : 0;
  size_t used = map.parse(text.substr(0, split), false);
  map.parse(text.substr(used), true);
  for (size_t i = 0; i + 8 <= size && i < 64; i += 8) {
    uint64_t a = 0;
    for (size_t k = 0; k < 8; ++k) a = (a << 8) | data[i + k];
    if (auto hit = map.lookup(a)) {
      if (a < hit->start || a - hit->start >= hit->size) __builtin_trap();
    }
  }
  // The streaming parser, in chunks of an input-chosen size, must keep exactly the whole parse's entries.
  memlens::symbolize::PerfMap whole, fed;
  whole.parse(text, false);
  size_t chunk = size > 1 ? 1 + data[1] % 64 : 1;
  for (size_t pos = 0; pos < size; pos += chunk) fed.feed(text.substr(pos, chunk));
  if (fed.size() != whole.size() || fed.stats().malformed != whole.stats().malformed ||
      fed.stats().too_long != whole.stats().too_long)
    __builtin_trap();
  (void)memlens::symbolize::parse_process_identity(text, 1);
  return 0;
}
