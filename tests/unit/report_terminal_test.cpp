// The summary's loss lines: events lost by cause and untraced processes, in the report's words, never
// added together.
#include <gtest/gtest.h>

#include "report/terminal.h"

namespace memlens::report {
namespace {

using nlohmann::json;

json report_with(const json& loss, const json& processes, const json& holds = json::object()) {
  return {{"duration_s", 3.0}, {"stop_reason", "command exited"}, {"events_received", 120},
          {"loss", loss},      {"processes", processes},          {"holds", holds}};
}

TEST(Summary, LostEventsNameTheirCauses) {
  json loss = {{"events_lost", 5},
               {"events_lost_by_cause", {{"ring_full", 4}, {"map_full", 0}, {"malformed", 1}}},
               {"stacks_lost", 2},
               {"untraced_processes", 0},
               {"untraced_s", 0}};
  json procs = json::array({{{"pid", 7},
                             {"comm", "storm"},
                             {"loss", {{"events_lost", 4}, {"events_lost_by_cause", {{"ring_full", 4}}}}}}});
  std::string out = render_summary(report_with(loss, procs, {{"processes", 3}, {"max_s", 0.0021}}), {});
  EXPECT_NE(out.find("events: 120 received, 5 lost (malformed=1 ring_full=4); 2 stacks not recorded"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("events lost: 4 (ring_full=4)"), std::string::npos) << out;  // the process's share
  EXPECT_NE(out.find("untraced processes: none (3 held until their probes were attached, longest 2.1 ms)"),
            std::string::npos)
      << out;
}

TEST(Summary, UntracedProcessesAreListedApartWithTheirReasons) {
  json loss = {{"events_lost", 0},
               {"events_lost_by_cause", {{"ring_full", 0}}},
               {"untraced_processes", 1},
               {"untraced_s", 0.4}};
  json procs = json::array(
      {{{"pid", 8}, {"comm", "bash"}, {"loss", {{"untraced_s", 0}, {"untraced_reason", nullptr}}}},
       {{"pid", 9},
        {"comm", "static"},
        {"loss", {{"untraced_s", 0.4}, {"untraced_reason", "statically linked: no C library to probe"}}}}});
  std::string out = render_summary(report_with(loss, procs), {});
  EXPECT_NE(out.find("events: 120 received, 0 lost\n"), std::string::npos) << out;
  EXPECT_NE(out.find("untraced processes: 1, 0.400 s untraced in all"), std::string::npos) << out;
  EXPECT_NE(out.find("pid 9 static: 0.400 s: statically linked: no C library to probe"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("pid 8 bash: "), std::string::npos) << out;
}

json growing(const std::string& category, double rate, double seconds, const json& limit) {
  return {{"kind", "leak_suspected"},       {"category", category},        {"rate_per_s", rate},
          {"headline", category + " leak"}, {"seconds_to_limit", seconds}, {"limit", limit}};
}

TEST(Summary, LeadsWithTheSoonestLimitOfAnyProcess) {
  const double MiB = 1024.0 * 1024;
  json cgroup = {{"kind", "cgroup"},      {"value", 512 * MiB},        {"used", 272 * MiB},
                 {"rate_per_s", 1 * MiB}, {"where", "cgroup v1 /svc"}, {"growing", {"js_heap"}}};
  json host = {{"kind", "host"},        {"value", 8192 * MiB}, {"used", 4096 * MiB},
               {"rate_per_s", 1 * MiB}, {"where", "host"},     {"growing", {"native_heap"}}};
  json rss = cgroup;
  rss["growing"] = {"rss"};
  json procs = json::array(
      {{{"pid", 7}, {"comm", "a"}, {"verdicts", {growing("native_heap", 1 * MiB, 4096, host)}}},
       {{"pid", 8},
        {"comm", "b"},
        // RSS, the total, reaches the limit as soon (sooner, by its noise): the category names what grows.
        {"verdicts", {growing("js_heap", 1 * MiB, 240, cgroup), growing("rss", 1.01 * MiB, 238, rss)}}}});
  json loss = {{"events_lost", 0}, {"untraced_processes", 0}};
  std::string out = render_summary(report_with(loss, procs), {});
  auto lead = out.find(
      "  ! at this rate the 512.0 MiB memory limit of cgroup v1 /svc is reached in ~4 min (js_heap +60.0 "
      "MiB/min)\n");
  ASSERT_NE(lead, std::string::npos) << out;
  EXPECT_LT(lead, out.find("js_heap leak")) << out;
  EXPECT_EQ(out.find("host's"), std::string::npos) << out;  // only the soonest leads
}

TEST(Summary, HostWideDiscoveryListsTheMissedProcesses) {
  json loss = {{"events_lost", 0}, {"untraced_processes", 0}, {"missed_processes", 1}};
  json report = report_with(loss, json::array());
  report["discovery"] = {{"source", "kernel process events"},
                         {"node_started", 3},
                         {"overruns", 0},
                         {"missed",
                          {{{"pid", 42},
                            {"exe", "/usr/bin/node"},
                            {"started_at_s", 1.5},
                            {"reason", "ended within 3 ms of its exec"}}}}};
  std::string out = render_summary(report, {});
  EXPECT_NE(
      out.find("Node processes started meanwhile: 3 (found by kernel process events), 1 never traced\n"),
      std::string::npos)
      << out;
  EXPECT_NE(out.find("    pid 42 /usr/bin/node: ended within 3 ms of its exec\n"), std::string::npos) << out;
}

TEST(Summary, AReportWithoutLossFiguresStillRenders) {
  std::string out = render_summary(json{{"processes", json::array()}}, {});
  EXPECT_NE(out.find("events: 0 received, 0 lost"), std::string::npos) << out;
  EXPECT_NE(out.find("untraced processes: none"), std::string::npos) << out;
}

}  // namespace
}  // namespace memlens::report
