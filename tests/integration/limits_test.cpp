// Time to the memory limit: a node leaking Buffers in a memory cgroup with a limit (on its own cgroup, or
// on the parent of its cgroup). The report's seconds_to_limit must agree with the limit the test set, with
// the cgroup's whole usage as the kernel counts it, and with the rate the report's own samples show.
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <thread>

#include "support/cgroup_support.h"
#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Least-squares slope of rss_bytes over the last half of the timeline, in bytes/s.
double rss_rate(const json& timeline) {
  size_t from = timeline.size() / 2;
  double n = 0, st = 0, sv = 0, stt = 0, stv = 0;
  for (size_t i = from; i < timeline.size(); ++i) {
    double t = timeline[i]["t_s"].get<double>(), v = timeline[i]["rss_bytes"].get<double>();
    n += 1;
    st += t;
    sv += v;
    stt += t * t;
    stv += t * v;
  }
  return (n * stv - st * sv) / (n * stt - st * st);
}

class TimeToLimit : public ::testing::TestWithParam<bool> {};

TEST_P(TimeToLimit, AgreesWithTheLimitTheUsageAndTheMeasuredRate) {
  MEMLENS_REQUIRE_TRACING();
  const bool on_parent = GetParam();
  const uint64_t limit = 768ull << 20;
  TempDir dir;
  LimitedCgroup cgroup("memlens-limit-test-" + std::to_string(getpid()), limit, on_parent);
  // 2 MiB of Buffers every 250 ms: 8 MiB/s, about 60 s from the limit when the trace ends.
  std::string command =
      "echo $$ > " + cgroup.dir() + "/cgroup.procs && exec " + shell_quote(node_bin()) + " -e " +
      shell_quote("const a = []; setInterval(() => a.push(Buffer.alloc(2 << 20, 1)), 250);");
  Child node = Child::spawn({"sh", "-c", command}, dir.path(), "node");
  std::this_thread::sleep_for(2s);
  Child m = Child::spawn({memlens_bin(), "attach", std::to_string(node.pid()), "--interval", "0.5",
                          "--no-stacks", "--duration", "30", "-o", dir.file("out")},
                         dir.path(), "m");
  ASSERT_EQ(m.wait(120s), 0) << m.stderr_text();
  // The kernel's figure right after the trace: the report's was read at its last sample, moments before.
  uint64_t usage_after = cgroup.usage_bytes();
  node.signal(SIGKILL);
  node.wait(10s);

  json report = load_report(dir.file("out"));
  ASSERT_TRUE(report.is_object()) << m.stderr_text();
  auto p = report_process(report, node.pid());
  ASSERT_TRUE(p);
  const json* verdict = nullptr;
  for (const auto& v : (*p)["verdicts"])
    if (v["category"] == "array_buffers") verdict = &v;
  ASSERT_NE(verdict, nullptr) << (*p)["verdicts"].dump(1);
  ASSERT_EQ((*verdict)["kind"], "leak_suspected") << verdict->dump(1);
  ASSERT_TRUE(verdict->contains("seconds_to_limit")) << verdict->dump(1);
  const json& l = (*verdict)["limit"];
  // The limit the test set, on the cgroup that holds it (the parent, in the parent variant).
  EXPECT_EQ(l["kind"], "cgroup");
  EXPECT_EQ(l["value"].get<double>(), static_cast<double>(limit));
  EXPECT_EQ(l["where"], std::string(cgroup.v1() ? "cgroup v1 " : "cgroup v2 ") + cgroup.limited_path());

  // The whole cgroup's usage at the last sample: below the kernel's figure read after the trace, by no
  // more than what the leak adds in the few seconds between them (the report is written in between).
  double rate = rss_rate((*p)["timeline"]);
  ASSERT_GT(rate, 4.0 * (1 << 20)) << "the leak runs at about 8 MiB/s";
  double used = l["used"].get<double>();
  EXPECT_LE(used, static_cast<double>(usage_after) + (8 << 20));
  EXPECT_GE(used, static_cast<double>(usage_after) - 10 * rate - (8 << 20))
      << "usage after the trace " << usage_after;

  // seconds_to_limit = (limit - usage at the end) / measured rate, within 25%: the report's rate is a
  // Theil-Sen fit of live Buffer bytes (with what grows beside them), the test's a least-squares fit of
  // RSS over the second half.
  double expected = (static_cast<double>(limit) - used) / rate;
  double got = (*verdict)["seconds_to_limit"].get<double>();
  std::cout << "limit " << limit << " used " << used << " (kernel after the trace " << usage_after
            << ") rate " << rate << " B/s: seconds_to_limit " << got << ", expected " << expected << "\n";
  EXPECT_TRUE(within("seconds_to_limit", got, expected, 0.25)) << verdict->dump(1);
  EXPECT_TRUE(within("seconds_to_limit with the kernel's usage", got,
                     (static_cast<double>(limit) - static_cast<double>(usage_after)) / rate, 0.35));

  // The summary leads with it.
  std::string err = m.stderr_text();
  auto summary = err.find("memlens summary");
  ASSERT_NE(summary, std::string::npos) << err;
  auto lead = err.find("at this rate the 768.0 MiB memory limit of cgroup", summary);
  ASSERT_NE(lead, std::string::npos) << err.substr(summary);
  EXPECT_LT(lead, err.find("leak suspected", summary)) << err.substr(summary);
  std::string lead_line = err.substr(lead, err.find('\n', lead) - lead);
  EXPECT_NE(lead_line.find("(array_buffers +"), std::string::npos) << lead_line;

  // report.html says it too, in headless Chromium.
  if (std::string why = checkers_missing(); !why.empty()) {
    if (in_ci()) FAIL() << "CI=true and " << why;
    std::cout << "report.html not checked: " << why << "\n";
    return;
  }
  json expect = {{"charts_min", 1},
                 {"flames", json::array()},
                 {"texts", {"Limit in ~", "memory limit of " + l["where"].get<std::string>()}},
                 {"load_limit_ms", 60000}};
  std::ofstream(dir.file("expect.json")) << expect.dump(2);
  auto html =
      run_shell("node " + shell_quote(source_dir() + "/tests/html/check-html.js") + " " +
                shell_quote(dir.file("out") + "/report.html") + " " + shell_quote(dir.file("expect.json")));
  EXPECT_EQ(html.exit_code, 0) << html.output;
  EXPECT_NE(html.output.find("check-html: OK"), std::string::npos) << html.output;
}

INSTANTIATE_TEST_SUITE_P(Cgroups, TimeToLimit, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return std::string(info.param ? "LimitOnParent" : "LimitOnOwnCgroup");
                         });

}  // namespace
}  // namespace memlens::testing
