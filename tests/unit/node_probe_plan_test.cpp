// Probe planning against the real Node binaries of scripts/fetch-node.sh (skipped with a reason when the
// cache is missing, failing under CI=true), stripped copies of them, and the USDT test program.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "elf/elf_file.h"
#include "elf/x86_decode.h"
#include "node/probe_plan.h"

namespace fs = std::filesystem;
using namespace memlens::node;
using memlens::elf::UsdtProbe;

namespace {

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

#define SKIP_OR_FAIL(why)       \
  do {                          \
    if (in_ci()) FAIL() << why; \
    GTEST_SKIP() << why;        \
  } while (0)

fs::path node_cache() {
  if (const char* c = std::getenv("MEMLENS_NODE_CACHE")) return c;
  if (const char* s = std::getenv("MEMLENS_SOURCE_DIR")) return fs::path(s) / ".cache/node";
  return fs::path(MEMLENS_TEST_DATA).parent_path().parent_path() / ".cache/node";
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  pclose(p);
  return out;
}

std::string read_bytes(const std::string& path, uint64_t offset, size_t n) {
  std::ifstream f(path, std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  std::string s(n, '\0');
  f.read(s.data(), static_cast<std::streamsize>(n));
  s.resize(static_cast<size_t>(f.gcount()));
  return s;
}

// Symbol address as nm (binutils, an independent reader) reports it, from either table.
uint64_t nm_address(const std::string& binary, const std::string& symbol) {
  static std::map<std::string, std::map<std::string, uint64_t>> cache;
  auto [it, fresh] = cache.try_emplace(binary);
  if (fresh) {
    std::istringstream in(
        run("{ nm " + binary + "; nm -D " + binary + "; } 2>/dev/null | grep -E ' [TtWw] _Z'"));
    std::string line;
    while (std::getline(in, line)) {
      auto sp = line.rfind(' ');
      if (sp != std::string::npos && line[0] != ' ')  // an undefined weak symbol has no address
        it->second.emplace(line.substr(sp + 1), std::stoull(line.substr(0, 16), nullptr, 16));
    }
  }
  auto found = it->second.find(symbol);
  return found == it->second.end() ? 0 : found->second;
}

const ProbePurpose kRequired[] = {ProbePurpose::gc_start,           ProbePurpose::gc_end,
                                  ProbePurpose::heap_used_before,   ProbePurpose::heap_used_after,
                                  ProbePurpose::array_buffer_alloc, ProbePurpose::array_buffer_alloc_uninit,
                                  ProbePurpose::array_buffer_free};

// Checks every attach point of a plan against the file itself, with tools other than ours.
void check_points_against_file(const ProbePlan& plan, const std::string& binary) {
  auto elf = memlens::elf::ElfFile::open_path(binary);
  ASSERT_TRUE(elf.ok());
  for (const auto& site : plan.probes) {
    for (const auto& p : site.points) {
      uint64_t sym = nm_address(binary, p.symbol);
      ASSERT_NE(sym, 0u) << p.symbol << " not listed by nm";
      auto sym_off = (*elf)->vaddr_to_file_offset(sym);
      ASSERT_TRUE(sym_off.has_value());
      EXPECT_EQ(p.file_offset, *sym_off + p.offset_in_symbol) << to_string(site.purpose);
      if ((site.purpose == ProbePurpose::heap_used_before || site.purpose == ProbePurpose::heap_used_after) &&
          p.value_base) {
        // The point is a call after the code stored SizeOfObjects()'s result at the slot it reads. In
        // objdump's disassembly of the whole function: a call to SizeOfObjects, then `mov %rax,DISP(%REG)`,
        // then up to the point's call nothing writes %REG (64 or 32 bits) or the slot, or branches; and no
        // branch anywhere in the function lands after the store up to the call (the planner assumes it).
        std::string dis =
            run(fmt::format("objdump -d --no-show-raw-insn --start-address={:#x} --stop-address={:#x} {} | "
                            "awk 'NR > 7 && /^[0-9a-f]+ <.*>:$/ {{exit}} {{print}}'",
                            sym, sym + 0x4000, binary));
        std::string reg = std::string("%") + memlens::elf::x86_register_name(*p.value_base);
        static const std::map<std::string, std::string> k32 = {
            {"%rbx", "%ebx"},  {"%rbp", "%ebp"},  {"%r12", "%r12d"}, {"%r13", "%r13d"},
            {"%r14", "%r14d"}, {"%r15", "%r15d"}, {"%rsi", "%esi"},  {"%rdi", "%edi"}};
        std::string reg32 = k32.count(reg) ? k32.at(reg) : reg;
        std::string slot = fmt::format("{:#x}({})", p.value_disp, reg);
        uint64_t point = sym + p.offset_in_symbol;
        uint64_t store_at = 0;
        std::vector<std::pair<uint64_t, std::string>> insns;
        std::istringstream in(dis);
        std::string line;
        while (std::getline(in, line)) {
          std::smatch m;
          static const std::regex insn(R"(^\s*([0-9a-f]+):\s+(.*)$)");
          if (std::regex_match(line, m, insn)) insns.emplace_back(std::stoull(m[1], nullptr, 16), m[2]);
        }
        for (size_t i = 0; i < insns.size() && insns[i].first < point; ++i)
          if (insns[i].second.find("<_ZN2v88internal4Heap13SizeOfObjectsEv") != std::string::npos) {
            for (size_t j = i + 1; j < insns.size() && insns[j].first < point; ++j)
              if (insns[j].second.starts_with("mov    %rax," + slot)) {
                store_at = insns[j].first;
                break;
              }
          }
        ASSERT_NE(store_at, 0u) << "no mov %rax," << slot << " after a call to SizeOfObjects before "
                                << std::hex << point << ":\n"
                                << dis;
        bool reached = false;
        for (const auto& [addr, text] : insns) {
          if (addr > store_at && addr < point) {
            EXPECT_EQ(text.find("," + reg), std::string::npos) << reg << " written: " << text;
            EXPECT_EQ(text.find("," + reg32), std::string::npos) << reg32 << " written: " << text;
            EXPECT_FALSE(text.ends_with("," + slot)) << "the slot written: " << text;
            EXPECT_FALSE(text.starts_with("j")) << "a branch before the point: " << text;
          }
          if (addr == point) {
            reached = true;
            EXPECT_TRUE(text.starts_with("call")) << "the point is not a call: " << text;
          }
          static const std::regex branch(R"(^(j[a-z]+|call)\s+([0-9a-f]+) <)");
          std::smatch m;
          if (std::regex_search(text, m, branch)) {
            uint64_t target = std::stoull(m[2], nullptr, 16);
            EXPECT_FALSE(target > store_at && target <= point)
                << "a branch at " << std::hex << addr << " lands between the store and the point: " << text;
          }
        }
        EXPECT_TRUE(reached) << "no instruction starts at the point " << std::hex << point;
      } else if (site.purpose == ProbePurpose::heap_used_before ||
                 site.purpose == ProbePurpose::heap_used_after) {
        // The point follows a `call rel32` to Heap::SizeOfObjects.
        std::string call = read_bytes(binary, p.file_offset - 5, 5);
        ASSERT_EQ(call.size(), 5u);
        EXPECT_EQ(static_cast<uint8_t>(call[0]), 0xE8);
        int32_t rel;
        std::memcpy(&rel, call.data() + 1, 4);
        EXPECT_EQ(sym + p.offset_in_symbol + rel,
                  nm_address(binary, "_ZN2v88internal4Heap13SizeOfObjectsEv"));
      }
      if (p.offset_in_symbol != 0 && site.purpose == ProbePurpose::array_buffer_free) {
        EXPECT_EQ(static_cast<uint8_t>(read_bytes(binary, *sym_off, 1)[0]), 0xF0)
            << "skipped a non-lock insn";
      }
    }
  }
}

// Lines "ADDR: TEXT" of objdump's disassembly of the function at sym (up to the next symbol).
std::vector<std::pair<uint64_t, std::string>> disassembly(const std::string& binary, uint64_t sym) {
  std::string dis =
      run(fmt::format("objdump -d --no-show-raw-insn --start-address={:#x} --stop-address={:#x} {} | "
                      "awk 'NR > 7 && /^[0-9a-f]+ <.*>:$/ {{exit}} {{print}}'",
                      sym, sym + 0x4000, binary));
  std::vector<std::pair<uint64_t, std::string>> insns;
  std::istringstream in(dis);
  std::string line;
  static const std::regex insn(R"(^\s*([0-9a-f]+):\s+(.*)$)");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, insn)) insns.emplace_back(std::stoull(m[1], nullptr, 16), m[2]);
  }
  return insns;
}

