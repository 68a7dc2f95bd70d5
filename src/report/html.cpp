#include "report/html.h"

#include <algorithm>
#include <charconv>
#include <unordered_map>

#include "common/json_text.h"
#include "common/safe_file.h"
#include "model/stack_kinds.h"
#include "report/folded.h"
#include "report/html/report_css.h"
#include "report/html/report_js.h"

namespace memlens::report {
namespace {

// The page's stylesheet and script: src/report/html/report.{css,js}, embedded at build time.
constexpr std::string_view kCss = kReport_css;
constexpr std::string_view kScript = kReport_js;

template <typename T>
void append_number(std::string& out, T v) {
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, ec == std::errc() ? end : buf);
}

template <typename Vec>
void append_array(std::string& out, const Vec& values) {
  out.push_back('[');
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out.push_back(',');
    append_number(out, values[i]);
  }
  out.push_back(']');
}

std::string dump_json(const nlohmann::json& j) {
  // Names and paths from the traced process may hold invalid UTF-8: replace it rather than throw.
  return json_text(j);
}

struct TransparentHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

uint8_t kind_code(symbolize::FrameKind kind) {
  switch (kind) {
    case symbolize::FrameKind::kNative:
      return 0;
    case symbolize::FrameKind::kJs:
      return 1;
    case symbolize::FrameKind::kUnknown:
      return 2;
  }
  return 2;
}

}  // namespace

