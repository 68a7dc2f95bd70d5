// Attribution rules on synthetic mappings (one rule per test), and the heuristics on a real node process's
// smaps checked against what that process said about itself at the same moment.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/attribution.h"

namespace memlens::model {
namespace {

constexpr uint64_t KiB = 1024, MiB = 1024 * KiB;

proc::SmapsEntry entry(uint64_t start, uint64_t size, std::string perms, uint64_t rss, std::string path = "",
                       uint64_t inode = 0) {
  proc::SmapsEntry e;
  e.map.start = start;
  e.map.end = start + size;
  e.map.read = perms[0] == 'r';
  e.map.write = perms[1] == 'w';
  e.map.exec = perms[2] == 'x';
  e.map.shared = perms[3] == 's';
  e.map.path = std::move(path);
  e.map.inode = inode;
  e.rss = rss;
  return e;
}

Mapping mapping(uint64_t start, uint64_t size, uint64_t caller_ip,
                uint32_t flags = MAP_PRIVATE | MAP_ANONYMOUS) {
  Mapping m;
  m.start = start;
  m.end = start + size;
  m.prot = PROT_READ | PROT_WRITE;
  m.flags = flags;
  m.origin = Origin::kMmap;
  m.caller_ip = caller_ip;
  return m;
}

// A process image: node's text at 0x400000, libc's at 0x7f0000000000.
constexpr uint64_t kNodeText = 0x400000, kLibcText = 0x7f0000000000;
CodeRanges code() {
  CodeRanges c;
  c.v8_host.push_back({kNodeText, kNodeText + 32 * MiB});
  c.libc.push_back({kLibcText, kLibcText + 2 * MiB});
  return c;
}

Breakdown run(const std::vector<proc::SmapsEntry>& smaps, const AddressSpace* as = nullptr,
              std::optional<uint64_t> ab = std::nullopt, bool v8_host = true) {
  AttributionInput in;
  in.smaps = &smaps;
  in.model = as;
  in.code = code();
  in.v8_host = v8_host;
  in.array_buffer_live_bytes = ab;
  return attribute(in);
}

// V8's committed heap (heapTotal) from outside: its read-write pages resident or not, and its code space.
TEST(Attribution, JsHeapMappedCountsCommittedPagesResidentOrNot) {
  AddressSpace as;
  as.map(mapping(0x200000000, 256 * KiB, kNodeText + 0x1000));  // V8 page, half touched
  as.map(mapping(0x200100000, 256 * KiB, kNodeText + 0x1000));  // V8 page, never touched
  as.map(mapping(0x300000000, 1 * MiB, kLibcText + 0x10));      // malloc: not V8's
  std::vector<proc::SmapsEntry> s = {
      entry(0x200000000, 256 * KiB, "rw-p", 128 * KiB), entry(0x200100000, 256 * KiB, "rw-p", 0),
      entry(0x280000000, 512 * KiB, "r-xp", 64 * KiB),  // code space
      entry(0x290000000, 4 * MiB, "---p", 0),           // reserved, not committed
      entry(0x300000000, 1 * MiB, "rw-p", 1 * MiB),
  };
  auto b = run(s, &as);
  EXPECT_EQ(b[Category::js_heap], 128 * KiB);
  EXPECT_EQ(b.js_heap_mapped_bytes, 256 * KiB + 256 * KiB + 512 * KiB);
  EXPECT_EQ(b.total(), b.smaps_rss_bytes);
  // Not a V8 host: nothing is V8's.
  EXPECT_EQ(run(s, nullptr, std::nullopt, false).js_heap_mapped_bytes, 0u);
}

TEST(Attribution, KernelFactsDecideFilesCodeHeapAndStack) {
  std::vector<proc::SmapsEntry> s = {
      entry(0x400000, 4 * MiB, "r-xp", 3 * MiB, "/usr/bin/node", 7),
      entry(0x800000, 2 * MiB, "r--p", 1 * MiB, "/usr/bin/node", 7),
      entry(0x1000000, 8 * MiB, "rw-p", 5 * MiB, "[heap]"),
      entry(0x100000000, 1 * MiB, "rwxp", 256 * KiB),  // JIT
      entry(0x7ff000000000, 132 * KiB, "rw-p", 64 * KiB, "[stack]"),
      entry(0x7ff100000000, 8 * KiB, "r-xp", 4 * KiB, "[vdso]"),
  };
  auto b = run(s);
  EXPECT_EQ(b[Category::code], 3 * MiB + 256 * KiB + 4 * KiB);
  EXPECT_EQ(b[Category::file_mapped], 1 * MiB);
  EXPECT_EQ(b[Category::native_heap], 5 * MiB);
  EXPECT_EQ(b[Category::stacks], 64 * KiB);
  EXPECT_EQ(b.total(), b.smaps_rss_bytes);
  EXPECT_EQ(b.bytes_by_basis[static_cast<size_t>(Basis::kKernel)], b.total());
}

TEST(Attribution, CallerDecidesAnonymousMemoryAndMergedEntriesAreSplit) {
  // The kernel merged three adjacent anonymous mmaps into one 1 MiB entry: a V8 page (called from node's
  // text), a malloc chunk (called from libc), a thread stack (MAP_STACK, also from libc).
  uint64_t base = 0x200000000;
  AddressSpace as;
  as.map(mapping(base, 256 * KiB, kNodeText + 0x1234));
  as.map(mapping(base + 256 * KiB, 512 * KiB, kLibcText + 0x99));
  as.map(mapping(base + 768 * KiB, 256 * KiB, kLibcText + 0x42, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK));
  std::vector<proc::SmapsEntry> s = {entry(base, 1 * MiB, "rw-p", 1 * MiB)};
  auto b = run(s, &as);
  EXPECT_EQ(b[Category::js_heap], 256 * KiB);
  EXPECT_EQ(b[Category::native_heap], 512 * KiB);
  EXPECT_EQ(b[Category::stacks], 256 * KiB);
  EXPECT_EQ(b.bytes_by_basis[static_cast<size_t>(Basis::kCaller)], 1 * MiB);
}

TEST(Attribution, ResidentBytesAreSharedInProportionAndAddUp) {
  uint64_t base = 0x300000000;
  AddressSpace as;
  as.map(mapping(base, 300 * KiB, kNodeText + 1));
  as.map(mapping(base + 300 * KiB, 700 * KiB, 0x5555));  // some other library
  std::vector<proc::SmapsEntry> s = {entry(base, 1000 * KiB, "rw-p", 999 * KiB)};
  auto b = run(s, &as);
  EXPECT_EQ(b.total(), 999 * KiB);
  EXPECT_NEAR(static_cast<double>(b[Category::js_heap]), 999.0 * KiB * 0.3, 1.0);
  EXPECT_EQ(b[Category::other_anon], 999 * KiB - b[Category::js_heap]);
}

TEST(Attribution, CallerInTheMainBinaryIsNotV8WhenTheProcessIsNotNode) {
  AddressSpace as;
  as.map(mapping(0x400000000, 256 * KiB, kNodeText + 1));
  std::vector<proc::SmapsEntry> s = {entry(0x400000000, 256 * KiB, "rw-p", 256 * KiB)};
  EXPECT_EQ(run(s, &as, std::nullopt, false)[Category::other_anon], 256 * KiB);
}

TEST(Attribution, ShapeOfUntracedMappings) {
  std::vector<proc::SmapsEntry> s = {
      // A pthread stack: 4 KiB guard, 8 MiB read-write.
      entry(0x7f0010000000 - 4 * KiB, 4 * KiB, "---p", 0),
      entry(0x7f0010000000, 8 * MiB, "rw-p", 40 * KiB),
      // A malloc thread arena: 64 MiB-aligned, the rest of its 64 MiB reserved.
      entry(0x7f0020000000, 1 * MiB, "rw-p", 600 * KiB),
      entry(0x7f0020100000, 63 * MiB, "---p", 0),
      // V8 pages at 256 KiB-aligned addresses.
      entry(0x1bb18840000, 256 * KiB, "rw-p", 200 * KiB),
      entry(0x26162d80000, 512 * KiB, "rw-p", 512 * KiB),
      // Unaligned anonymous memory nobody explains.
      entry(0x7f0030001000, 300 * KiB, "rw-p", 100 * KiB),
  };
  auto b = run(s);
  EXPECT_EQ(b[Category::stacks], 40 * KiB);
  EXPECT_EQ(b[Category::native_heap], 600 * KiB);
  EXPECT_EQ(b[Category::js_heap], 712 * KiB);
  EXPECT_EQ(b[Category::other_anon], 100 * KiB);
  EXPECT_EQ(b.bytes_by_basis[static_cast<size_t>(Basis::kHeuristic)], 1352 * KiB);
  EXPECT_EQ(b.bytes_by_basis[static_cast<size_t>(Basis::kFallback)], 100 * KiB);
  // Without V8 in the process, aligned pages are not V8's.
  EXPECT_EQ(run(s, nullptr, std::nullopt, false)[Category::js_heap], 0u);
}

TEST(Attribution, ArrayBuffersAreCarvedOutOfTheNativeHeap) {
  std::vector<proc::SmapsEntry> s = {entry(0x1000000, 64 * MiB, "rw-p", 50 * MiB, "[heap]")};
  auto b = run(s, nullptr, 20 * MiB);
  EXPECT_EQ(b[Category::array_buffers], 20 * MiB);
  EXPECT_EQ(b[Category::native_heap], 30 * MiB);
  EXPECT_EQ(b.native_heap_resident_bytes, 50 * MiB);
  // Never more than the native heap holds (live bytes counted but not yet touched, or freed late).
  b = run(s, nullptr, 80 * MiB);
  EXPECT_EQ(b[Category::array_buffers], 50 * MiB);
  EXPECT_EQ(b[Category::native_heap], 0u);
  EXPECT_EQ(b.total(), 50 * MiB);
}

TEST(Attribution, ReconcileSaysWhatIsUnexplainedOrOvershoots) {
  Breakdown b;
  b[Category::js_heap] = 10 * MiB;
  b[Category::code] = 5 * MiB;
  auto r = reconcile(b, 16 * MiB);
  EXPECT_EQ(r.unexplained_bytes, 1 * MiB);
  EXPECT_EQ(r.overshoot_bytes, 0u);
  r = reconcile(b, 14 * MiB);
  EXPECT_EQ(r.unexplained_bytes, 0u);
  EXPECT_EQ(r.overshoot_bytes, 1 * MiB);
}

TEST(Attribution, CodeRangesFindLibcAndTheV8Host) {
  std::vector<proc::MapEntry> maps(4);
  maps[0] = {0x400000, 0x800000, true, false, true, false, 0, 0, 0, 7, "/usr/bin/node"};
  maps[1] = {0x7f00, 0x8f00, true, false, true, false, 0, 0, 0, 8, "/usr/lib/x86_64-linux-gnu/libc.so.6"};
  maps[2] = {0x9000, 0xa000, true, false, true, false, 0, 0, 0, 9, "/opt/n/lib/libnode.so.115"};
  maps[3] = {0xb000, 0xc000, true, false, true, false, 0, 0, 0, 10, "/usr/lib/libcrypto.so.3"};
  auto c = CodeRanges::from_maps(maps, "/usr/bin/node", true);
  EXPECT_TRUE(c.in_libc(0x7f10));
  EXPECT_TRUE(c.in_v8_host(0x400010));
  EXPECT_TRUE(c.in_v8_host(0x9010));
  EXPECT_FALSE(c.in_v8_host(0xb010));
  EXPECT_FALSE(c.in_libc(0xb010));
  auto not_node = CodeRanges::from_maps(maps, "/usr/bin/node", false);
  EXPECT_FALSE(not_node.in_v8_host(0x400010));
  EXPECT_TRUE(not_node.in_v8_host(0x9010));  // libnode.so always holds V8
  EXPECT_TRUE(looks_like_node("/usr/bin/node"));
  EXPECT_TRUE(looks_like_node("/opt/node20"));
  EXPECT_TRUE(looks_like_node("/usr/bin/nodejs (deleted)"));
  EXPECT_FALSE(looks_like_node("/usr/bin/nodemon"));
  EXPECT_FALSE(looks_like_node("/bin/sh"));
}

TEST(Attribution, LimitParsers) {
  std::string limits =
      "Limit                     Soft Limit           Hard Limit           Units     \n"
      "Max stack size            8388608              unlimited            bytes     \n"
      "Max open files            1024                 1048576              files     \n";
  EXPECT_EQ(parse_nofile_soft_limit(limits), 1024u);
  EXPECT_FALSE(
      parse_nofile_soft_limit("Max open files            unlimited            unlimited            files\n"));
}

// A node 20 process's smaps with its own process.memoryUsage() read just before and after it
// (tests/data/attribution/capture.js). No model: every anonymous mapping is judged by its shape, as
// when memlens attaches to a running process.
TEST(Attribution, HeuristicsOnARealNodeProcessMatchItsOwnFigures) {
  std::ifstream f(std::string(MEMLENS_TEST_DATA) + "/attribution/node20_smaps.json");
  ASSERT_TRUE(f) << "fixture missing";
  std::stringstream ss;
  ss << f.rdbuf();
  auto d = nlohmann::json::parse(ss.str());
  auto smaps = proc::parse_smaps(d["smaps"].get<std::string>());
  ASSERT_GT(smaps.size(), 50u);
  std::vector<proc::MapEntry> maps;
  for (const auto& e : smaps) maps.push_back(e.map);
  const auto& before = d["before"];
  const auto& after = d["after"];
  auto mid = [&](const char* k) { return (before[k].get<double>() + after[k].get<double>()) / 2; };

  AttributionInput in;
  in.smaps = &smaps;
  in.code = CodeRanges::from_maps(maps, d["exe"].get<std::string>(), true);
  in.v8_host = true;
  in.array_buffer_live_bytes = static_cast<uint64_t>(mid("arrayBuffers"));
  auto b = attribute(in);

  EXPECT_EQ(b.total(), b.smaps_rss_bytes);
  EXPECT_NEAR(static_cast<double>(b.smaps_rss_bytes), mid("rss"), 0.02 * mid("rss"));
  EXPECT_NEAR(static_cast<double>(b[Category::js_heap]), mid("heapTotal"), 0.10 * mid("heapTotal"));
  // The Buffers live in malloc memory, which holds all of them.
  EXPECT_NEAR(static_cast<double>(b[Category::array_buffers]), mid("arrayBuffers"),
              0.01 * mid("arrayBuffers"));
  EXPECT_GT(b.native_heap_resident_bytes, b[Category::array_buffers]);
  EXPECT_GT(b[Category::code], 10 * MiB);  // node's text
  EXPECT_GT(b[Category::stacks], 0u);
  // Heuristics leave little unexplained.
  EXPECT_LT(b[Category::other_anon], b.total() / 20);
}

// Which counter shows a SIGKILL to be an OOM kill: the cgroup's whenever it was read at both ends, even
// when the host's rose (another process of the host was OOM-killed); the host's only without it.
TEST(OomKillSeenBy, TheCgroupsCounterDecidesWhenItCanBeRead) {
  auto counters = [](std::optional<uint64_t> cgroup, std::optional<uint64_t> host) {
    OomCounters c;
    c.cgroup = cgroup;
    c.host = host;
    return c;
  };
  EXPECT_EQ(oom_kill_seen_by(counters(2, 7), counters(3, 8)), OomKillSeenBy::kCgroup);
  EXPECT_EQ(oom_kill_seen_by(counters(2, 7), counters(3, 7)), OomKillSeenBy::kCgroup);
  EXPECT_EQ(oom_kill_seen_by(counters(2, 7), counters(2, 9)), OomKillSeenBy::kNone) << "someone else's";
  EXPECT_EQ(oom_kill_seen_by(counters(2, 7), counters(2, 7)), OomKillSeenBy::kNone);
  EXPECT_EQ(oom_kill_seen_by(counters(std::nullopt, 7), counters(std::nullopt, 8)), OomKillSeenBy::kHost);
  EXPECT_EQ(oom_kill_seen_by(counters(2, 7), counters(std::nullopt, 8)), OomKillSeenBy::kHost)
      << "the cgroup gone with its last process";
  EXPECT_EQ(oom_kill_seen_by(counters(std::nullopt, 7), counters(std::nullopt, 7)), OomKillSeenBy::kNone);
  EXPECT_EQ(oom_kill_seen_by(counters(std::nullopt, std::nullopt), counters(1, 1)), OomKillSeenBy::kNone);
}

// The baseline moves one sample behind the readings, and never while the process is dying: a reading
// taken after the OOM killer counted a kill but before its SIGKILL showed (the kernel's order) does not
// become the baseline of the victim that is then dying, however many samples its teardown takes.
TEST(OomCounterBaseline, MovesOneSampleLateAndNeverWhileDying) {
  auto counters = [](uint64_t cgroup) {
    OomCounters c;
    c.cgroup = cgroup;
    c.host = cgroup + 10;
    return c;
  };
  int dying_asked = 0;
  bool dying = false;
  auto ask = [&] {
    ++dying_asked;
    return dying;
  };
  OomCounterBaseline b(counters(0));
  EXPECT_TRUE(b.observe(counters(0), ask));
  EXPECT_TRUE(b.observe(counters(0), ask));
  EXPECT_EQ(dying_asked, 0) << "nothing would move: no look at the process";
  EXPECT_TRUE(b.observe(counters(1), ask));  // the kill counted; no SIGKILL seen yet
  EXPECT_EQ(b.baseline(), counters(0)) << "a reading is adopted one sample late";
  dying = true;
  dying_asked = 0;
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(b.observe(counters(1), ask));
  EXPECT_EQ(dying_asked, 5);
  EXPECT_EQ(b.baseline(), counters(0));

  // Killed between two samples: the first reading with the kill already finds it dying, and its other
  // figures are kept from before (observe says so).
  OomCounterBaseline victim(counters(0));
  dying = false;
  EXPECT_TRUE(victim.observe(counters(0), ask));
  dying = true;
  EXPECT_FALSE(victim.observe(counters(1), ask));
  EXPECT_FALSE(victim.observe(counters(1), ask));
  EXPECT_EQ(victim.baseline(), counters(0));
  EXPECT_EQ(oom_kill_seen_by(b.baseline(), counters(1)), OomKillSeenBy::kCgroup);

  // Another process's kill, seen by one that lives on: adopted a sample later.
  OomCounterBaseline survivor(counters(0));
  dying = false;
  EXPECT_TRUE(survivor.observe(counters(1), ask));
  EXPECT_TRUE(survivor.observe(counters(1), ask));
  EXPECT_EQ(survivor.baseline(), counters(1));
  EXPECT_EQ(oom_kill_seen_by(survivor.baseline(), counters(1)), OomKillSeenBy::kNone);
}

}  // namespace
}  // namespace memlens::model