// Instructions of insns that write reg or a part of it (the destination is AT&T's last operand; one-operand
// forms and xchg write theirs too), other than by popping it.
std::vector<std::string> writes_of(const std::vector<std::pair<uint64_t, std::string>>& insns,
                                   const std::string& reg) {
  static const std::map<std::string, std::vector<std::string>> kParts = {
      {"rbx", {"ebx", "bx", "bl", "bh"}}, {"rbp", {"ebp", "bp", "bpl"}},
      {"r12", {"r12d", "r12w", "r12b"}},  {"r13", {"r13d", "r13w", "r13b"}},
      {"r14", {"r14d", "r14w", "r14b"}},  {"r15", {"r15d", "r15w", "r15b"}}};
  std::vector<std::string> names = {reg};
  if (kParts.count(reg)) names.insert(names.end(), kParts.at(reg).begin(), kParts.at(reg).end());
  static const std::regex one_operand(R"(^(inc|dec|neg|not|set[a-z]+|bswap)[a-z]*\s+%(\w+)$)");
  std::vector<std::string> out;
  for (const auto& [addr, text] : insns) {
    if (text.starts_with("cmp") || text.starts_with("test") || text.starts_with("bt"))
      continue;  // reads only
    std::smatch m;
    bool one = std::regex_match(text, m, one_operand);
    bool writes = false;
    for (const auto& name : names)
      writes = writes || text.ends_with(",%" + name) || (one && m[2] == name) ||
               (text.starts_with("xchg") && text.find("%" + name + ",") != std::string::npos);
    if (writes) out.push_back(fmt::format("{:x}: {}", addr, text));
  }
  return out;
}

