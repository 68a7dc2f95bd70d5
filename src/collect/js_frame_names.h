// JS function names for the kernel-side stacks of node processes that have no perf map, from V8's own
// metadata: for each process whose binary's V8 layout is understood (node/v8_frame_layout.h), the kernel
// reads the function of every JS frame while walking the stack (ml_js_procs, ml_js_frames), and the
// functions are named here from the process's heap (node/v8_functions.h) while it lives. A frame that V8's
// perf map names keeps the perf map's name.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "model/process.h"
#include "node/v8_frame_layout.h"
#include "node/v8_functions.h"
#include "proc/procfs.h"
#include "symbolize/frame.h"

namespace memlens::collect {

class BpfSession;

class JsFrameNames {
 public:
  // MEMLENS_JS_NAMES=0 in the environment turns the kernel's JS frame reads off (the names then come from
  // a perf map only): what `make bench` compares against.
  explicit JsFrameNames(BpfSession& session);

  // With the process's current maps: the first time, reads its binary's V8 layout and, when understood,
  // has the kernel read its JS frames (a note says so, or which metadata field is missing); later, keeps
  // the kernel's code ranges (the JIT's mappings) current.
  void on_maps(model::Process& p, const std::vector<proc::MapEntry>& maps);
  // Names the functions of the stacks recorded since the last scan, while their processes live. Cheap
  // when called often: scans at most every min_interval.
  void scan(std::chrono::milliseconds min_interval = std::chrono::milliseconds(200));
  // Names the JS frames of a stack (frames innermost first, as the kernel recorded them) that nothing
  // else named.
  void name(pid_t pid, int32_t stack_id, std::vector<symbolize::Frame>& frames);
  // Whether the kernel reads the JS frames of pid.
  bool reads_js_frames(pid_t pid) const {
    auto it = procs_.find(pid);
    return it != procs_.end() && it->second.names != nullptr;
  }
  // The process is gone: its note (how many functions were named) and its kernel entry.
  void forget(model::Process& p);

 private:
  using Names = std::vector<std::optional<node::JsFunctionName>>;  // per frame of a stack
  struct Proc {
    bool decided = false;
    node::ProcessV8Layout v8;
    std::unique_ptr<node::V8FunctionNames> names;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    std::unordered_map<int32_t, Names> stacks;  // named while the process lived
    // Frames that V8's perf map names too: how many, how many name the same function (name, script and
    // line), and the first that does not.
    uint64_t compared = 0, agreed = 0;
    std::string first_disagreement;
  };
  static void compare(Proc& proc, const symbolize::Frame& perf_map_frame, const node::JsFunctionName& n);
  Names resolve(Proc& proc, const uint64_t* sfi, size_t n);
  void push_layout(pid_t pid, Proc& proc);

  BpfSession& session_;
  bool enabled_ = true;
  std::map<pid_t, Proc> procs_;
  std::unordered_set<int32_t> seen_;
  std::chrono::steady_clock::time_point last_scan_{};
};

}  // namespace memlens::collect
