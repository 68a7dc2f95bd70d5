// Fixtures shared by the report writer tests: synthetic but realistic stack profiles (a node process with
// native, JS and unnamed frames across several modules and pids), a report JSON with every section, and
// running the Node checkers under tests/html.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "symbolize/stack_profile.h"

namespace memlens::report::fixtures {

using symbolize::Frame;
using symbolize::FrameKind;

struct Module {
  const char* path;
  const char* build_id;
  uint64_t base;  // load address in pid 1000; other pids are shifted (ASLR)
};
inline const Module kModules[] = {
    {"/usr/bin/node", "3f2a9c1e5b7d4e8f90a1b2c3d4e5f60718293a4b", 0x555555554000},
    {"/lib/x86_64-linux-gnu/libc.so.6", "c047672cae7964324658491e7dee26748ae5d2f8", 0x7ffff7c00000},
    {"[perf-map]", "", 0x3c0000000000},
    {"[anon]", "", 0},
};

// A frame of function `name` in module `m` of process `pid`; its address is stable per (name, module, pid).
inline Frame make_frame(FrameKind kind, const std::string& name, int m, int pid) {
  Frame f;
  f.kind = kind;
  f.function = name;
  f.module = kModules[m].path;
  f.build_id = kModules[m].build_id;
  const uint64_t offset = 0x1000 + (std::hash<std::string>{}(name) % 0x400000) * 16;
  f.file_offset = offset;
  f.address = kModules[m].base + offset + (pid - 1000) * 0x10000000ull;
  if (kind == FrameKind::kUnknown) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(f.address));
    f.function = hex;
  }
  f.symbol_offset = kind == FrameKind::kUnknown ? 0 : 0x10;
  return f;
}

// A profile of Buffer allocations by a small server: stacks share a native prefix, then a JS entry point
// (unique position in the tree), a few JS and native frames, and an allocator leaf. Includes hostile
// names (markup, ';', a newline, invalid UTF-8) and duplicate stacks.
inline const std::vector<std::string> kEntryPoints = {"handleUpload", "handleDownload", "renderPage",
                                                      "onTimer"};
inline const char* kHostileName = "</script><img src=x onerror=alert(1)>;\nevil\xff\xfe";

inline symbolize::StackProfile sample_profile(const std::string& kind, unsigned seed, int nsamples = 400) {
  symbolize::StackProfile p;
  p.kind = kind;
  p.sample_types = {{"bytes", "bytes"}, {"count", "count"}};
  p.time_ns = 1767225600123456789;
  p.duration_ns = 61'500'000'000;
  std::mt19937 rng(seed);
  const std::vector<std::string> middle_js = {"parseBody", "Buffer.concat", "JSON.stringify",
                                              "compress",  "readChunk",     "cacheResult"};
  const std::vector<std::string> middle_native = {"node::Buffer::New", "v8::ArrayBuffer::New",
                                                  "node::fs::Read", "uv__io_poll"};
  const std::vector<std::string> leaves = {"v8::internal::Heap::AllocateRaw", "malloc", "mmap",
                                           "v8::internal::BackingStore::Allocate"};
  for (int i = 0; i < nsamples; ++i) {
    const int pid = (rng() % 4 == 0) ? 1001 : 1000;
    symbolize::StackSample s;
    s.pid = pid;
    s.stack.push_back(make_frame(FrameKind::kNative, "_start", 0, pid));
    s.stack.push_back(make_frame(FrameKind::kNative, "__libc_start_main", 1, pid));
    s.stack.push_back(make_frame(FrameKind::kNative, "node::Start", 0, pid));
    s.stack.push_back(make_frame(FrameKind::kNative, "uv_run", 0, pid));
    s.stack.push_back(make_frame(FrameKind::kJs, kEntryPoints[rng() % kEntryPoints.size()], 2, pid));
    const int depth = 1 + rng() % 4;
    for (int d = 0; d < depth; ++d) {
      if (rng() % 3) {
        s.stack.push_back(make_frame(FrameKind::kJs, middle_js[rng() % middle_js.size()], 2, pid));
      } else {
        s.stack.push_back(
            make_frame(FrameKind::kNative, middle_native[rng() % middle_native.size()], 0, pid));
      }
    }
    if (rng() % 10 == 0) s.stack.push_back(make_frame(FrameKind::kUnknown, "", 3, pid));
    if (i % 50 == 7) s.stack.push_back(make_frame(FrameKind::kJs, kHostileName, 2, pid));
    s.stack.push_back(make_frame(FrameKind::kNative, leaves[rng() % leaves.size()], rng() % 2, pid));
    const int64_t count = 1 + rng() % 20;
    s.values = {count * int64_t(4096 + rng() % (1 << 20)), count};
    p.samples.push_back(s);
    if (i % 40 == 0) p.samples.push_back(s);  // an equal stack seen again
  }
  return p;
}

