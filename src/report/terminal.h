// What memlens prints on the terminal: one compact live line per tracked process each interval while
// tracing, and the summary at the end. Both go to stderr, so the traced command's stdout stays its own.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/units.h"
#include "model/trace.h"

namespace memlens::report {

class LiveView {
 public:
  explicit LiveView(FILE* out);
  void update(const model::Trace& trace);
  void clear();  // erase the live lines before the summary

 private:
  FILE* out_;
  bool tty_;
  size_t lines_drawn_ = 0;
  std::set<model::ProcessKey> announced_oom_;
};

// "pid N comm: killed by the OOM killer at T s (cgroup v1 /a, limit L); array_buffers grew most, ..."
// from a report's "oom_kill" object.
std::string oom_kill_line(uint64_t pid, const std::string& comm, const nlohmann::json& kill);

// The end-of-trace summary, from the finished report JSON (so it shows what the report says).
std::string render_summary(const nlohmann::json& report, const std::vector<std::string>& files_written);

}  // namespace memlens::report
