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

TEST(Summary, AReportWithoutLossFiguresStillRenders) {
  std::string out = render_summary(json{{"processes", json::array()}}, {});
  EXPECT_NE(out.find("events: 0 received, 0 lost"), std::string::npos) << out;
  EXPECT_NE(out.find("untraced processes: none"), std::string::npos) << out;
}

}  // namespace
}  // namespace memlens::report