// 100,000 distinct stacks shaped like a real program's: at each level a frame picks among a few callees
// chosen by its own name, so prefixes are shared; names come from a pool of 3,000 functions.
inline symbolize::StackProfile large_profile(const std::string& kind, int distinct = 100000) {
  symbolize::StackProfile p;
  p.kind = kind;
  p.sample_types = {{"bytes", "bytes"}};
  std::vector<std::string> pool;
  for (int i = 0; i < 3000; ++i) {
    pool.push_back(i % 3 ? "ns" + std::to_string(i % 17) + "::Class" + std::to_string(i) + "::method"
                         : "jsFunction" + std::to_string(i));
  }
  std::mt19937 rng(42);
  std::set<std::vector<int>> seen;
  while (static_cast<int>(seen.size()) < distinct) {
    std::vector<int> path;
    int cur = 0;
    const int depth = 6 + rng() % 20;
    for (int d = 0; d < depth; ++d) {
      cur = static_cast<int>((cur * 7919 + 1 + rng() % 5) % pool.size());
      path.push_back(cur);
    }
    if (!seen.insert(path).second) continue;
    symbolize::StackSample s;
    s.pid = 1000;
    for (int id : path) {
      s.stack.push_back(
          make_frame(id % 3 ? FrameKind::kNative : FrameKind::kJs, pool[id], id % 3 ? 0 : 2, 1000));
    }
    s.values = {int64_t(1 + rng() % 100000)};
    p.samples.push_back(std::move(s));
  }
  return p;
}

// A report with every section the page reads: one process with categories, GC, fds and verdicts, one
// with only the anon/file split (the page's fallback), loss counts and skipped probes.
inline nlohmann::json sample_report() {
  using nlohmann::json;
  json timeline = json::array(), timeline2 = json::array(), events = json::array();
  for (int i = 0; i <= 60; ++i) {
    const int64_t mib = 1 << 20;
    json s = {{"t_s", i},
              {"js_heap_bytes", (40 + i) * mib},
              {"array_buffers_bytes", (10 + (i % 20)) * mib},
              {"native_heap_bytes", 30 * mib + i * mib / 4},
              {"code_bytes", 12 * mib},
              {"stacks_bytes", 2 * mib},
              {"file_mapped_bytes", 45 * mib},
              {"other_anon_bytes", 3 * mib},
              {"js_heap_used_bytes", (25 + i * 3 / 4) * mib},
              {"fds_open", 20 + i / 3}};
    int64_t rss = 0;
    for (const char* k : {"js_heap_bytes", "array_buffers_bytes", "native_heap_bytes", "code_bytes",
                          "stacks_bytes", "file_mapped_bytes", "other_anon_bytes"}) {
      rss += s[k].get<int64_t>();
    }
    s["rss_bytes"] = rss + mib;
    s["anon_bytes"] = rss - 57 * mib;
    s["file_bytes"] = 57 * mib;
    timeline.push_back(s);
    timeline2.push_back({{"t_s", i},
                         {"rss_bytes", (50 + i % 7) * mib},
                         {"anon_bytes", (30 + i % 7) * mib},
                         {"file_bytes", 20 * mib}});
    if (i % 2 == 0) {
      events.push_back({{"t_s", i + 0.3},
                        {"kind", i % 10 == 0 ? "mark-compact" : "scavenge"},
                        {"pause_ms", i % 10 == 0 ? 12.5 + i / 10.0 : 1.2 + (i % 7) / 5.0},
                        {"heap_used_before_bytes", (30 + i) * mib},
                        {"heap_used_after_bytes", (24 + i * 3 / 4) * mib}});
    }
  }
  json verdict_stacks = json::array({json::array({"uv_run", "handleUpload [js]", "cacheResult [js]"}),
                                     json::array({"uv_run", std::string(kHostileName) + " [js]"})});
  json p1;
  p1["pid"] = 1000;
  p1["ppid"] = 1;
  p1["comm"] = "node";
  p1["exe"] = "/usr/bin/node";
  p1["cmdline"] = {"node", "server.js"};
  p1["rss_bytes"] = timeline.back()["rss_bytes"];
  p1["rss_peak_bytes"] = timeline.back()["rss_bytes"];
  p1["rss"] = {{"anon_bytes", timeline.back()["anon_bytes"]},
               {"file_bytes", 57 << 20},
               {"shmem_bytes", 0},
               {"swap_bytes", 0}};
  p1["breakdown"] = {{"js_heap", 100 << 20},  {"array_buffers", 10 << 20},   {"native_heap", 45 << 20},
                     {"code", 12 << 20},      {"stacks", 2 << 20},           {"file_mapped", 45 << 20},
                     {"other_anon", 3 << 20}, {"unexplained_bytes", 1 << 20}};
  p1["timeline"] = timeline;
  p1["gc"] = {{"count", events.size()},
              {"by_kind", {{"scavenge", 24}, {"mark-compact", 7}}},
              {"pause_ms", {{"total", 120.5}, {"max", 18.5}, {"p50", 1.6}, {"p99", 18.0}}},
              {"heap_used_after_gc_bytes", 69 << 20},
              {"events", events}};
  p1["array_buffers"] = {{"live_bytes", 10 << 20}, {"peak_bytes", 29 << 20}};
  p1["fds"] = {{"open", 40}, {"peak", 40}, {"by_type", {{"socket", 25}, {"regular", 10}, {"pipe", 5}}}};
  json v1 = {{"kind", "stable"},
             {"category", "native_heap"},
             {"rate_bytes_per_s", 0},
             {"confidence", 0.8},
             {"evidence", "Native heap stayed within 2 MiB over 61 s."}};
  json v2 = {{"kind", "leak_suspected"},
             {"category", "js_heap"},
             {"rate_bytes_per_s", 12583},
             {"confidence", 0.93},
             {"evidence", "Heap used after GC rose from 24 MiB to 69 MiB over 60 s (+0.72 MiB/min)."},
             {"top_stacks", verdict_stacks}};
  p1["verdicts"] = json::array({v1, v2});

  json p2;
  p2["pid"] = 1001;
  p2["comm"] = "node";
  p2["exe"] = "/usr/bin/node";
  p2["rss_bytes"] = 56 << 20;
  p2["rss_peak_bytes"] = 56 << 20;
  p2["timeline"] = timeline2;

  json r;
  r["schema_version"] = 2;
  r["memlens_version"] = "0.1.0";
  r["command"] = {"node", "server.js", "--port", "8080"};
  r["started_at"] = "2026-01-01T00:00:00Z";
  r["duration_s"] = 61.5;
  r["kernel"] = "6.18.0";
  r["probes"]["attached"] = {"mmap", "munmap", "brk", "rss_stat", "gc_start", "gc_done"};
  r["probes"]["skipped"] =
      json::array({{{"name", "usdt:node:gc__start"}, {"reason", "the binary has no USDT notes"}}});
  r["loss"] = {{"events_lost", 3},
               {"events_lost_by_cause", {{"ring_full", 0}, {"map_full", 0}, {"malformed", 3}}},
               {"stacks_lost", 0},
               {"untraced_processes", 1},
               {"untraced_s", 0.25}};
  r["processes"] = json::array({p1, p2});
  r["processes"][1]["loss"] = {
      {"events_lost", 0},
      {"untraced_s", 0.25},
      {"untraced_reason", "not held (--no-hold): ran before its probes were attached"}};
  return r;
}