// The heap figures read at each GC's end (HeapFiguresInTracer), against objdump's disassembly: every
// PerformGarbageCollection the plan probes keeps its `this` in one register that nothing else writes, and
// calls GCTracer::Start/StopInSafepoint on `mov TRACER(%REG),%rdi`; each of those stores its figure
// through its own `this`, kept the same way, at the displacement the plan reads.
void check_heap_figures_in_tracer(const ProbePlan& plan, const std::string& binary) {
  ASSERT_TRUE(plan.heap_figures_in_tracer.has_value()) << plan.heap_figures_in_tracer_skip_reason;
  const auto& t = *plan.heap_figures_in_tracer;
  for (const auto& point : plan.find(ProbePurpose::gc_start)->points) {
    auto insns = disassembly(binary, nm_address(binary, point.symbol));
    ASSERT_FALSE(insns.empty()) << point.symbol << " in " << binary;
    std::smatch m;
    std::string reg;
    for (size_t i = 0; i < insns.size() && i < 16 && reg.empty(); ++i)
      if (std::regex_match(insns[i].second, m, std::regex(R"(mov\s+%rdi,%(\w+))"))) reg = m[1];
    ASSERT_FALSE(reg.empty()) << point.symbol << ": no mov %rdi,%REG in its prologue";
    // The register may be reused once the tracer calls are made: up to the last of them nothing but the
    // prologue's copy writes it (the planner assumes so; the probe checks the tracer's heap too).
    uint64_t last_call = 0;
    for (const auto& [addr, text] : insns)
      if (text.find("GCTracer15StopInSafepoint") != std::string::npos) last_call = std::max(last_call, addr);
    auto writes = writes_of(insns, reg);
    for (size_t i = 1; i < writes.size(); ++i)
      EXPECT_GT(std::stoull(writes[i], nullptr, 16), last_call)
          << point.symbol << " writes %" << reg << " before its last tracer call: " << writes[i];
    int calls[2] = {0, 0};
    for (size_t i = 0; i < insns.size(); ++i) {
      const std::string& text = insns[i].second;
      int which = text.find("GCTracer16StartInSafepoint") != std::string::npos  ? 0
                  : text.find("GCTracer15StopInSafepoint") != std::string::npos ? 1
                                                                                : -1;
      if (which < 0 || !text.starts_with("call")) continue;
      ++calls[which];
      std::string load = fmt::format("mov    {:#x}(%{}),%rdi", t.tracer_offset, reg);
      bool loaded = false;
      for (size_t back = 1; back <= 4 && back <= i && !loaded; ++back) {
        const std::string& before = insns[i - back].second;
        if (before == load) loaded = true;
        if (before.ends_with(",%rdi") || before.starts_with("call") || before.starts_with("j")) break;
      }
      EXPECT_TRUE(loaded) << point.symbol << ": no `" << load << "` before " << text;
    }
    EXPECT_GE(calls[0], 1) << point.symbol << " calls no StartInSafepoint";
    EXPECT_GE(calls[1], 1) << point.symbol << " calls no StopInSafepoint";
  }
  const std::pair<ProbePurpose, int32_t> figures[] = {{ProbePurpose::heap_used_before, t.before_disp},
                                                      {ProbePurpose::heap_used_after, t.after_disp}};
  for (auto [purpose, disp] : figures) {
    for (const auto& point : plan.find(purpose)->points) {
      ASSERT_TRUE(point.value_base.has_value());
      EXPECT_EQ(point.value_disp, disp);
      auto insns = disassembly(binary, nm_address(binary, point.symbol));
      std::string reg = memlens::elf::x86_register_name(*point.value_base);
      auto writes = writes_of(insns, reg);
      ASSERT_FALSE(writes.empty()) << point.symbol;
      EXPECT_NE(writes.front().find("mov    %rdi,%" + reg), std::string::npos) << writes.front();
      // Up to the store of the figure nothing else writes the register.
      uint64_t store = 0;
      for (const auto& [addr, text] : insns)
        if (!store && text == fmt::format("mov    %rax,{:#x}(%{})", disp, reg)) store = addr;
      ASSERT_NE(store, 0u) << point.symbol << ": no store of the figure through %" << reg;
      for (size_t i = 1; i < writes.size(); ++i)
        EXPECT_GT(std::stoull(writes[i], nullptr, 16), store) << point.symbol << ": " << writes[i];
      bool heap_read = false;
      for (const auto& [addr, text] : insns) {
        if (addr >= store) break;
        if (text == "mov    (%rdi),%rdi" || text == "mov    (%" + reg + "),%rdi") heap_read = true;
      }
      EXPECT_TRUE(heap_read) << point.symbol << " does not read its heap from its first word";
    }
  }
}

