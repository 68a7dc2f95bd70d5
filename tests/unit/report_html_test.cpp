#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>

#include "common/safe_file.h"
#include "model/stack_kinds.h"
#include "report/folded.h"
#include "report/html.h"
#include "report_fixtures.h"

namespace memlens::report {
namespace {

using fixtures::kHostileName;
using fixtures::sample_profile;
using fixtures::sample_report;
using nlohmann::json;
using symbolize::Frame;

size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1)) ++n;
  return n;
}

// The text of <script ... id="ID">...</script>.
std::string script_block(const std::string& page, const std::string& id) {
  const std::string open = "id=\"" + id + "\">";
  const size_t start = page.find(open);
  if (start == std::string::npos) return "";
  const size_t end = page.find("</script>", start);
  return page.substr(start + open.size(), end - start - open.size());
}

TEST(Html, ProcessTextNeverBecomesMarkup) {
  const std::vector<symbolize::StackProfile> profiles = {sample_profile("array_buffers", 1)};
  const std::string page = render_html(sample_report(), profiles);
  // Exactly the page's own three script elements; the hostile name's "</script>" and "<img" are escaped.
  EXPECT_EQ(count_of(page, "</script>"), 3u);
  EXPECT_EQ(count_of(page, "<img"), 0u);
  EXPECT_NE(page.find("\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e"), std::string::npos);
  // No resource is fetched: no URL-bearing attributes at all, and the policy forbids any request.
  EXPECT_EQ(count_of(page, "src="), count_of(page, "src=x")) << "only the escaped hostile text may say src=";
  EXPECT_EQ(count_of(page, "href="), 0u);
  EXPECT_NE(page.find("default-src 'none'"), std::string::npos);
}

TEST(Html, EmbeddedDataParsesBackToTheInput) {
  const json report = sample_report();
  const symbolize::StackProfile profile = sample_profile("page_faults", 2);
  const std::string page = render_html(report, {profile});
  const json back = json::parse(script_block(page, "memlens-report"));
  // The hostile string had invalid UTF-8, replaced by U+FFFD; everything else is identical.
  EXPECT_EQ(back["processes"][0]["timeline"], report["processes"][0]["timeline"]);
  EXPECT_EQ(back["processes"][0]["gc"], report["processes"][0]["gc"]);
  EXPECT_EQ(back["command"], report["command"]);
  EXPECT_EQ(back["processes"][0]["verdicts"][1]["top_stacks"][1][1].get<std::string>(),
            valid_utf8(std::string(kHostileName) + " [js]"));
  const json flames = json::parse(script_block(page, "memlens-flames"));
  ASSERT_EQ(flames.size(), 1u);
  EXPECT_EQ(flames[0]["kind"], "page_faults");
  // The page titles each flame graph from the one table of stack kinds.
  EXPECT_EQ(flames[0]["title"], std::string(memlens::model::stack_kind_title("page_faults")));
  EXPECT_NE(flames[0]["title"], "page_faults");
}

// The merged tree: every node's value is what the input's stacks through it add up to, children sum to
// no more than their parent, depths describe a preorder, and distinct stacks are counted.
TEST(Html, FlameGraphTreeMatchesTheStacks) {
  const symbolize::StackProfile profile = sample_profile("array_buffers", 4);
  const json f = json::parse(flame_graph_json(profile));
  const auto& names = f["names"];
  const auto& n = f["n"];
  const auto& d = f["d"];
  const auto& v = f["v"];
  const size_t count = n.size();
  ASSERT_EQ(d.size(), count);
  ASSERT_EQ(v.size(), 2u);
  ASSERT_EQ(v[0].size(), count);
  EXPECT_EQ(d[0], 0);
  EXPECT_EQ(v[0][0].get<int64_t>(), fixtures::total_of(profile, 0));
  EXPECT_EQ(v[1][0].get<int64_t>(), fixtures::total_of(profile, 1));

  // Ground truth from the input: value per labelled path prefix, and the set of distinct stacks.
  std::map<std::vector<std::string>, int64_t> prefix_value;
  std::set<std::vector<std::string>> distinct;
  for (const symbolize::StackSample& s : profile.samples) {
    std::vector<std::string> path;
    for (const Frame& fr : s.stack) {
      path.push_back(folded_label(fr));
      prefix_value[path] += s.values[0];
    }
    distinct.insert(path);
  }
  EXPECT_EQ(f["stacks"].get<size_t>(), distinct.size());
  ASSERT_EQ(count, prefix_value.size() + 1) << "one node per distinct prefix, plus the root";

  std::vector<std::string> path;  // labels of the open nodes at depths 1..
  std::vector<int64_t> child_sum(count, 0);
  std::vector<size_t> open{0};
  for (size_t i = 1; i < count; ++i) {
    const size_t depth = d[i].get<size_t>();
    ASSERT_GE(depth, 1u);
    ASSERT_LE(depth, open.size()) << "preorder depth jumps";
    open.resize(depth);
    path.resize(depth - 1);
    path.push_back(names[n[i].get<size_t>()].get<std::string>());
    const int64_t value = v[0][i].get<int64_t>();
    EXPECT_EQ(value, prefix_value.at(path));
    child_sum[open.back()] += value;
    open.push_back(i);
  }
  for (size_t i = 0; i < count; ++i) EXPECT_LE(child_sum[i], v[0][i].get<int64_t>());
}

TEST(Html, WritesReportHtml) {
  const std::string dir = fixtures::artifact_dir("html-write").string();
  ASSERT_TRUE(write_html(dir, json(nullptr), {}).ok());
  Result<std::string> page = read_text_file(dir + "/report.html");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(script_block(*page, "memlens-report"), "{}");
  EXPECT_EQ(script_block(*page, "memlens-flames"), "[]");
}

