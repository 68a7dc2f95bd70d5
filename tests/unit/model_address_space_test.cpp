// The per-process model: the address space as an interval map that follows mmap, munmap, mremap
// and brk as the kernel does (a partial unmap splits a mapping), and processes keyed by pid and start time.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/address_space.h"
#include "model/process.h"

namespace memlens::model {
namespace {

constexpr uint64_t kPage = 4096;

Mapping anon(uint64_t start, uint64_t pages, int32_t stack_id = -1) {
  Mapping m;
  m.start = start;
  m.end = start + pages * kPage;
  m.prot = PROT_READ | PROT_WRITE;
  m.flags = MAP_PRIVATE | MAP_ANONYMOUS;
  m.origin = Origin::kMmap;
  m.stack_id = stack_id;
  return m;
}

std::vector<std::pair<uint64_t, uint64_t>> ranges(const AddressSpace& as) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& m : as.mappings()) out.emplace_back(m.start, m.end);
  return out;
}

TEST(AddressSpace, PartialMunmapSplitsAMapping) {
  AddressSpace as;
  as.map(anon(0x10000, 16, 7));
  as.unmap(0x10000 + 4 * kPage, 4 * kPage);  // a hole in the middle
  using R = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(ranges(as), (R{{0x10000, 0x10000 + 4 * kPage}, {0x10000 + 8 * kPage, 0x10000 + 16 * kPage}}));
  // Both pieces keep who created them.
  for (const auto& m : as.mappings()) EXPECT_EQ(m.stack_id, 7);
  EXPECT_EQ(as.totals().anon_bytes, 12 * kPage);
  EXPECT_EQ(as.totals().count, 2u);
  EXPECT_EQ(as.find(0x10000 + 5 * kPage), nullptr);
  ASSERT_NE(as.find(0x10000 + 9 * kPage), nullptr);
  // Unmapping across both pieces and beyond removes what it covers only.
  as.unmap(0x10000 + 2 * kPage, 10 * kPage);
  EXPECT_EQ(ranges(as), (R{{0x10000, 0x10000 + 2 * kPage}, {0x10000 + 12 * kPage, 0x10000 + 16 * kPage}}));
  as.unmap(0, UINT64_MAX);  // the whole space, without overflow
  EXPECT_EQ(as.size(), 0u);
}

TEST(AddressSpace, FixedMappingReplacesWhatItOverlaps) {
  AddressSpace as;
  as.map(anon(0x20000, 8, 1));
  Mapping file;
  file.start = 0x20000 + 2 * kPage;
  file.end = file.start + 2 * kPage;
  file.anonymous = false;
  file.path = "/lib/x.so";
  file.file_offset = 0x3000;
  as.map(file);
  auto ms = as.mappings();
  ASSERT_EQ(ms.size(), 3u);
  EXPECT_EQ(ms[1].path, "/lib/x.so");
  EXPECT_EQ(ms[0].end, file.start);
  EXPECT_EQ(ms[2].start, file.end);
  EXPECT_EQ(as.totals().file_bytes, 2 * kPage);
  EXPECT_EQ(as.totals().anon_bytes, 6 * kPage);
}

TEST(AddressSpace, PartialMunmapOfAFileSplitsItKeepingFileOffsets) {
  AddressSpace as;
  Mapping lib;
  lib.start = 0x40000;
  lib.end = 0x40000 + 8 * kPage;
  lib.anonymous = false;
  lib.path = "/lib/y.so";
  lib.file_offset = 0x1000;
  lib.prot = PROT_READ;
  as.map(lib);
  as.unmap(0x40000 + 2 * kPage, 3 * kPage);
  auto ms = as.mappings();
  ASSERT_EQ(ms.size(), 2u);
  EXPECT_EQ(ms[0].end, 0x40000 + 2 * kPage);
  EXPECT_EQ(ms[1].start, 0x40000 + 5 * kPage);
  // The file offset of a piece is the offset of its own start.
  EXPECT_EQ(ms[0].file_offset, 0x1000u);
  EXPECT_EQ(ms[1].file_offset, 0x1000 + 5 * kPage);
  EXPECT_EQ(ms[1].path, "/lib/y.so");
}

TEST(AddressSpace, MremapMovesAndResizes) {
  AddressSpace as;
  as.map(anon(0x50000, 4, 3));
  as.remap(0x50000, 4 * kPage, 0x90000, 16 * kPage);
  auto ms = as.mappings();
  ASSERT_EQ(ms.size(), 1u);
  EXPECT_EQ(ms[0].start, 0x90000u);
  EXPECT_EQ(ms[0].size(), 16 * kPage);
  EXPECT_EQ(ms[0].origin, Origin::kMremap);
  EXPECT_EQ(ms[0].stack_id, 3);  // still the creator's
}

