// What the inspector module reads without a target: node's inspector options, the SIGUSR1 handler's
// owner from its symbol, the inspector's address, and V8's sampling heap profile.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <csignal>

#include "inspector/collector.h"
#include "inspector/net.h"
#include "inspector/signal_check.h"

namespace memlens::inspector {
namespace {

TEST(InspectorFlags, NodeOptionsBeforeTheScriptAndNodeOptionsEnv) {
  auto f = parse_inspector_flags({"node", "--disable-sigusr1", "app.js", "--inspect=0.0.0.0:1"}, "");
  EXPECT_TRUE(f.disable_sigusr1);
  EXPECT_TRUE(f.host.empty());  // after the script: the app's own argument
  EXPECT_FALSE(f.port.has_value());
  f = parse_inspector_flags({"node", "--inspect-port=0", "server.js"},
                            "--permission --inspect=10.0.0.5:9230");
  EXPECT_TRUE(f.permission);
  EXPECT_FALSE(f.allow_inspector);
  EXPECT_EQ(f.host, "10.0.0.5");
  EXPECT_EQ(f.port, 0);  // the command line after NODE_OPTIONS
  EXPECT_FALSE(is_loopback_host(f.host));
  f = parse_inspector_flags({"node", "--inspect-port", "9333", "-e", "1"}, "");
  EXPECT_EQ(f.port, 9333);
  EXPECT_TRUE(is_loopback_host("127.0.0.1"));
  EXPECT_TRUE(is_loopback_host("[::1]") || is_loopback_host("::1"));
}

TEST(Sigusr1Handler, OwnerFromAddressAndSymbol) {
  EXPECT_EQ(classify_handler(reinterpret_cast<uint64_t>(SIG_DFL), ""), HandlerOwner::kDefault);
  EXPECT_EQ(classify_handler(reinterpret_cast<uint64_t>(SIG_IGN), ""), HandlerOwner::kIgnored);
  EXPECT_EQ(classify_handler(0x18b68a0, "uv__signal_handler"), HandlerOwner::kAppListener);
  EXPECT_EQ(
      classify_handler(0xdfa590,
                       "node::inspector::(anonymous namespace)::StartIoThreadWakeup(int, siginfo_t*, void*)"),
      HandlerOwner::kNodeInspector);
  EXPECT_EQ(classify_handler(0x1234, ""), HandlerOwner::kUnknown);
  EXPECT_EQ(classify_handler(0x1234, "my_handler"), HandlerOwner::kUnknown);
}

// Where memlens connects for a listener's address, and how a peer's address is shown.
TEST(InspectorAddress, WildcardsAndMappedAddresses) {
  EXPECT_EQ(connect_host("0.0.0.0"), "127.0.0.1");
  EXPECT_EQ(connect_host("::"), "::1");
  EXPECT_EQ(connect_host("::ffff:127.0.0.1"), "127.0.0.1");
  EXPECT_EQ(connect_host("::1"), "::1");
  EXPECT_EQ(connect_host("127.0.0.2"), "127.0.0.2");
  EXPECT_EQ(unmapped("::ffff:10.1.2.3"), "10.1.2.3");
  EXPECT_EQ(unmapped("::ffff:1"), "::ffff:1");  // not a v4-mapped address
  EXPECT_EQ(unmapped("fe80::1"), "fe80::1");
}

TEST(SamplingProfile, SitesWithLiveBytesAndTheirStacks) {
  auto j = nlohmann::json::parse(R"js({"profile": {
    "head": {"callFrame": {"functionName": "(root)", "url": "", "lineNumber": -1, "columnNumber": -1},
             "selfSize": 0, "id": 1, "children": [
      {"callFrame": {"functionName": "handler", "url": "file:///app/server.js", "lineNumber": 9, "columnNumber": 2},
       "selfSize": 65536, "id": 2, "children": [
        {"callFrame": {"functionName": "", "url": "file:///app/cache.js", "lineNumber": 0, "columnNumber": 0},
         "selfSize": 32768, "id": 3, "children": []}]}]
}
, "samples" : [ {"size" : 65536, "nodeId" : 2, "ordinal" : 1}, {"size" : 32768, "nodeId" : 3, "ordinal" : 2} ]
}
})js");
  auto p = parse_sampling_profile(j, 12.5, 32768);
  EXPECT_EQ(p.t_s, 12.5);
  ASSERT_EQ(p.sites.size(), 2u);
  EXPECT_EQ(p.sites[0].bytes, 65536u);
  ASSERT_EQ(p.sites[0].stack.size(), 1u);
  EXPECT_EQ(p.sites[0].stack[0].function, "handler");
  EXPECT_EQ(p.sites[0].stack[0].line, 10u);  // 1-based
  ASSERT_EQ(p.sites[1].stack.size(), 2u);
  EXPECT_EQ(p.sites[1].stack[1].url, "file:///app/cache.js");
  EXPECT_GE(p.sites[0].objects, 1u);
}

}  // namespace
}  // namespace memlens::inspector
