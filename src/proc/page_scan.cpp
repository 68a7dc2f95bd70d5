#include "proc/page_scan.h"

#include <linux/types.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <memory>

namespace memlens::proc {

namespace {

// The kernel's interface (include/uapi/linux/fs.h since Linux 6.7), defined here: the C library's kernel
// headers on the distributions memlens builds on may predate it. Fixed by the kernel's ABI.
struct PageRegion {
  __u64 start, end, categories;
};
struct PmScanArg {
  __u64 size, flags, start, end, walk_end, vec, vec_len, max_pages;
  __u64 category_inverted, category_mask, category_anyof_mask, return_mask;
};
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);
constexpr __u64 kPageIsPresent = 1u << 3, kPageIsPfnZero = 1u << 5;

}  // namespace

Result<std::vector<PresentRange>> scan_present(int pagemap_fd, uint64_t start, uint64_t end) {
  constexpr size_t kRegions = 4096;  // a call's worth; a fragmented address space takes several calls
  std::unique_ptr<PageRegion[]> regions(new PageRegion[kRegions]);
  std::vector<PresentRange> out;
  while (start < end) {
    PmScanArg a{};
    a.size = sizeof(a);
    a.start = start;
    a.end = end;
    a.vec = reinterpret_cast<uintptr_t>(regions.get());
    a.vec_len = kRegions;
    a.category_anyof_mask = kPageIsPresent;
    a.return_mask = kPageIsPresent | kPageIsPfnZero;
    long n = ::ioctl(pagemap_fd, kPagemapScan, &a);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("PAGEMAP_SCAN failed");
    }
    for (long i = 0; i < n; ++i) {
      const auto& r = regions[static_cast<size_t>(i)];
      bool zero = (r.categories & kPageIsPfnZero) != 0;
      // Adjacent runs that differ only in a category not asked for come apart: joined again.
      if (!out.empty() && out.back().end == r.start && out.back().zero_page == zero)
        out.back().end = r.end;
      else
        out.push_back({r.start, r.end, zero});
    }
    // The kernel stops early only when the regions are full; it says where.
    if (a.walk_end <= start || a.walk_end >= end) break;
    start = a.walk_end;
  }
  return out;
}

std::vector<SmapsEntry> resident_by_mapping(std::vector<MapEntry> maps,
                                            const std::vector<PresentRange>& present) {
  std::vector<SmapsEntry> out;
  out.reserve(maps.size());
  size_t r = 0;
  for (auto& m : maps) {
    SmapsEntry e;
    e.map = std::move(m);
    while (r < present.size() && present[r].end <= e.map.start) ++r;
    if (e.map.path.starts_with("/anon_hugepage")) {  // MAP_HUGETLB; a file on hugetlbfs is not told apart
      out.push_back(std::move(e));
      continue;
    }
    // A run may cross into the next mapping (the kernel joins runs across mappings): it is not consumed here.
    for (size_t k = r; k < present.size() && present[k].start < e.map.end; ++k) {
      if (present[k].zero_page) continue;
      uint64_t a = std::max(present[k].start, e.map.start), z = std::min(present[k].end, e.map.end);
      if (z > a) e.rss += z - a;
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace memlens::proc