// The brk heap as /proc/PID/maps lists it.
proc::MapEntry heap_entry(uint64_t start, uint64_t pages) {
  proc::MapEntry heap;
  heap.start = start;
  heap.end = start + pages * kPage;
  heap.read = heap.write = true;
  heap.path = "[heap]";
  return heap;
}

TEST(AddressSpace, BrkGrowsAndShrinksTheHeap) {
  AddressSpace as;
  proc::MapEntry heap = heap_entry(0x600000, 33);
  as.seed({heap}, 1);
  ASSERT_EQ(as.mappings()[0].origin, Origin::kBrk);
  EXPECT_EQ(as.set_brk(heap.end + 10 * kPage, 2), 10 * kPage);
  EXPECT_EQ(as.mappings()[0].end, heap.end + 10 * kPage);
  EXPECT_EQ(as.set_brk(heap.end, 3), 0u);  // shrinking grows nothing
  EXPECT_EQ(as.mappings()[0].end, heap.end);
  EXPECT_EQ(as.set_brk(heap.start, 4), 0u);  // back to nothing: the heap is gone
  EXPECT_EQ(as.size(), 0u);
}

TEST(AddressSpace, BrkFollowsTheHeapThroughUnmapsRemapsAndSeeds) {
  AddressSpace as;
  proc::MapEntry heap = heap_entry(0x600000, 16);
  as.seed({heap}, 1);
  EXPECT_EQ(as.set_brk(heap.end + kPage, 2), kPage);  // found, then remembered
  // Its head unmapped: the rest (split off, still "[heap]") is the heap now.
  as.unmap(heap.start, 4 * kPage);
  EXPECT_EQ(as.set_brk(heap.end + 3 * kPage, 3), 2 * kPage);
  EXPECT_EQ(as.find(heap.start + 4 * kPage)->end, heap.end + 3 * kPage);
  // All of it unmapped: no heap, and a brk grows nothing.
  as.unmap(heap.start, 64 * kPage);
  EXPECT_EQ(as.set_brk(heap.end + 8 * kPage, 4), 0u);
  EXPECT_EQ(as.size(), 0u);
  // A new image's heap, from a seed: found again.
  proc::MapEntry other = heap_entry(0x900000, 2);
  as.seed({other}, 5);
  EXPECT_EQ(as.set_brk(other.end + kPage, 6), kPage);
  // Moved by mremap (its path goes with it): the brk follows it to its new place.
  as.remap(other.start, 3 * kPage, 0xa00000, 3 * kPage);
  EXPECT_EQ(as.set_brk(0xa00000 + 5 * kPage, 7), 2 * kPage);
  EXPECT_EQ(as.find(0xa00000)->end, 0xa00000 + 5 * kPage);
}

TEST(AddressSpace, TakenOutRangesAreForgottenAfterOneSampleInterval) {
  AddressSpace as;
  as.map(anon(0x20000, 8, 3));
  as.take_out(as.unmapped_in({}));
  as.on_sample();                                    // the sample of the look that took it out
  as.remap(0x20000, 8 * kPage, 0x50000, 8 * kPage);  // its event came late: the stack is still known
  EXPECT_EQ(as.find(0x50000)->stack_id, 3);
  as.map(anon(0x30000, 8, 4));
  as.take_out(as.unmapped_in({}));
  as.on_sample();
  as.on_sample();                                    // a whole interval later
  as.remap(0x30000, 8 * kPage, 0x60000, 8 * kPage);  // a mapping the model no longer knows
  EXPECT_EQ(as.find(0x60000)->stack_id, -1);
}

TEST(AddressSpace, SeedReplacesEverything) {
  AddressSpace as;
  as.map(anon(0x70000, 4));
  proc::MapEntry e;
  e.start = 0x1000;
  e.end = 0x3000;
  e.read = e.exec = true;
  e.inode = 5;
  e.path = "/bin/x";
  as.seed({e}, 9);
  auto ms = as.mappings();
  ASSERT_EQ(ms.size(), 1u);
  EXPECT_FALSE(ms[0].anonymous);
  EXPECT_EQ(ms[0].origin, Origin::kSeeded);
  EXPECT_EQ(ms[0].prot, static_cast<uint32_t>(PROT_READ | PROT_EXEC));
}

