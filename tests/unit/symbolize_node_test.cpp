// A real node process: a JS function from V8's perf map and a C++ function of node's own binary, each
// named through ProcessSymbolizer; ground truth is the perf map file itself and node's ELF symbols with
// c++filt. Also reports the memory symbolizing node costs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "common/safe_file.h"
#include "elf/elf_file.h"
#include "symbolize/symbolizer.h"

namespace memlens::symbolize {
namespace {

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

std::string find_node() {
  std::string out;
  FILE* p = popen("command -v node", "r");
  if (!p) return out;
  char buf[512];
  if (fgets(buf, sizeof buf, p)) out = buf;
  pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string cxxfilt(const std::string& mangled) {
  std::string out;
  FILE* p = popen(("c++filt '" + mangled + "'").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

uint64_t vm_rss_kb() {
  auto s = read_text_file("/proc/self/status");
  if (!s) return 0;
  auto pos = s->find("VmRSS:");
  return pos == std::string::npos ? 0 : std::strtoull(s->c_str() + pos + 6, nullptr, 10);
}

constexpr char kScript[] = R"(
function memlensHotLoop(n) { let s = 0; for (let i = 0; i < n; i++) s += (i * 31) % 7; return s; }
let total = 0;
const end = Date.now() + 1500;
while (Date.now() < end) total += memlensHotLoop(10000);
console.log('ready ' + total);
setInterval(() => {}, 1000);
)";

class NodeProcess {
 public:
  explicit NodeProcess(const std::string& node) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      // --perf-basic-prof also turns on V8's log, an isolate-*.log in the working directory: send it nowhere.
      execl(node.c_str(), node.c_str(), "--perf-basic-prof", "--logfile=/dev/null", "-e", kScript,
            static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    out_ = fdopen(out[0], "r");
  }
  ~NodeProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      int status;
      waitpid(pid_, &status, 0);
      std::remove(("/tmp/perf-" + std::to_string(pid_) + ".map").c_str());
    }
    if (out_) fclose(out_);
  }
  bool wait_ready() {
    char buf[256];
    return out_ && fgets(buf, sizeof buf, out_) && std::string(buf).rfind("ready", 0) == 0;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
};

TEST(SymbolizeNode, JsFunctionFromPerfMapAndNativeFunctionFromElf) {
  std::string node = find_node();
  if (node.empty()) {
    if (in_ci()) FAIL() << "CI=true: node is required";
    GTEST_SKIP() << "node is not installed";
  }
  NodeProcess proc(node);
  ASSERT_TRUE(proc.wait_ready()) << "node did not start";

  // Ground truth for JS: the perf map as node wrote it. The last line for the function is its most
  // recent code (optimized by now).
  std::ifstream map("/tmp/perf-" + std::to_string(proc.pid()) + ".map");
  ASSERT_TRUE(map.good());
  std::string line;
  uint64_t js_start = 0, js_size = 0;
  std::string js_name;
  while (std::getline(map, line)) {
    if (line.find("memlensHotLoop") == std::string::npos) continue;
    std::istringstream in(line);
    std::string start, size;
    in >> start >> size;
    js_start = std::stoull(start, nullptr, 16);
    js_size = std::stoull(size, nullptr, 16);
    js_name = line.substr(start.size() + size.size() + 2);
  }
  ASSERT_NE(js_size, 0u) << "no memlensHotLoop in the perf map";

  // Ground truth for native code (read before measuring the symbolizer's memory): a C++ function of node's
  // binary, from its ELF symbols, placed in the process through its maps; a symbol alone at its address so
  // that no alias can be chosen instead.
  auto exe = proc::read_exe(proc.pid());
  ASSERT_TRUE(exe.ok());
  auto elf = elf::ElfFile::open_path(*exe);
  ASSERT_TRUE(elf.ok()) << elf.error().describe();
  std::map<uint64_t, int> per_address;
  for (const auto& sym : (*elf)->symbols())
    if (sym.is_function) ++per_address[sym.address];
  std::optional<elf::Symbol> target;
  for (const auto& sym : (*elf)->find_symbols_with_prefix("_ZN4node"))
    if (sym.is_function && sym.size > 16 && per_address[sym.address] == 1) {
      target = sym;
      break;
    }
  ASSERT_TRUE(target.has_value());
  auto offset = (*elf)->vaddr_to_file_offset(target->address);
  ASSERT_TRUE(offset.has_value());
  uint64_t absolute = 0;
  auto maps = proc::read_maps(proc.pid());
  ASSERT_TRUE(maps.ok());
  for (const auto& m : *maps)
    if (m.is_file() && m.inode == (*elf)->inode() && *offset >= m.offset && *offset - m.offset < m.size())
      absolute = m.start + (*offset - m.offset);
  ASSERT_NE(absolute, 0u);
  const std::string node_build_id = (*elf)->build_id();
  elf.value().reset();  // only the symbolizer's own tables count below
  uint64_t rss_before = vm_rss_kb();
  ProcessSymbolizerOptions options;
  options.cache = std::make_shared<ModuleCache>();
  auto s = ProcessSymbolizer::create(proc.pid(), options);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_EQ((*s)->perf_map_problem(), "");
  Frame js = (*s)->symbolize({js_start + js_size / 2}).front();
  EXPECT_EQ(js.kind, FrameKind::kJs);
  EXPECT_EQ(js.function, js_name);
  EXPECT_NE(js.function.find("memlensHotLoop"), std::string::npos);
  EXPECT_EQ(js.symbol_offset, js_size / 2);

  Frame native = (*s)->symbolize({absolute + 4}).front();
  EXPECT_EQ(native.kind, FrameKind::kNative);
  EXPECT_EQ(native.function, cxxfilt(target->name));
  EXPECT_EQ(native.symbol_offset, 4u);
  EXPECT_EQ(native.build_id, node_build_id);
  EXPECT_EQ(native.module, *exe);

  // Memory: every executable module of node loaded, as a report of a node process needs.
  size_t modules = (*s)->preload();
  uint64_t rss_after = vm_rss_kb();
  size_t module_bytes = options.cache->memory_bytes();
  std::printf(
      "[ memory ] node: %zu modules, module tables %.1f MiB, perf map %zu entries, process state "
      "%.1f KiB, test RSS growth %.1f MiB\n",
      modules, module_bytes / 1048576.0, (*s)->perf_map()->size(), (*s)->memory_bytes() / 1024.0,
      (static_cast<double>(rss_after) - static_cast<double>(rss_before)) / 1024.0);
  // The tracer's whole RSS target is 64 MiB: symbol tables of a node process must stay well inside it.
  EXPECT_LT(module_bytes, 24u << 20);
}

}  // namespace
}  // namespace memlens::symbolize