class RealNode : public ::testing::TestWithParam<const char*> {};

TEST_P(RealNode, AllRequiredProbesFoundAndConsistentWithTheFile) {
  fs::path bin = node_cache() / GetParam() / "bin/node";
  if (!fs::exists(bin))
    SKIP_OR_FAIL("no Node " << GetParam() << " at " << bin << ": run scripts/fetch-node.sh");
  auto plan = plan_for_binary(bin.string());
  ASSERT_TRUE(plan.ok()) << plan.error().describe();
  std::cout << plan->describe();
  EXPECT_FALSE(plan->stripped);
  EXPECT_TRUE(plan->gc_usable());
  for (ProbePurpose p : kRequired)
    EXPECT_TRUE(plan->find(p)->found()) << to_string(p) << ": " << plan->find(p)->skip_reason;
  check_points_against_file(*plan, bin.string());
  // Every official build reads the heap figures where V8 stored them, at a call (one trap, not two), and
  // better at the GC's end (no trap of their own).
  for (ProbePurpose p : {ProbePurpose::heap_used_before, ProbePurpose::heap_used_after})
    for (const auto& a : plan->find(p)->points)
      EXPECT_TRUE(a.value_base.has_value()) << to_string(p) << ": " << a.why_inside;
  check_heap_figures_in_tracer(*plan, bin.string());

  // Which table: readelf --dyn-syms is the ground truth for what .dynsym exports.
  std::string dyn = run("readelf --dyn-syms -W " + bin.string() + " | grep -c 'PerformGarbageCollection'");
  bool v8_in_dynsym = std::atoi(dyn.c_str()) > 0;
  const auto& gc = plan->find(ProbePurpose::gc_start)->points;
  for (const auto& p : gc) {
    bool clone = p.symbol.find(".constprop.") != std::string::npos;
    EXPECT_EQ(p.table == SymbolTable::dynsym, v8_in_dynsym && !clone) << p.symbol;
  }
  // Node's allocator stays exported in every major (it is part of node's public API).
  EXPECT_EQ(plan->find(ProbePurpose::array_buffer_alloc)->points[0].table, SymbolTable::dynsym);
  // The kernel refuses uprobes on lock-prefixed instructions: never plan one at such an instruction.
  for (const auto& site : plan->probes)
    for (const auto& p : site.points)
      EXPECT_NE(static_cast<uint8_t>(read_bytes(bin.string(), p.file_offset, 1)[0]), 0xF0);
}

