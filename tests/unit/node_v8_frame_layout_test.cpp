// V8's frame layout read from a binary's postmortem metadata, and the code ranges the kernel checks a
// frame's pc against.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "elf/elf_file.h"
#include "node/v8_frame_layout.h"

namespace memlens::node {
namespace {

proc::MapEntry mapping(uint64_t start, uint64_t end, bool exec, std::string path = "", uint64_t inode = 0) {
  proc::MapEntry m;
  m.start = start;
  m.end = end;
  m.read = true;
  m.exec = exec;
  m.path = std::move(path);
  m.inode = inode;
  return m;
}

bool covered(const std::vector<std::pair<uint64_t, uint64_t>>& ranges, uint64_t start, uint64_t end) {
  return std::any_of(ranges.begin(), ranges.end(),
                     [&](const auto& r) { return r.first <= start && end <= r.second; });
}

TEST(V8CodeRanges, MergeToTheBoundAndCoverTheBuiltinsAndEveryJitMapping) {
  ProcessV8Layout v8;
  v8.layout = V8FrameLayout{};
  v8.layout->builtins_vaddr = 0x1800000;
  v8.layout->builtins_size = 0x200000;
  v8.load_bias = 0x10000;
  std::vector<proc::MapEntry> maps = {mapping(0x400000, 0x3000000, true, "/usr/bin/node", 7)};
  // Anonymous executable mappings (JIT code) with gaps of growing size, some touching, and anonymous data
  // and file mappings between them.
  uint64_t at = 0x7f0000000000;
  for (int i = 0; i < 20; ++i) {
    uint64_t size = 0x1000ull << (i % 5);
    maps.push_back(mapping(at, at + size, true));
    at += size + (i % 3 == 0 ? 0 : (0x1000ull << i));
    maps.push_back(mapping(at, at + 0x1000, false));
    at += 0x1000;
  }
  maps.push_back(mapping(at + 0x100000, at + 0x200000, true, "/usr/lib/libc.so.6", 9));
  std::sort(maps.begin(), maps.end(), [](const auto& a, const auto& b) { return a.start < b.start; });

  for (size_t bound : {size_t{1}, size_t{3}, size_t{8}, size_t{64}}) {
    SCOPED_TRACE(bound);
    auto ranges = v8_code_ranges(v8, maps, bound);
    ASSERT_FALSE(ranges.empty());
    EXPECT_LE(ranges.size(), bound);
    for (size_t i = 0; i < ranges.size(); ++i) {
      EXPECT_LT(ranges[i].first, ranges[i].second);
      if (i > 0) EXPECT_LT(ranges[i - 1].second, ranges[i].first) << "sorted, apart";
    }
    uint64_t builtins = v8.layout->builtins_vaddr + v8.load_bias;
    EXPECT_TRUE(covered(ranges, builtins, builtins + v8.layout->builtins_size));
    for (const auto& m : maps)
      if (m.exec && m.path.empty()) EXPECT_TRUE(covered(ranges, m.start, m.end)) << std::hex << m.start;
    if (bound >= 64) {  // room for every range: file mappings stay out
      for (const auto& m : maps)
        if (!m.path.empty() && m.path != "/usr/bin/node") EXPECT_FALSE(covered(ranges, m.start, m.end));
    }
  }
}

TEST(V8CodeRanges, NoneWithoutALayout) {
  ProcessV8Layout v8;
  EXPECT_TRUE(v8_code_ranges(v8, {mapping(0x1000, 0x2000, true)}, 8).empty());
}

// The node on this host (Node 20 in the test environment): its metadata is understood and its builtins'
// span holds the interpreter's entry.
TEST(V8FrameLayout, NodeOnThisHostIsUnderstood) {
  const char* node = "/usr/bin/node";
  if (access(node, R_OK) != 0) {
    // CI installs node (scripts/install-deps.sh): there its absence is a failure, not a skip.
    const char* ci = getenv("CI");
    if (ci && std::string(ci) == "true") FAIL() << "CI=true and " << node << " is not there";
    GTEST_SKIP() << node << " is not there";
  }
  auto elf = elf::ElfFile::open_path(node);
  ASSERT_TRUE(elf.ok()) << elf.error().describe();
  auto layout = read_v8_frame_layout(**elf);
  ASSERT_TRUE(layout.ok()) << layout.error().describe();
  EXPECT_LT(layout->off_fp_function, 0);
  EXPECT_LT(layout->off_fp_context, 0);
  EXPECT_NE(layout->off_fp_function, layout->off_fp_context);
  EXPECT_NE(layout->type_shared_function_info, layout->type_scope_info);
  ASSERT_TRUE(layout->builtins_from_symbols);
  auto entry = (*elf)->find_symbol("Builtins_InterpreterEntryTrampoline");
  ASSERT_TRUE(entry);
  EXPECT_GE(entry->address, layout->builtins_vaddr);
  EXPECT_LT(entry->address, layout->builtins_vaddr + layout->builtins_size);
}

TEST(V8FrameLayout, ABinaryWithoutV8MetadataSaysSo) {
  auto elf = elf::ElfFile::open_path(std::filesystem::read_symlink("/proc/self/exe").string());  // this test
  ASSERT_TRUE(elf.ok()) << elf.error().describe();
  auto layout = read_v8_frame_layout(**elf);
  ASSERT_FALSE(layout.ok());
  EXPECT_NE(layout.error().message.find("v8dbg_"), std::string::npos) << layout.error().message;
}

}  // namespace
}  // namespace memlens::node