proc::MapEntry kernel_map(uint64_t start, uint64_t end) {
  proc::MapEntry e;
  e.start = start;
  e.end = end;
  e.read = e.write = true;
  return e;
}

// What /proc/PID/maps no longer has is what the process unmapped: whole mappings, parts of one, and holes
// in a range the kernel merged from several mappings; what is still there keeps its stack.
TEST(AddressSpace, UnmappedInFindsWhatTheKernelNoLongerMaps) {
  using R = std::vector<std::pair<uint64_t, uint64_t>>;
  AddressSpace as;
  as.map(anon(0x10000, 4, 1));  // still mapped, merged by the kernel with the next
  as.map(anon(0x14000, 4, 2));  // its second half gone
  as.map(anon(0x20000, 8, 3));  // gone whole
  as.map(anon(0x30000, 8, 4));  // a hole in its middle
  as.map(anon(0x40000, 2, 5));  // gone, and nothing the kernel maps after it
  std::vector<proc::MapEntry> maps = {kernel_map(0x1000, 0x2000),    // not in the model: left alone
                                      kernel_map(0x10000, 0x16000),  // covers 1 and half of 2
                                      kernel_map(0x30000, 0x32000), kernel_map(0x36000, 0x38000)};
  R gone = as.unmapped_in(maps);
  EXPECT_EQ(gone, (R{{0x16000, 0x2000}, {0x20000, 8 * kPage}, {0x32000, 0x4000}, {0x40000, 2 * kPage}}));
  for (const auto& [start, len] : gone) as.unmap(start, len);
  EXPECT_EQ(ranges(as), (R{{0x10000, 0x14000}, {0x14000, 0x16000}, {0x30000, 0x32000}, {0x36000, 0x38000}}));
  std::vector<int32_t> stacks;
  for (const auto& m : as.mappings()) stacks.push_back(m.stack_id);
  EXPECT_EQ(stacks, (std::vector<int32_t>{1, 2, 4, 4}));
  EXPECT_TRUE(as.unmapped_in(maps).empty());  // nothing more once applied
  EXPECT_EQ(as.unmapped_in({}).size(), 3u);   // nothing mapped: all of it, merged where it touches
}

// /proc is read while events are still on their way: an mremap that moved a mapping before the read has
// its event applied after the range was taken out, and the moved pages keep their stack; the brk heap,
// whose event comes before the kernel moves the break, is never taken out.
TEST(AddressSpace, TakenOutRangesStillFeedAnMremapAndTheHeapStays) {
  AddressSpace as;
  as.map(anon(0x20000, 8, 3));
  proc::MapEntry heap = kernel_map(0x800000, 0x900000);
  heap.path = "[heap]";
  as.seed({heap, kernel_map(0x20000, 0x28000)}, 1);
  as.map(anon(0x20000, 8, 3));
  std::vector<proc::MapEntry> now = {kernel_map(0x50000, 0x58000)};  // moved there, heap not grown yet
  auto gone = as.unmapped_in(now);
  using R = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(gone, (R{{0x20000, 8 * kPage}}));
  as.take_out(gone);
  as.remap(0x20000, 8 * kPage, 0x50000, 8 * kPage);
  const Mapping* moved = as.find(0x50000);
  ASSERT_NE(moved, nullptr);
  EXPECT_EQ(moved->stack_id, 3);
  EXPECT_EQ(moved->origin, Origin::kMremap);
  ASSERT_NE(as.find(0x800000), nullptr);  // the heap stays
}

TEST(Registry, APidReusedByALaterProcessIsAnotherProcess) {
  Registry r;
  Process& first = r.add({100, 5000}, 1);
  first.exited_at_s = 3.0;  // exited
  Process& second = r.add({100, 9000}, 1);
  EXPECT_NE(&first, &second);
  EXPECT_EQ(r.find_live(100), &second);
  EXPECT_EQ(r.find({100, 5000}), &first);
  EXPECT_EQ(r.all().size(), 2u);
  EXPECT_EQ(r.live().size(), 1u);
  // Adding a known key returns the same process.
  EXPECT_EQ(&r.add({100, 9000}, 1), &second);
}

TEST(ProcessKey, KernelAndProcClocksGiveTheSameKey) {
  // start_boottime in ns (the kernel) and in clock ticks (/proc/PID/stat) name the same instant.
  long hz = sysconf(_SC_CLK_TCK);
  uint64_t ticks = 8812345;
  uint64_t ns = ticks * (1000000000ull / static_cast<uint64_t>(hz)) + 123;
  EXPECT_EQ(start_time_ns_to_ticks(ns), ticks);
}

}  // namespace
}  // namespace memlens::model