TEST_P(RealNode, StrippedCopyReportsWhy) {
  fs::path bin = node_cache() / GetParam() / "bin/node";
  if (!fs::exists(bin))
    SKIP_OR_FAIL("no Node " << GetParam() << " at " << bin << ": run scripts/fetch-node.sh");
  fs::path dir = fs::temp_directory_path() / ("memlens-strip-" + std::to_string(getpid()) + "-" + GetParam());
  fs::create_directories(dir);
  fs::path copy = dir / "node";
  ASSERT_EQ(std::system(("objcopy --strip-all " + bin.string() + " " + copy.string()).c_str()), 0);
  auto plan = plan_for_binary(copy.string());
  ASSERT_TRUE(plan.ok()) << plan.error().describe();
  std::cout << plan->describe();
  EXPECT_FALSE(plan->has_symtab);
  std::string dyn = run("readelf --dyn-syms -W " + copy.string() + " | grep -c '_ZN2v88internal4Heap'");
  bool v8_in_dynsym = std::atoi(dyn.c_str()) > 0;
  EXPECT_EQ(plan->stripped, !v8_in_dynsym);
  if (!v8_in_dynsym) {
    for (ProbePurpose p : {ProbePurpose::gc_start, ProbePurpose::gc_end, ProbePurpose::heap_used_before,
                           ProbePurpose::heap_used_after}) {
      EXPECT_FALSE(plan->find(p)->found());
      EXPECT_TRUE(plan->find(p)->skip_reason.starts_with("binary is stripped")) << plan->find(p)->skip_reason;
    }
  } else {
    // Where V8 calls a .constprop clone named only in .symtab (Node 18), the exported original is never
    // called: the stripped copy must say so rather than attach to it.
    std::string clones =
        run("readelf -s -W " + bin.string() + " | grep -c 'PerformGarbageCollection.*constprop'");
    bool clone_in_symtab = std::atoi(clones.c_str()) > 0;
    EXPECT_EQ(plan->find(ProbePurpose::gc_start)->found(), !clone_in_symtab);
    if (clone_in_symtab) {
      EXPECT_NE(plan->find(ProbePurpose::gc_start)->skip_reason.find(".constprop"), std::string::npos);
    }
    EXPECT_TRUE(plan->find(ProbePurpose::heap_used_before)->found());
  }
  // Node's own exported allocator survives --strip-all.
  EXPECT_TRUE(plan->find(ProbePurpose::array_buffer_alloc)->found());
  EXPECT_TRUE(plan->find(ProbePurpose::array_buffer_free)->found());
  check_points_against_file(*plan, copy.string());
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Majors, RealNode, ::testing::Values("18", "20", "22", "24"));

TEST(NodeProbePlan, MissingSymbolsNameWhatWasTried) {
  // /bin/true holds no V8 at all: every probe is skipped and says which names it looked for.
  auto plan = plan_for_binary("/bin/true");
  ASSERT_TRUE(plan.ok()) << plan.error().describe();
  EXPECT_FALSE(plan->gc_usable());
  for (const auto& site : plan->probes) {
    EXPECT_FALSE(site.found());
    EXPECT_NE(site.skip_reason.find(symbol_variants(site.purpose).front()), std::string::npos)
        << site.skip_reason;
  }
}

