// The pages of a process that are resident, by mapping, through the kernel's PAGEMAP_SCAN ioctl on
// /proc/PID/pagemap (Linux 6.7; memlens uses it from 6.16, procfs.cpp says why): the Rss that
// /proc/PID/smaps gives each mapping, for a fifth to a quarter of its cost. smaps walks the same page
// tables but also works out, page by page, the proportional, shared and referenced figures, and prints two
// dozen lines a mapping; memlens uses only the Rss.
#pragma once

#include <cstdint>
#include <vector>

#include "common/result.h"
#include "proc/procfs.h"

namespace memlens::proc {

// A run of present pages; zero_page: mapped to the kernel's shared zero page (read, never written), which
// smaps does not count.
struct PresentRange {
  uint64_t start = 0, end = 0;
  bool zero_page = false;
};

// The present runs of [start, end) in the address space pagemap_fd (an open /proc/PID/pagemap) belongs
// to, in address order. An error with errno ENOTTY or EINVAL: the kernel has no PAGEMAP_SCAN (before 6.7).
Result<std::vector<PresentRange>> scan_present(int pagemap_fd, uint64_t start, uint64_t end);

// Each mapping of maps (in address order, as /proc/PID/maps lists them) with its resident bytes: the
// present runs inside it, the zero page left out; none for an anonymous hugetlb mapping, whose pages smaps
// and the RSS count apart (its *_Hugetlb lines). Only map and rss are set.
std::vector<SmapsEntry> resident_by_mapping(std::vector<MapEntry> maps,
                                            const std::vector<PresentRange>& present);

}  // namespace memlens::proc
