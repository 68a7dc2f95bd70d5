// Where NodeArrayBufferAllocator keeps its byte counter: decoded from Free's first instruction,
// `lock sub %rdx, DISP(%rdi)`. The decoder on hand-made encodings, then the plan of every cached official
// Node build (scripts/fetch-node.sh) against the instruction objdump shows there.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "elf/x86_decode.h"
#include "node/probe_plan.h"

namespace fs = std::filesystem;
using memlens::elf::decode_lock_sub_rdx_from_rdi;

namespace {

std::optional<uint32_t> decode(std::vector<uint8_t> b) {
  return decode_lock_sub_rdx_from_rdi(b.data(), b.size());
}

TEST(AbCounterDecoder, Disp8AsInNode18To22) {
  // f0 48 29 57 10: lock sub %rdx,0x10(%rdi), then the next instruction's bytes.
  EXPECT_EQ(decode({0xf0, 0x48, 0x29, 0x57, 0x10, 0x48, 0x8b, 0x7f, 0x18}), 0x10u);
}

TEST(AbCounterDecoder, Disp8AsInNode24) {
  EXPECT_EQ(decode({0xf0, 0x48, 0x29, 0x57, 0x08}), 0x08u);
}

TEST(AbCounterDecoder, Disp32) {
  // f0 48 29 97 00 01 00 00: lock sub %rdx,0x100(%rdi)
  EXPECT_EQ(decode({0xf0, 0x48, 0x29, 0x97, 0x00, 0x01, 0x00, 0x00}), 0x100u);
  EXPECT_EQ(decode({0xf0, 0x48, 0x29, 0x97, 0x00, 0x01, 0x00}), std::nullopt) << "truncated disp32";
}

TEST(AbCounterDecoder, RefusesOtherInstructions) {
  EXPECT_EQ(decode({0x48, 0x29, 0x57, 0x10, 0x90}), std::nullopt) << "no lock prefix";
  EXPECT_EQ(decode({0xf0, 0x48, 0x01, 0x57, 0x10}), std::nullopt) << "add, not sub";
  EXPECT_EQ(decode({0xf0, 0x48, 0x29, 0x4f, 0x10}), std::nullopt) << "rcx, not rdx";
  EXPECT_EQ(decode({0xf0, 0x48, 0x29, 0x56, 0x10}), std::nullopt) << "rsi base, not rdi";
  EXPECT_EQ(decode({0xf0, 0x4c, 0x29, 0x57, 0x10}), std::nullopt) << "REX.R: r10, not rdx";
  EXPECT_EQ(decode({0xf0, 0x49, 0x29, 0x57, 0x10}), std::nullopt) << "REX.B: r15 base, not rdi";
  EXPECT_EQ(decode({0xf0, 0x29, 0x57, 0x10, 0x90}), std::nullopt) << "32-bit operand";
  EXPECT_EQ(decode({0xf0, 0x48, 0x29, 0x57, 0xf8}), std::nullopt) << "negative displacement";
  EXPECT_EQ(decode({0xf0, 0x48, 0x29, 0xd7, 0x90}), std::nullopt) << "register operand";
  EXPECT_EQ(decode({0xf0, 0x48, 0x29, 0x57}), std::nullopt) << "truncated";
  EXPECT_EQ(decode({}), std::nullopt);
}

fs::path node_cache() {
  if (const char* c = std::getenv("MEMLENS_NODE_CACHE")) return c;
  return fs::path(MEMLENS_TEST_DATA).parent_path().parent_path() / ".cache/node";
}

// Offsets read from objdump of the official builds (docs/v8-probes.md): the planner must find the same.
TEST(AbCounterDecoder, PlansOfTheOfficialBuilds) {
  std::vector<std::pair<std::string, uint32_t>> builds = {
      {"18", 0x10}, {"20", 0x10}, {"22", 0x10}, {"24", 0x8}};
  const char* ci = std::getenv("CI");
  bool in_ci = ci && std::string(ci) == "true";
  int planned = 0;
  for (const auto& [major, offset] : builds) {
    fs::path bin = node_cache() / major / "bin/node";
    if (!fs::exists(bin)) {
      // Under CI every major of the matrix must be there (scripts/test-prepare.sh fetches them).
      if (in_ci) ADD_FAILURE() << "CI=true and no Node " << major << " build in " << node_cache();
      continue;
    }
    auto plan = memlens::node::plan_for_binary(bin.string());
    ASSERT_TRUE(plan.ok()) << plan.error().describe();
    EXPECT_EQ(plan->ab_counter_offset, offset) << "Node " << major << ": " << plan->ab_counter_skip_reason;
    ++planned;
  }
  if (planned == 0) {
    if (in_ci) FAIL() << "CI=true and no Node build in " << node_cache();
    GTEST_SKIP() << "no Node build in " << node_cache() << " (scripts/fetch-node.sh)";
  }
}

}  // namespace
