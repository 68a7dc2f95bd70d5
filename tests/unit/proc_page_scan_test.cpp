// Resident bytes by mapping through PAGEMAP_SCAN: the sharing out of present runs (pure), and the whole read
// against smaps's Rss of the same, stopped, process.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "proc/page_scan.h"
#include "proc/procfs.h"

namespace memlens::proc {
namespace {

MapEntry mapping(uint64_t start, uint64_t end) {
  MapEntry m;
  m.start = start;
  m.end = end;
  return m;
}

TEST(PageScan, RunsAreSharedOutByMappingAndTheZeroPageIsLeftOut) {
  std::vector<MapEntry> maps = {mapping(0x1000, 0x5000), mapping(0x5000, 0x8000), mapping(0xa000, 0xc000),
                                mapping(0xd000, 0xe000)};
  std::vector<PresentRange> present = {
      {0x0000, 0x2000, false},  // starts before the first mapping
      {0x3000, 0x6000, false},  // crosses from the first into the second
      {0x6000, 0x7000, true},   // the zero page: not resident memory of the process
      {0x7000, 0x9000, false},  // runs on into the hole after the second
      {0xb000, 0xc000, false},
  };
  auto e = resident_by_mapping(maps, present);
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0].map.start, 0x1000u);
  EXPECT_EQ(e[0].rss, 0x3000u);
  EXPECT_EQ(e[1].rss, 0x2000u);
  EXPECT_EQ(e[2].rss, 0x1000u);
  EXPECT_EQ(e[3].rss, 0u);
  EXPECT_EQ(resident_by_mapping(maps, {})[1].rss, 0u);
  // Huge pages of hugetlb are not in smaps's Rss, nor in the RSS.
  maps[2].path = "/anon_hugepage (deleted)";
  EXPECT_EQ(resident_by_mapping(maps, present)[2].rss, 0u);
}

// The kernels whose scan memlens uses (procfs.cpp).
bool kernel_scans_like_smaps() {
  unsigned major = 0, minor = 0;
  return std::sscanf(kernel_release().c_str(), "%u.%u", &major, &minor) == 2 &&
         (major > 6 || (major == 6 && minor >= 16));
}

// A child with anonymous pages written, read only (the zero page, and with transparent huge pages the huge
// zero page), a shared memory file half written, stops itself: both reads then see the same page tables.
TEST(ProcLive, ResidentByScanEqualsSmapsRssOfAStoppedProcess) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE)), huge = 2 << 20;
    auto* anon = static_cast<volatile char*>(
        mmap(nullptr, 96 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    auto* big = static_cast<char*>(
        mmap(nullptr, 4 * huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    int fd = memfd_create("memlens-scan-test", 0);
    if (anon == MAP_FAILED || big == MAP_FAILED || fd < 0 || ftruncate(fd, 32 * page) != 0) _exit(2);
    auto* shared =
        static_cast<volatile char*>(mmap(nullptr, 32 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    if (shared == MAP_FAILED) _exit(2);
    volatile char sink = 0;
    for (size_t i = 0; i < 96; ++i) {
      if (i % 3 == 0) anon[i * page] = 1;
      if (i % 5 == 1) sink = sink + anon[i * page];  // never written: the zero page
    }
    auto* aligned =
        reinterpret_cast<volatile char*>((reinterpret_cast<uintptr_t>(big) + huge - 1) & ~(huge - 1));
    madvise(const_cast<char*>(aligned), 2 * huge, MADV_HUGEPAGE);
    for (size_t off = 0; off < huge; off += page) sink = sink + aligned[off];  // read: the huge zero page
    for (size_t off = huge; off < 2 * huge; off += page) aligned[off] = 1;     // written: a huge page
    for (size_t i = 0; i < 32; i += 2) shared[i * page] = 1;
    raise(SIGSTOP);
    _exit(sink == 42 ? 1 : 0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, WUNTRACED), child);
  ASSERT_TRUE(WIFSTOPPED(status));
  auto scanned = read_resident(child);
  auto maps = read_maps(child);
  ASSERT_TRUE(maps) << maps.error().describe();
  auto with_maps = read_resident(child, &*maps);  // the maps the caller has just read
  auto smaps = read_smaps(child);
  kill(child, SIGKILL);
  waitpid(child, &status, 0);
  ASSERT_TRUE(scanned) << scanned.error().describe();
  ASSERT_TRUE(with_maps) << with_maps.error().describe();
  ASSERT_TRUE(smaps) << smaps.error().describe();
  ASSERT_EQ(with_maps->entries.size(), scanned->entries.size());
  for (size_t i = 0; i < scanned->entries.size(); ++i)
    EXPECT_EQ(with_maps->entries[i].rss, scanned->entries[i].rss);
  EXPECT_EQ(scanned->by_scan, kernel_scans_like_smaps()) << kernel_release();
  // Only a scan of the caller's maps may have its entries taken for those maps.
  EXPECT_FALSE(scanned->of_given_maps);
  EXPECT_EQ(with_maps->of_given_maps, with_maps->by_scan);
  ASSERT_EQ(with_maps->entries.size(), maps->size());
  for (size_t i = 0; i < maps->size(); ++i) EXPECT_EQ(with_maps->entries[i].map.start, (*maps)[i].start);
  ASSERT_EQ(scanned->entries.size(), smaps->size());
  uint64_t total = 0;
  for (size_t i = 0; i < smaps->size(); ++i) {
    const auto& a = scanned->entries[i];
    const auto& b = (*smaps)[i];
    EXPECT_EQ(a.map.start, b.map.start);
    EXPECT_EQ(a.map.end, b.map.end);
    EXPECT_EQ(a.rss, b.rss) << std::hex << b.map.start << "-" << b.map.end << " " << b.map.path;
    total += b.rss;
  }
  EXPECT_GT(total, (32u + 16u) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)));
}

}  // namespace
}  // namespace memlens::proc
