#include "collect/js_frame_names.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "collect/bpf_session.h"

namespace memlens::collect {

namespace {

// A perf map entry's name as V8 writes it: "JS:<tier mark><function> <script>:<line>:<column>" (older V8:
// "LazyCompile:", "Function:", "Script:" ...; the tier mark one of ~ ^ + *; an empty function name for
// anonymous functions).
std::optional<node::JsFunctionName> parse_perf_map_name(std::string_view s) {
  auto colon = s.find(':');
  auto space = s.find(' ');
  if (colon == std::string_view::npos || space == std::string_view::npos || colon > space)
    return std::nullopt;
  std::string_view fn = s.substr(colon + 1, space - colon - 1);
  if (!fn.empty() && std::string_view("~^+*").find(fn.front()) != std::string_view::npos) fn.remove_prefix(1);
  std::string_view rest = s.substr(space + 1);
  node::JsFunctionName n;
  n.function = fn.empty() ? "(anonymous)" : std::string(fn);
  // script:line:column (older V8: script:line): the trailing numbers, the first of them the line.
  std::vector<uint32_t> numbers;
  while (numbers.size() < 2) {
    auto c = rest.rfind(':');
    if (c == std::string_view::npos || c + 1 == rest.size()) break;
    std::string_view digits = rest.substr(c + 1);
    if (!std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) break;
    uint32_t v = 0;
    for (char ch : digits) v = v * 10 + static_cast<uint32_t>(ch - '0');
    numbers.insert(numbers.begin(), v);
    rest = rest.substr(0, c);
  }
  n.script = std::string(rest);
  if (!numbers.empty()) n.line = numbers.front();
  return n;
}

}  // namespace

void JsFrameNames::compare(Proc& proc, const symbolize::Frame& frame, const node::JsFunctionName& n) {
  auto pm = parse_perf_map_name(frame.function);
  if (!pm) return;
  ++proc.compared;
  bool same = pm->function == n.function && pm->script == n.script && (n.line == 0 || pm->line == n.line);
  if (same)
    ++proc.agreed;
  else if (proc.first_disagreement.empty())
    proc.first_disagreement = fmt::format("perf map \"{}\", V8 metadata \"{}\"", frame.function, n.label());
}

JsFrameNames::JsFrameNames(BpfSession& session) : session_(session) {
  const char* env = getenv("MEMLENS_JS_NAMES");
  enabled_ = !(env && std::string_view(env) == "0");
}

void JsFrameNames::push_layout(pid_t pid, Proc& proc) {
  ml_js_proc k{};
  k.off_fp_function = proc.v8.layout->off_fp_function;
  k.off_fp_context = proc.v8.layout->off_fp_context;
  k.off_function_shared = proc.v8.layout->function_shared;
  k.n_ranges = static_cast<__u32>(proc.ranges.size());
  for (size_t i = 0; i < proc.ranges.size() && i < ML_JS_CODE_RANGES; ++i) {
    k.ranges[i].start = proc.ranges[i].first;
    k.ranges[i].end = proc.ranges[i].second;
  }
  (void)session_.set_js_layout(pid, k);
}

void JsFrameNames::on_maps(model::Process& p, const std::vector<proc::MapEntry>& maps) {
  if (!enabled_) return;
  Proc& proc = procs_[p.pid()];
  if (!proc.decided) {
    proc.v8 = node::v8_layout_for_process(p.pid(), maps);
    bool some_binary = !proc.v8.binary.empty();
    if (!proc.v8.layout && !some_binary) return;  // its image is not mapped yet: decided at a later read
    proc.decided = true;
    if (!proc.v8.layout) {
      bool node_like = p.comm.find("node") != std::string::npos ||
                       proc.v8.error.find("carries no V8") == std::string::npos;
      if (node_like)
        p.notes.push_back(
            fmt::format("JS frames are not named from V8 metadata ({}: {}); they keep their addresses",
                        proc.v8.binary, proc.v8.error));
      return;
    }
    proc.names = std::make_unique<node::V8FunctionNames>(p.pid(), *proc.v8.layout);
  }
  if (!proc.names) return;
  auto ranges = node::v8_code_ranges(proc.v8, maps, ML_JS_CODE_RANGES);
  if (ranges == proc.ranges) return;
  proc.ranges = std::move(ranges);
  push_layout(p.pid(), proc);
}

JsFrameNames::Names JsFrameNames::resolve(Proc& proc, const uint64_t* sfi, size_t n) {
  Names out(n);
  for (size_t i = 0; i < n; ++i)
    if (sfi[i] != 0) out[i] = proc.names->resolve(sfi[i]);
  return out;
}

void JsFrameNames::scan(std::chrono::milliseconds min_interval) {
  bool any =
      std::any_of(procs_.begin(), procs_.end(), [](const auto& e) { return e.second.names != nullptr; });
  if (!any) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_scan_ < min_interval) return;
  last_scan_ = now;
  for (auto& [pid, proc] : procs_)
    if (proc.names) proc.names->begin_batch();
  for (const auto& [stack_id, frames] : session_.new_js_stacks(seen_)) {
    auto it = procs_.find(static_cast<pid_t>(frames.pid));
    if (it == procs_.end() || !it->second.names) continue;
    it->second.stacks[stack_id] =
        resolve(it->second, reinterpret_cast<const uint64_t*>(frames.sfi), ML_MAX_STACK_DEPTH);
  }
  for (auto& [pid, proc] : procs_)
    if (proc.names) proc.names->end_batch();
}

