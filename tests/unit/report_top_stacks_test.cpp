// The stacks a verdict names: which profile speaks for a category, which of its stacks, how one is
// written in a line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "report/top_stacks.h"

namespace memlens::report {
namespace {

using analyze::Category;
using symbolize::Frame;
using symbolize::FrameKind;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

Frame native(const std::string& fn) {
  Frame f;
  f.kind = FrameKind::kNative;
  f.function = fn;
  return f;
}

Frame js(const std::string& fn) {
  Frame f;
  f.kind = FrameKind::kJs;
  f.function = fn;
  return f;
}

// Root first, as every stack of a profile.
symbolize::Stack stack(std::vector<Frame> frames) {
  return frames;
}

TEST(TopStacks, LineStartsAtTheInnermostJsFrameAndNamesWhereItEnds) {
  auto s = stack({native("main"), js("server"), js("handler"), js("Buffer.alloc"),
                  native("node::NodeArrayBufferAllocator::Allocate"), native("calloc")});
  std::string line = render_top_stack(s, 3 * 1024 * 1024, true);
  EXPECT_EQ(line,
            "3.0 MiB  Buffer.alloc [js] \u2190 handler [js] \u2190 server [js] \u2190 main  (in calloc)");
}

TEST(TopStacks, WithoutJsFramesTheInnermostFive) {
  auto s = stack({native("a"), native("b"), native("c"), native("d"), native("e"), native("f"), native("g")});
  EXPECT_EQ(render_top_stack(s, 7, false), "7  g \u2190 f \u2190 e \u2190 d \u2190 c");
  EXPECT_EQ(render_top_stack({}, 2, false), "2  [no stack]");
}

symbolize::StackProfile profile(const std::string& kind, std::vector<symbolize::SampleType> types) {
  symbolize::StackProfile p;
  p.kind = kind;
  p.sample_types = std::move(types);
  return p;
}

TEST(TopStacks, NativeHeapTakesMmapGrowthThroughMallocOnlyByLiveBytes) {
  std::vector<symbolize::StackProfile> profiles;
  auto p = profile("mmap_growth", {{"bytes", "bytes"}, {"count", "count"}, {"live_bytes", "bytes"}});
  p.samples.push_back({stack({js("cache.set"), native("malloc"), native("mmap")}), {8 << 20, 4, 1 << 20}, 7});
  p.samples.push_back(
      {stack({js("grow"), native("v8::internal::MemoryAllocator::AllocatePage"), native("mmap")}),
       {64 << 20, 9, 64 << 20},
       7});
  p.samples.push_back({stack({js("other"), native("malloc"), native("mmap")}), {2 << 20, 1, 2 << 20}, 8});
  profiles.push_back(p);
  auto top = top_stacks_for(7, profiles)(Category::native_heap);
  ASSERT_EQ(top.size(), 1u);  // not V8's page, not another process's stack
  EXPECT_THAT(top[0], StartsWith("1.0 MiB  cache.set [js]"));
  EXPECT_THAT(top[0], HasSubstr("(in mmap)"));
}

TEST(TopStacks, SocketsAreTheFdsOpenedBySocketCalls) {
  std::vector<symbolize::StackProfile> profiles;
  auto p = profile("fd_opens", {{"fds", "count"}});
  p.samples.push_back({stack({js("connect"), native("socket")}), {40}, 3});
  p.samples.push_back({stack({js("fs.openSync"), native("open64")}), {90}, 3});
  p.samples.push_back({stack({js("server"), native("accept4")}), {5}, 3});
  profiles.push_back(p);
  auto fn = top_stacks_for(3, profiles);
  EXPECT_THAT(fn(Category::sockets),
              ElementsAre(StartsWith("40  connect [js]"), StartsWith("5  server [js]")));
  auto fds = fn(Category::fds);
  ASSERT_EQ(fds.size(), 3u);
  EXPECT_THAT(fds[0], StartsWith("90  fs.openSync [js]"));  // heaviest first
}

TEST(TopStacks, EqualStacksMergeAndTheLimitHolds) {
  std::vector<symbolize::StackProfile> profiles;
  auto p = profile("array_buffers", {{"bytes", "bytes"}, {"count", "count"}});
  for (int i = 0; i < 10; ++i)
    p.samples.push_back({stack({js("f" + std::to_string(i % 7)), native("calloc")}), {1024 * (i + 1), 1}, 1});
  profiles.push_back(p);
  auto top = top_stacks_for(1, profiles, 3)(Category::array_buffers);
  ASSERT_EQ(top.size(), 3u);
  // f2 appears twice (i = 2 and 9): 3 KB + 10 KB.
  EXPECT_THAT(top[0], StartsWith("13.0 KiB  f2 [js]"));
  EXPECT_TRUE(top_stacks_for(1, profiles)(Category::code).empty());  // no profile follows code
}

}  // namespace
}  // namespace memlens::report