// Sum of values[k] over the samples.
inline int64_t total_of(const symbolize::StackProfile& p, size_t k = 0) {
  int64_t t = 0;
  for (const symbolize::StackSample& s : p.samples) t += s.values.at(k);
  return t;
}

// ----------------------------------------------------------------------------------------------------
// Running the Node checkers (tests only: the benchmarks use the data above).
#ifdef MEMLENS_TEST_DATA
}  // namespace memlens::report::fixtures
#include <gtest/gtest.h>
namespace memlens::report::fixtures {

inline std::string source_dir() {
  const char* d = std::getenv("MEMLENS_SOURCE_DIR");
  return d ? d : MEMLENS_TEST_DATA "/../..";
}

// Where tests keep files worth looking at after a run (screenshots, generated pages).
inline std::filesystem::path artifact_dir(const std::string& name) {
  const char* b = std::getenv("MEMLENS_BUILD_DIR");
  std::filesystem::path dir = std::filesystem::path(b ? b : "/tmp") / "test-artifacts" / name;
  std::filesystem::create_directories(dir);
  return dir;
}

inline bool on_path(const std::string& tool) {
  return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0;
}

// Why the Node checks cannot run here, or "" when they can.
inline std::string node_check_missing(bool need_chromium) {
  if (!on_path("node")) return "node is not installed";
  if (!std::filesystem::exists(source_dir() + "/tests/html/node_modules/pprof-format") ||
      !std::filesystem::exists(source_dir() + "/tests/html/node_modules/playwright-core")) {
    return "tests/html/node_modules is missing (run scripts/test-prepare.sh)";
  }
  if (need_chromium &&
      !std::filesystem::exists(std::getenv("CHROMIUM") ? std::getenv("CHROMIUM") : "/usr/bin/chromium")) {
    return "chromium is not installed (run scripts/test-prepare.sh)";
  }
  return "";
}

inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// Skips the test with the reason when a tool is missing, except under CI=true where it fails.
#define MEMLENS_REQUIRE_NODE_CHECKS(need_chromium)                                                \
  do {                                                                                            \
    const std::string missing_ = ::memlens::report::fixtures::node_check_missing(need_chromium);  \
    if (!missing_.empty()) {                                                                      \
      if (::memlens::report::fixtures::in_ci()) FAIL() << missing_ << " (CI=true: not skipping)"; \
      GTEST_SKIP() << missing_;                                                                   \
    }                                                                                             \
  } while (0)

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// Runs `node tests/html/<script> <args>` and returns its exit code and combined output (also printed).
inline CommandResult run_node_check(const std::string& script, const std::vector<std::string>& args) {
  std::string cmd = "node '" + source_dir() + "/tests/html/" + script + "'";
  for (const std::string& a : args) cmd += " '" + a + "'";
  cmd += " 2>&1";
  CommandResult r;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.output.append(buf, n);
  const int status = pclose(f);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::printf("%s", r.output.c_str());
  return r;
}
#endif  // MEMLENS_TEST_DATA

}  // namespace memlens::report::fixtures
