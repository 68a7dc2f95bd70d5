// `memlens record` then `memlens report`, on a machine that no longer has what the trace read: a node copied
// into a scratch directory, started with V8's perf map, is recorded; then the node copy and its perf map
// are moved away, and the report of the capture must give the same folded and pprof files as the live
// trace wrote (record --report-dir), JS frames still named from the perf map that is gone.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Record, ReportWithoutTheBinariesOrPerfMapsGivesTheLiveProfiles) {
  MEMLENS_REQUIRE_TRACING();
  REQUIRE_NODE(cached, "22");
  TempDir dir;
  fs::path bin = fs::path(dir.path()) / "bin";
  fs::create_directories(bin);
  fs::copy_file(cached, bin / "node");
  fs::permissions(bin / "node", fs::perms::owner_all);
  std::string capture = dir.file("trace.mlcap"), live = dir.file("live");
  Child c = Child::spawn(
      {memlens_bin(), "record", "-q", "--no-fds", "--interval", "0.5", "-o", capture, "--report-dir", live,
       "--", (bin / "node").string(), "--perf-basic-prof", scenario("stacks_buffers"), "--duration", "3"},
      dir.path(), "memlens");
  auto rc = c.wait(120s);
  ASSERT_EQ(rc, 0) << c.stderr_text();
  auto report = load_report(live);
  ASSERT_FALSE(report["processes"].empty());
  int pid = report["processes"][0]["pid"];
  fs::path perf_map = "/tmp/perf-" + std::to_string(pid) + ".map";
  ASSERT_TRUE(fs::exists(perf_map)) << "node wrote no perf map: the test proves nothing without one";
  ASSERT_NE(slurp(perf_map).find("allocateReportBuffers"), std::string::npos);

  // Away with what a live trace reads: the binary and the perf map.
  fs::rename(bin, fs::path(dir.path()) / "moved-bin");
  fs::rename(perf_map, dir.file("moved-perf.map"));
  ASSERT_FALSE(fs::exists(bin / "node"));

  std::string replay = dir.file("replay");
  Child r = Child::spawn({memlens_bin(), "report", capture, "-o", replay}, dir.path(), "report");
  ASSERT_EQ(r.wait(60s), 0) << r.stderr_text();
  int profiles = 0;
  for (const auto& e : fs::directory_iterator(live)) {
    std::string name = e.path().filename();
    if (!name.ends_with(".folded") && !name.ends_with(".pb.gz")) continue;
    SCOPED_TRACE(name);
    ++profiles;
    ASSERT_TRUE(fs::exists(fs::path(replay) / name));
    EXPECT_TRUE(slurp(e.path()) == slurp(fs::path(replay) / name)) << "the replay's file differs";
  }
  EXPECT_GE(profiles, 4) << "array_buffers, page_faults, mmap_growth, gc_triggers: folded and pprof each";
  // The JS function's name came from the perf map that is gone.
  EXPECT_NE(slurp(fs::path(replay) / "page_faults.folded").find("allocateReportBuffers"), std::string::npos);
  EXPECT_TRUE(slurp(fs::path(live) / "report.json") == slurp(fs::path(replay) / "report.json"));
}

}  // namespace
}  // namespace memlens::testing
