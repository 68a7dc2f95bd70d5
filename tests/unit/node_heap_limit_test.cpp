// V8's heap limit from node's flags.
#include <gtest/gtest.h>

#include "node/heap_limit.h"

namespace memlens::node {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;

TEST(HeapLimit, FromTheCommandLine) {
  EXPECT_EQ(heap_limit_from_flags({"node", "--max-old-space-size=512", "app.js"}, ""), 512 * kMiB);
  EXPECT_EQ(heap_limit_from_flags({"node", "--max_old_space_size", "2048", "app.js"}, ""), 2048 * kMiB);
  EXPECT_EQ(heap_limit_from_flags({"node", "app.js"}, ""), std::nullopt);
}

TEST(HeapLimit, OptionsOfTheScriptDoNotCount) {
  EXPECT_EQ(heap_limit_from_flags({"node", "app.js", "--max-old-space-size=64"}, ""), std::nullopt);
  EXPECT_EQ(heap_limit_from_flags({"node", "--", "--max-old-space-size=64"}, ""), std::nullopt);
}

TEST(HeapLimit, NodeOptionsAndTheCommandLineWins) {
  EXPECT_EQ(heap_limit_from_flags({"node", "app.js"}, "--enable-source-maps --max-old-space-size=300"),
            300 * kMiB);
  EXPECT_EQ(heap_limit_from_flags({"node", "--max-old-space-size=100", "app.js"}, "--max-old-space-size=300"),
            100 * kMiB);
  // The last one of several wins.
  EXPECT_EQ(heap_limit_from_flags({"node", "--max-old-space-size=1", "--max-old-space-size=7", "a.js"}, ""),
            7 * kMiB);
}

TEST(HeapLimit, MalformedValuesAreIgnored) {
  EXPECT_EQ(heap_limit_from_flags({"node", "--max-old-space-size=lots", "app.js"}, ""), std::nullopt);
  EXPECT_EQ(heap_limit_from_flags({"node", "--max-old-space-size=0", "app.js"}, ""), std::nullopt);
  EXPECT_EQ(heap_limit_from_flags({"node", "--max-old-space-size"}, ""), std::nullopt);
  EXPECT_EQ(heap_limit_from_flags({"node", "--max-old-space-size=99999999999999999999"}, ""), std::nullopt);
}

}  // namespace
}  // namespace memlens::node