TEST(NodeProbePlan, UsdtNotesOfTheTestProviderMatchReadelf) {
  const char* build = std::getenv("MEMLENS_BUILD_DIR");
  fs::path prog = fs::path(build ? build : "") / "test-programs/usdt_provider";
  if (!build || !fs::exists(prog)) SKIP_OR_FAIL("usdt_provider not built at " << prog);
  auto plan = plan_for_binary(prog.string());
  ASSERT_TRUE(plan.ok()) << plan.error().describe();
  std::cout << plan->describe();
  EXPECT_TRUE(plan->gc_usable());
  std::string notes = run("readelf -n " + prog.string());
  std::regex re(R"(Name: (\S+)\s+Location: 0x([0-9a-f]+), Base: 0x[0-9a-f]+, Semaphore: 0x([0-9a-f]+))");
  int seen = 0;
  for (std::sregex_iterator it(notes.begin(), notes.end(), re), end; it != end; ++it, ++seen) {
    const UsdtProbe* u = plan->find_usdt("node", (*it)[1].str());
    ASSERT_NE(u, nullptr) << (*it)[1].str();
    EXPECT_EQ(u->pc, std::stoull((*it)[2].str(), nullptr, 16));
    EXPECT_EQ(u->semaphore, std::stoull((*it)[3].str(), nullptr, 16));
    EXPECT_TRUE(u->has_semaphore());
    EXPECT_TRUE(u->semaphore_file_offset.has_value());
  }
  EXPECT_EQ(seen, 2);
  EXPECT_EQ(plan->usdt.size(), 2u);
}

TEST(NodeProbePlan, PidPlanMatchesBinaryPlan) {
  fs::path bin = node_cache() / "20/bin/node";
  if (!fs::exists(bin)) bin = "/usr/bin/node";
  if (!fs::exists(bin)) SKIP_OR_FAIL("no node binary to run");
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    execl(bin.c_str(), bin.c_str(), "-e", "setTimeout(() => {}, 20000)", nullptr);
    _exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let the dynamic loader map everything
  auto by_pid = plan_for_pid(child);
  auto by_path = plan_for_binary(fs::canonical(bin).string());
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_TRUE(by_pid.ok()) << by_pid.error().describe();
  ASSERT_TRUE(by_path.ok());
  EXPECT_EQ(by_pid->host_path, "/proc/" + std::to_string(child) + "/root" + fs::canonical(bin).string());
  ASSERT_EQ(by_pid->probes.size(), by_path->probes.size());
  for (size_t i = 0; i < by_pid->probes.size(); ++i) {
    ASSERT_EQ(by_pid->probes[i].points.size(), by_path->probes[i].points.size());
    for (size_t j = 0; j < by_pid->probes[i].points.size(); ++j)
      EXPECT_EQ(by_pid->probes[i].points[j].file_offset, by_path->probes[i].points[j].file_offset);
  }
}

TEST(NodeProbePlan, LibnodeLayoutPicksTheSharedLibrary) {
  fs::path runner = node_cache() / "libnode/run-node";
  if (!fs::exists(runner))
    SKIP_OR_FAIL("no libnode layout at " << runner << ": run scripts/fetch-node.sh libnode");
  if (geteuid() != 0) SKIP_OR_FAIL("run-node needs root (private mount namespace)");
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    execl(runner.c_str(), runner.c_str(), "-e", "setTimeout(() => {}, 20000)", nullptr);
    _exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  auto plan = plan_for_pid(child);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_TRUE(plan.ok()) << plan.error().describe();
  std::cout << plan->describe();
  EXPECT_TRUE(plan->is_shared_library);
  EXPECT_NE(plan->path_in_process.find("libnode.so"), std::string::npos);
  EXPECT_FALSE(plan->has_symtab);
  for (ProbePurpose p : kRequired)
    EXPECT_TRUE(plan->find(p)->found()) << to_string(p) << ": " << plan->find(p)->skip_reason;
  // The file itself by its own path (host_path went with the killed process's /proc entry).
  check_heap_figures_in_tracer(*plan, plan->path_in_process);
}

}  // namespace