// Ground truth for the browser check of one fixture profile.
json flame_expectation(const symbolize::StackProfile& p, const std::string& click, const std::string& search,
                       const std::string& search_frame) {
  int64_t click_value = 0, search_value = 0;
  std::string needle = search;
  for (char& c : needle) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const symbolize::StackSample& s : p.samples) {
    bool clicked = false, matched = false;
    for (const Frame& f : s.stack) {
      std::string label = folded_label(f);
      clicked |= label == click;
      for (char& c : label) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      matched |= label.find(needle) != std::string::npos;
    }
    if (clicked) click_value += s.values[0];
    if (matched) search_value += s.values[0];
  }
  return {{"kind", p.kind},
          {"total", fixtures::total_of(p)},
          {"click", click},
          {"click_value", click_value},
          {"search", search},
          {"search_value", search_value},
          {"search_frame", search_frame}};
}

TEST(HtmlInChromium, LoadsDrawsZoomsAndSearches) {
  MEMLENS_REQUIRE_NODE_CHECKS(true);
  const std::filesystem::path dir = fixtures::artifact_dir("html");
  std::vector<symbolize::StackProfile> profiles = {
      sample_profile("mmap_growth", 1), sample_profile("page_faults", 2), sample_profile("array_buffers", 3),
      sample_profile("gc_triggers", 4), sample_profile("fd_opens", 5, 60)};
  profiles[4].sample_types = {{"count", "count"}};
  for (symbolize::StackSample& s : profiles[4].samples) s.values.resize(1);
  ASSERT_TRUE(write_html(dir.string(), sample_report(), profiles).ok());

  json flames = json::array();
  // handleUpload sits at one place in the tree (depth 5), so its zoomed value is the input's sum over the
  // stacks that contain it; "allocateraw" matches the V8 allocator leaf wherever it is.
  for (const symbolize::StackProfile& p : profiles) {
    flames.push_back(
        flame_expectation(p, "handleUpload [js]", "allocateraw", "v8::internal::Heap::AllocateRaw"));
  }
  const json expect = {
      // Process 1000: RSS by category, GC pauses, heap after GC, fds; process 1001: RSS (anon/file).
      {"charts_min", 5},
      {"flames", flames},
      {"texts",
       {"JS heap leak suspected", "+0.72 MiB/min", "Heap used after GC rose from 24 MiB to 69 MiB",
        "Native heap stable", "node server.js --port 8080", "</script><img src=x onerror=alert(1)>",
        "RSS by category", "Events lost: 3 (malformed 3)", "Untraced processes: 1", "not held (--no-hold)",
        "the binary has no USDT notes", std::string(memlens::model::stack_kind_title("gc_triggers"))}},
      {"absent_selectors", {"img", "script[src]", "iframe"}},
      {"load_limit_ms", 30000},
  };
  const std::string expect_file = (dir / "expect.json").string();
  ASSERT_TRUE(write_file_atomic(expect_file, expect.dump(2)).ok());
  fixtures::CommandResult r = fixtures::run_node_check(
      "check-html.js", {(dir / "report.html").string(), expect_file, (dir / "report.png").string()});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("check-html: OK"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir / "report.png"));
}

TEST(HtmlInChromium, EmptyReportDegradesGracefully) {
  MEMLENS_REQUIRE_NODE_CHECKS(true);
  const std::filesystem::path dir = fixtures::artifact_dir("html-empty");
  // A report from a trace that produced almost nothing: no processes' details, no stacks.
  const json report = {{"schema_version", 1}, {"attached_pid", 77}, {"processes", {{{"pid", 77}}}}};
  ASSERT_TRUE(write_html(dir.string(), report, {}).ok());
  const json expect = {
      {"charts_min", 0},
      {"flames", json::array()},
      {"texts", {"attached to pid 77", "No verdicts", "No stacks were recorded", "No timeline"}}};
  const std::string expect_file = (dir / "expect.json").string();
  ASSERT_TRUE(write_file_atomic(expect_file, expect.dump()).ok());
  fixtures::CommandResult r = fixtures::run_node_check(
      "check-html.js", {(dir / "report.html").string(), expect_file, (dir / "report.png").string()});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// 100,000 distinct stacks: rendered by the C++ side and drawn by the page within a generous bound; the
// times are printed.
TEST(HtmlInChromium, HundredThousandDistinctStacks) {
  MEMLENS_REQUIRE_NODE_CHECKS(true);
  const std::filesystem::path dir = fixtures::artifact_dir("html-large");
  const symbolize::StackProfile big = fixtures::large_profile("page_faults");
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(write_html(dir.string(), sample_report(), {big}).ok());
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("render_html + write, 100000 distinct stacks: %.0f ms, %.1f MB\n", ms,
              std::filesystem::file_size(dir / "report.html") / 1e6);
  // Zoom on the most common first frame: the input's own figures decide the expected values.
  std::map<std::string, int64_t> first_frame;
  for (const symbolize::StackSample& s : big.samples) first_frame[folded_label(s.stack[0])] += s.values[0];
  const auto top = std::max_element(first_frame.begin(), first_frame.end(),
                                    [](const auto& a, const auto& b) { return a.second < b.second; });
  json f = {{"kind", big.kind},
            {"total", fixtures::total_of(big)},
            {"click", top->first},
            {"click_value", top->second}};
  const json expect = {{"charts_min", 1}, {"flames", {f}}, {"load_limit_ms", 60000}};
  const std::string expect_file = (dir / "expect.json").string();
  ASSERT_TRUE(write_file_atomic(expect_file, expect.dump()).ok());
  fixtures::CommandResult r = fixtures::run_node_check(
      "check-html.js", {(dir / "report.html").string(), expect_file, (dir / "report.png").string()});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
}  // namespace memlens::report
