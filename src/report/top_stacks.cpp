#include "report/top_stacks.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string_view>

#include "common/units.h"

namespace memlens::report {

using analyze::Category;

namespace {

constexpr size_t kCallers = 4;       // callers shown after the innermost JS frame
constexpr size_t kNativeFrames = 5;  // frames shown when a stack has no JS frame

bool passes_through_malloc(const symbolize::Stack& stack) {
  for (const auto& f : stack) {
    std::string_view fn = f.function;
    if (fn.find("malloc") != std::string_view::npos || fn == "calloc" || fn == "__libc_calloc" ||
        fn == "realloc" || fn == "__libc_realloc" || fn == "new_heap" || fn.starts_with("operator new"))
      return true;
  }
  return false;
}

// The innermost frame is the libc function the probe sat on (socket, accept4, ...).
bool opens_a_socket(const symbolize::Stack& stack) {
  if (stack.empty()) return false;
  std::string_view fn = stack.back().function;
  return fn == "socket" || fn == "__socket" || fn == "accept" || fn == "__libc_accept" || fn == "accept4" ||
         fn == "socketpair" || fn == "__socketpair";
}

bool has_js_frame(const symbolize::Stack& stack) {
  return std::any_of(stack.begin(), stack.end(),
                     [](const symbolize::Frame& f) { return f.kind == symbolize::FrameKind::kJs; });
}

bool wanted(Category c, const symbolize::Stack& stack, bool js_only) {
  if (js_only && !has_js_frame(stack)) return false;
  if (c == Category::native_heap) return passes_through_malloc(stack);
  if (c == Category::sockets) return opens_a_socket(stack);
  return true;
}

}  // namespace

TopStackSource top_stack_source(Category c, bool has_fault_stacks) {
  switch (c) {
    case Category::js_heap:
      return {model::stack_kind::kGcTriggers, 1};
    case Category::array_buffers:
      return {model::stack_kind::kArrayBuffers, 0};
    case Category::native_heap:
      return {model::stack_kind::kMmapGrowth, 2};  // live bytes; bytes mapped when nothing is live
    case Category::rss:
    case Category::other_anon:
      if (!has_fault_stacks) return {model::stack_kind::kMmapGrowth, 2};
      return {model::stack_kind::kPageFaults, 0};
    case Category::fds:
    case Category::sockets:
      return {model::stack_kind::kFdOpens, 0};
    case Category::code:
    case Category::stacks:
    case Category::file_mapped:
      break;
  }
  return {};
}

std::string render_top_stack(const symbolize::Stack& stack, int64_t value, bool bytes) {
  std::string weight = bytes ? format_bytes(static_cast<double>(value)) : fmt::format("{}", value);
  if (stack.empty()) return weight + "  [no stack]";
  // Root first: the innermost frame is the last.
  size_t innermost_js = stack.size();
  for (size_t i = stack.size(); i-- > 0;)
    if (stack[i].kind == symbolize::FrameKind::kJs) {
      innermost_js = i;
      break;
    }
  std::string text = weight + " ";
  if (innermost_js == stack.size()) {
    for (size_t n = 0; n < kNativeFrames && n < stack.size(); ++n)
      text += (n ? " \u2190 " : " ") + stack[stack.size() - 1 - n].label();
    return text;
  }
  for (size_t n = 0; n <= kCallers && n <= innermost_js; ++n)
    text += (n ? " \u2190 " : " ") + stack[innermost_js - n].label();
  if (innermost_js + 1 < stack.size()) text += "  (in " + stack.back().label() + ")";
  return text;
}

TopStacksFn top_stacks_for(int pid, const std::vector<symbolize::StackProfile>& profiles, size_t limit) {
  return [pid, &profiles, limit](Category c) {
    std::vector<std::string> out;
    bool has_fault_stacks =
        std::any_of(profiles.begin(), profiles.end(), [&](const symbolize::StackProfile& p) {
          return p.kind == model::stack_kind::kPageFaults &&
                 std::any_of(p.samples.begin(), p.samples.end(), [&](const auto& s) { return s.pid == pid; });
        });
    TopStackSource src = top_stack_source(c, has_fault_stacks);
    if (src.kind.empty()) return out;
    auto prof = std::find_if(profiles.begin(), profiles.end(),
                             [&](const symbolize::StackProfile& p) { return p.kind == src.kind; });
    if (prof == profiles.end() || src.value_index >= prof->sample_types.size()) return out;
    bool bytes = prof->sample_types[src.value_index].unit == "bytes";
    auto value_of = [&](const symbolize::StackSample& s, size_t i) {
      return i < s.values.size() ? s.values[i] : 0;
    };
    // A GC that V8 ran from a task (idle, incremental marking) has the event loop for a stack: of the GC
    // triggers, those JS code caused say which code allocates. All of them when none did.
    bool js_only = false;
    if (c == Category::js_heap)
      for (const auto& s : prof->samples)
        if (s.pid == pid && has_js_frame(s.stack)) js_only = true;
    // mmap_growth by live bytes when anything is still mapped, else by bytes mapped over the trace.
    size_t index = src.value_index;
    if (src.kind == model::stack_kind::kMmapGrowth) {
      bool any_live = false;
      for (const auto& s : prof->samples)
        if (s.pid == pid && wanted(c, s.stack, js_only) && value_of(s, 2) > 0) any_live = true;
      if (!any_live) index = 0;
    }
    std::map<std::string, std::pair<int64_t, const symbolize::Stack*>> merged;  // key: the frames' labels
    for (const auto& s : prof->samples) {
      if (s.pid != pid || !wanted(c, s.stack, js_only)) continue;
      int64_t v = value_of(s, index);
      if (v <= 0) continue;
      std::string key;
      for (const auto& f : s.stack) key += f.label() + '\n';
      auto& m = merged[key];
      m.first += v;
      m.second = &s.stack;
    }
    std::vector<std::pair<int64_t, const symbolize::Stack*>> ranked;
    for (const auto& [key, m] : merged) ranked.push_back(m);
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t i = 0; i < ranked.size() && i < limit; ++i)
      out.push_back(render_top_stack(*ranked[i].second, ranked[i].first, bytes));
    return out;
  };
}

}  // namespace memlens::report