std::string escape_json_for_script(std::string_view json) {
  std::string out;
  out.reserve(json.size() + json.size() / 64);
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else if (c == '\xE2' && i + 2 < json.size() && json[i + 1] == '\x80' &&
               (json[i + 2] == '\xA8' || json[i + 2] == '\xA9')) {
      out += json[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string flame_graph_json(const symbolize::StackProfile& profile) {
  std::vector<symbolize::SampleType> types = profile.sample_types;
  if (types.empty()) types.push_back({"value", "count"});
  const size_t nv = types.size();

  std::vector<std::string> names;
  std::vector<uint8_t> name_kinds;
  std::unordered_map<std::string, uint32_t> name_index;
  auto intern = [&](std::string label, uint8_t kind) {
    auto [it, inserted] = name_index.try_emplace(std::move(label), static_cast<uint32_t>(names.size()));
    if (inserted) {
      names.push_back(it->first);
      name_kinds.push_back(kind);
    }
    return it->second;
  };
  const uint32_t root_name = intern("all", 2);

  // Each sample's stack as name ids, all in one array.
  const symbolize::Frame no_stack{symbolize::FrameKind::kUnknown, "[no stack]"};
  const size_t ns = profile.samples.size();
  std::vector<uint32_t> seq;
  std::vector<size_t> seq_start(ns + 1, 0);
  // The label of a frame depends only on its kind and function: look those up without building the
  // label (an allocation or three per frame) except the first time.
  std::unordered_map<std::string, uint32_t, TransparentHash, std::equal_to<>> seen[3];
  auto name_of = [&](const symbolize::Frame& frame) {
    const uint8_t kind = kind_code(frame.kind);
    auto& cache = seen[kind];
    auto it = cache.find(std::string_view(frame.function));
    if (it == cache.end()) it = cache.emplace(frame.function, intern(folded_label(frame), kind)).first;
    return it->second;
  };
  for (size_t i = 0; i < ns; ++i) {
    const symbolize::Stack& stack = profile.samples[i].stack;
    if (stack.empty()) seq.push_back(name_of(no_stack));
    for (const symbolize::Frame& frame : stack) seq.push_back(name_of(frame));
    seq_start[i + 1] = seq.size();
  }

  // Name ids become ranks in label order, so sorting the stacks lexicographically by rank puts them in
  // the preorder of a tree whose children are sorted by label. The tree is then built from the sorted
  // list alone: each stack shares its longest common prefix with the previous one. No per-node lookup
  // structure is needed, which keeps 100,000 stacks of ~1.5 million frames well under a second.
  std::vector<uint32_t> by_rank(names.size());
  for (uint32_t k = 0; k < by_rank.size(); ++k) by_rank[k] = k;
  std::sort(by_rank.begin(), by_rank.end(), [&](uint32_t a, uint32_t b) { return names[a] < names[b]; });
  std::vector<uint32_t> rank(names.size());
  for (uint32_t r = 0; r < by_rank.size(); ++r) rank[by_rank[r]] = r;
  for (uint32_t& id : seq) id = rank[id];
  std::vector<uint32_t> order(ns);
  for (uint32_t i = 0; i < ns; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return std::lexicographical_compare(seq.begin() + seq_start[a], seq.begin() + seq_start[a + 1],
                                        seq.begin() + seq_start[b], seq.begin() + seq_start[b + 1]);
  });

  std::vector<uint32_t> node_name{root_name};
  std::vector<uint32_t> node_depth{0};
  std::vector<int64_t> values(nv, 0);  // nv per node, in preorder
  std::vector<uint32_t> open{0};       // the path to the current stack's leaf, root first
  size_t distinct = 0;
  const uint32_t* prev = nullptr;
  size_t prev_len = 0;
  for (uint32_t i : order) {
    const uint32_t* cur = seq.data() + seq_start[i];
    const size_t len = seq_start[i + 1] - seq_start[i];
    size_t common = 0;
    if (prev) {
      while (common < len && common < prev_len && cur[common] == prev[common]) ++common;
    }
    if (!prev || common != len || len != prev_len) ++distinct;
    open.resize(common + 1);
    for (size_t k = common; k < len; ++k) {
      open.push_back(static_cast<uint32_t>(node_name.size()));
      node_name.push_back(by_rank[cur[k]]);
      node_depth.push_back(static_cast<uint32_t>(k + 1));
      values.resize(values.size() + nv, 0);
    }
    const std::vector<int64_t>& sv = profile.samples[i].values;
    for (uint32_t node : open) {
      for (size_t k = 0; k < nv && k < sv.size(); ++k) values[node * nv + k] += sv[k];
    }
    prev = cur;
    prev_len = len;
  }
  const size_t n = node_name.size();

  std::string out;
  out.reserve(n * (12 + 8 * nv) + 256);
  nlohmann::json head = {{"kind", profile.kind},
                         {"title", std::string(model::stack_kind_title(profile.kind))},
                         {"stacks", distinct}};
  nlohmann::json sample_types = nlohmann::json::array();
  for (const symbolize::SampleType& st : types)
    sample_types.push_back({{"type", st.type}, {"unit", st.unit}});
  head["sample_types"] = std::move(sample_types);
  std::string head_text = dump_json(head);
  head_text.pop_back();  // drop '}' to append the arrays
  out += head_text;
  out += ",\"names\":";
  out += dump_json(nlohmann::json(names));
  out += ",\"name_kind\":";
  append_array(out, name_kinds);
  std::vector<uint32_t> column(n);
  out += ",\"n\":";
  for (size_t i = 0; i < n; ++i) column[i] = node_name[i];
  append_array(out, column);
  out += ",\"d\":";
  for (size_t i = 0; i < n; ++i) column[i] = node_depth[i];
  append_array(out, column);
  out += ",\"v\":[";
  std::vector<int64_t> vcol(n);
  for (size_t k = 0; k < nv; ++k) {
    if (k) out.push_back(',');
    for (size_t i = 0; i < n; ++i) vcol[i] = values[i * nv + k];
    append_array(out, vcol);
  }
  out += "]}";
  return out;
}

std::string render_html(const nlohmann::json& report, const std::vector<symbolize::StackProfile>& profiles) {
  std::string flames = "[";
  for (size_t i = 0; i < profiles.size(); ++i) {
    if (i) flames.push_back(',');
    flames += flame_graph_json(profiles[i]);
  }
  flames.push_back(']');

  std::string page;
  page.reserve(kCss.size() + kScript.size() + flames.size() + 4096);
  page +=
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      // No network access at all: nothing may be fetched, only the inline style and script run.
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n"
      "<title>memlens report</title>\n<style>\n";
  page += kCss;
  page +=
      "</style>\n</head>\n<body>\n<noscript>This report needs JavaScript to draw its charts.</noscript>\n"
      "<div id=\"app\"></div>\n<script type=\"application/json\" id=\"memlens-report\">";
  page += escape_json_for_script(dump_json(report.is_null() ? nlohmann::json::object() : report));
  page += "</script>\n<script type=\"application/json\" id=\"memlens-flames\">";
  page += escape_json_for_script(flames);
  page += "</script>\n<script>\n";
  page += kScript;
  page += "</script>\n</body>\n</html>\n";
  return page;
}

Status write_html(const std::string& dir, const nlohmann::json& report,
                  const std::vector<symbolize::StackProfile>& profiles) {
  return write_file_atomic(dir + "/report.html", render_html(report, profiles));
}

}  // namespace memlens::report
