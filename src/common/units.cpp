#include "common/units.h"

#include <fmt/format.h>

#include <cmath>

namespace memlens {

std::string format_bytes(double bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  double a = std::fabs(bytes);
  const char* sign = bytes < 0 ? "-" : "";
  if (!(a >= 1024)) return fmt::format("{}{:.0f} B", sign, a);
  size_t u = 0;
  a /= 1024;
  while (a >= 1024 && u + 1 < std::size(kUnits)) {
    a /= 1024;
    ++u;
  }
  return fmt::format("{}{:.1f} {}", sign, a, kUnits[u]);
}

std::string format_signed_bytes(double bytes) {
  return (bytes < 0 ? "-" : "+") + format_bytes(std::fabs(bytes));
}

}  // namespace memlens