void JsFrameNames::name(pid_t pid, int32_t stack_id, std::vector<symbolize::Frame>& frames) {
  auto it = procs_.find(pid);
  if (it == procs_.end() || !it->second.names) return;
  Proc& proc = it->second;
  auto named = proc.stacks.find(stack_id);
  if (named == proc.stacks.end()) {
    // Not seen by a scan: recorded since, or by another process first. Read now (from the cache once the
    // process is gone).
    std::vector<uint64_t> sfi = session_.js_frames(stack_id);
    if (sfi.empty()) return;
    named = proc.stacks.emplace(stack_id, resolve(proc, sfi.data(), sfi.size())).first;
  }
  for (size_t i = 0; i < frames.size() && i < named->second.size(); ++i) {
    const auto& n = named->second[i];
    if (!n) continue;
    if (frames[i].kind == symbolize::FrameKind::kJs) {  // a perf map's name wins
      compare(proc, frames[i], *n);
      continue;
    }
    frames[i].kind = symbolize::FrameKind::kJs;
    frames[i].function = n->label();
    frames[i].module = "[v8-metadata]";
    frames[i].build_id.clear();
    frames[i].file_offset = 0;
    frames[i].symbol_offset = 0;
  }
}

void JsFrameNames::forget(model::Process& p) {
  auto it = procs_.find(p.pid());
  if (it == procs_.end()) return;
  if (it->second.names) {
    const auto& st = it->second.names->stats();
    const Proc& proc = it->second;
    std::string note =
        fmt::format("JS frames named from V8 metadata of {}: {} functions", proc.v8.binary, st.resolved);
    if (st.not_function) note += fmt::format("; {} frame reads were not a function", st.not_function);
    if (proc.compared)
      note += fmt::format(
          "; of {} frames the perf map names too, {} agree{}", proc.compared, proc.agreed,
          proc.first_disagreement.empty() ? "" : " (first that does not: " + proc.first_disagreement + ")");
    if (uint64_t full = session_.read_losses()[ML_LOSS_JS_FRAMES]; full > 0)
      note += fmt::format(
          "; {} stacks (of every process) were kept without their JS frames' functions: the "
          "kernel's table was full",
          full);
    p.notes.push_back(note);
    session_.clear_js_layout(p.pid());
  }
  procs_.erase(it);
}

}  // namespace memlens::collect
