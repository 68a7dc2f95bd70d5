// Fuzzes the /proc/PID/maps parser (paths in it are chosen by the traced process) and normalization.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proc/procfs.h"
#include "symbolize/symbolizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  memlens::proc::ParseStats stats;
  auto maps = memlens::proc::parse_maps(text, &stats);
  std::sort(maps.begin(), maps.end(), [](const auto& a, const auto& b) { return a.start < b.start; });
  for (const auto& m : maps) {
    for (uint64_t a : {m.start, m.end - 1, m.end, m.start + m.size() / 2}) {
      auto n = memlens::symbolize::normalize(maps, a);
      if (n.map_index >= static_cast<int>(maps.size())) __builtin_trap();
    }
  }
  return 0;
}
