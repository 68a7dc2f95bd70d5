// Normalization and symbolization against ground truth the test controls: functions of this test process
// (addresses from &function and dlsym), and children compiled by the test (PIE and non-PIE, stripped,
// deleted, exited) that print the addresses of their own functions and of a fake JIT region they describe
// in a perf map, as V8 does.
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "../common/shell.h"
#include "elf/elf_file.h"
#include "symbolize/symbolizer.h"

namespace memlens_symbolize_test {
struct Widget {
  __attribute__((noinline)) static int grow(int x);
};
__attribute__((noinline)) int Widget::grow(int x) {
  asm volatile("" ::: "memory");
  return x * 7 + 1;
}
}  // namespace memlens_symbolize_test

namespace memlens::symbolize {
namespace {

namespace fs = std::filesystem;

constexpr char kBuildId[] = "feedface00112233445566778899aabbccddeeff";

constexpr char kChildSource[] = R"(
#include <cstdio>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>
namespace memlens_child {
struct Widget { static int grow(int x); };
__attribute__((noinline)) int Widget::grow(int x) { asm volatile("" ::: "memory"); return x * 7 + 1; }
}
extern "C" __attribute__((noinline)) int memlens_child_c(int x) { asm volatile("" ::: "memory"); return x + 2; }
static __attribute__((noinline)) int memlens_child_static(int x) { asm volatile("" ::: "memory"); return x ^ 5; }
int main(int argc, char**) {
  void* jit = mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memset(jit, 0xc3, 4096);
  char path[64];
  snprintf(path, sizeof path, "/tmp/perf-%d.map", getpid());
  FILE* f = fopen(path, "w");
  fprintf(f, "%lx 100 JS:*fakeJs /app/x.js:1:1\n", (unsigned long)jit);
  fclose(f);
  printf("%p %p %p %p\n", (void*)&memlens_child::Widget::grow, (void*)&memlens_child_c,
         (void*)&memlens_child_static, jit);
  fflush(stdout);
  char buf[64];
  while (fgets(buf, sizeof buf, stdin)) {
    if (strncmp(buf, "more", 4) == 0) {
      f = fopen(path, "a");
      fprintf(f, "%lx 80 JS:~lateFn /app/y.js:2:2\n", (unsigned long)jit + 0x200);
      fclose(f);
      printf("ok\n");
      fflush(stdout);
    }
  }
  unlink(path);
  return memlens_child_c(argc) + memlens_child_static(argc) + memlens_child::Widget::grow(argc);
}
)";

using memlens::testing::run;

// A child process with a pipe to its stdin and from its stdout.
class Child {
 public:
  explicit Child(const std::string& path) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      execl(path.c_str(), path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    in_ = in[1];
    out_ = fdopen(out[0], "r");
  }
  ~Child() {
    finish();
    if (out_) fclose(out_);
  }
  pid_t pid() const { return pid_; }
  std::string read_line() {
    char buf[512];
    if (!out_ || !fgets(buf, sizeof buf, out_)) return "";
    return buf;
  }
  void send(const std::string& s) { (void)!write(in_, s.data(), s.size()); }
  // Closes stdin: the child removes its perf map and exits; waits for it.
  void finish() {
    if (in_ >= 0) close(in_);
    in_ = -1;
    if (pid_ > 0) {
      int status;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

 private:
  pid_t pid_ = -1;
  int in_ = -1;
  FILE* out_ = nullptr;
};

struct ChildAddresses {
  uint64_t grow = 0, c_fn = 0, static_fn = 0, jit = 0;
};

ChildAddresses parse_addresses(const std::string& line) {
  ChildAddresses a;
  std::istringstream in(line);
  std::string g, c, s, j;
  in >> g >> c >> s >> j;
  if (j.empty()) return a;
  a.grow = std::stoull(g, nullptr, 16);
  a.c_fn = std::stoull(c, nullptr, 16);
  a.static_fn = std::stoull(s, nullptr, 16);
  a.jit = std::stoull(j, nullptr, 16);
  return a;
}

// Bytes of the child's memory at address, to compare with the bytes of its file at the normalized offset.
std::string read_memory(pid_t pid, uint64_t address, size_t n) {
  std::string out(n, '\0');
  int fd = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  ssize_t got = pread(fd, out.data(), n, static_cast<off_t>(address));
  close(fd);
  return got == static_cast<ssize_t>(n) ? out : "";
}

std::string read_file_at(const std::string& path, uint64_t offset, size_t n) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::string out(n, '\0');
  in.read(out.data(), static_cast<std::streamsize>(n));
  return in ? out : "";
}

class SymbolizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/memlens-sym-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ / "child.cpp") << kChildSource;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string build(const std::string& name, const std::string& flags) {
    std::string out = (dir_ / name).string();
    std::string cmd = "c++ -O1 -g0 " + flags + " -Wl,--build-id=0x" + kBuildId + " -o " + out + " " +
                      (dir_ / "child.cpp").string() + " 2>&1";
    std::string log = run(cmd);
    if (!fs::exists(out)) ADD_FAILURE() << cmd << "\n" << log;
    return out;
  }

  // Private cache per test: no test sees modules another one loaded.
  ProcessSymbolizerOptions options() {
    ProcessSymbolizerOptions o;
    o.cache = cache_;
    return o;
  }

  void check_native_frames(ProcessSymbolizer& s, const ChildAddresses& a, const std::string& binary,
                           pid_t pid) {
    auto frames = s.symbolize({a.grow, a.c_fn + 1, a.static_fn});
    ASSERT_EQ(frames.size(), 3u);
    EXPECT_EQ(frames[0].kind, FrameKind::kNative);
    EXPECT_EQ(frames[0].function, "memlens_child::Widget::grow(int)");
    EXPECT_EQ(frames[0].symbol_offset, 0u);
    EXPECT_EQ(frames[1].function, "memlens_child_c");
    EXPECT_EQ(frames[1].symbol_offset, 1u);
    EXPECT_EQ(frames[1].address, a.c_fn + 1);
    EXPECT_EQ(frames[2].function, "memlens_child_static(int)");  // internal linkage: mangled as _ZL...
    for (const Frame& f : frames) {
      EXPECT_EQ(f.module, binary);
      EXPECT_EQ(f.build_id, kBuildId);
      // The normalized offset holds, in the file, the bytes the process executes at that address.
      std::string mem = read_memory(pid, f.address, 16);
      ASSERT_FALSE(mem.empty());
      EXPECT_EQ(read_file_at(binary, f.file_offset, 16), mem) << f.function;
    }
  }

  fs::path dir_;
  std::shared_ptr<ModuleCache> cache_ = std::make_shared<ModuleCache>();
};

TEST(Normalize, MapsToFileOffsetsAnonymousAndPseudo) {
  std::vector<proc::MapEntry> maps(4);
  maps[0].start = 0x1000;
  maps[0].end = 0x3000;
  maps[0].offset = 0x5000;
  maps[0].inode = 7;
  maps[0].exec = true;
  maps[0].path = "/usr/lib/libfoo.so";
  maps[1].start = 0x3000;
  maps[1].end = 0x4000;  // anonymous
  maps[2].start = 0x8000;
  maps[2].end = 0x9000;
  maps[2].path = "[vdso]";
  maps[3].start = 0x10000;
  maps[3].end = 0x11000;
  maps[3].inode = 9;
  maps[3].path = "/usr/lib/libbar.so (deleted)";

  auto n = normalize(maps, 0x1234);
  EXPECT_EQ(n.kind, Normalized::Kind::kFile);
  EXPECT_EQ(n.map_index, 0);
  EXPECT_EQ(n.file_offset, 0x5234u);
  EXPECT_EQ(normalize(maps, 0x2fff).file_offset, 0x6fffu);
  n = normalize(maps, 0x3000);  // ends are exclusive
  EXPECT_EQ(n.kind, Normalized::Kind::kAnonymous);
  EXPECT_EQ(n.map_index, 1);
  EXPECT_EQ(n.file_offset, 0u);
  EXPECT_EQ(normalize(maps, 0x8010).kind, Normalized::Kind::kPseudo);
  EXPECT_EQ(normalize(maps, 0x8010).file_offset, 0x10u);
  EXPECT_EQ(normalize(maps, 0x10010).kind, Normalized::Kind::kFile);
  for (uint64_t a : {0x0ull, 0xfffull, 0x4000ull, 0x7fffull, 0x9000ull, 0x11000ull, ~0ull})
    EXPECT_EQ(normalize(maps, a).kind, Normalized::Kind::kUnmapped) << std::hex << a;
  EXPECT_EQ(normalize({}, 0x1000).kind, Normalized::Kind::kUnmapped);
}

TEST(Demangle, AgreesWithCxxfilt) {
  for (const char* mangled : {"_ZN2v88internal4Heap14CollectGarbageENS0_15AllocationSpaceENS0_"
                              "23GarbageCollectionReasonENS_15GCCallbackFlagsE",
                              "_ZN4node6Buffer3NewEPN2v87IsolateEm", "_ZNSt6vectorIiSaIiEE9push_backERKi"}) {
    std::string want = run(std::string("c++filt ") + mangled);
    while (!want.empty() && want.back() == '\n') want.pop_back();
    EXPECT_EQ(demangle(mangled), want);
    EXPECT_NE(demangle(mangled), mangled);
  }
  EXPECT_EQ(demangle("malloc"), "malloc");
  EXPECT_EQ(demangle("_Zgarbage"), "_Zgarbage");
  EXPECT_EQ(demangle(""), "");
  std::string huge = "_ZN" + std::string(100000, '9');
  EXPECT_EQ(demangle(huge), huge);
}

TEST_F(SymbolizerTest, OwnFunctionsAndLibc) {
  auto s = ProcessSymbolizer::create(getpid(), options());
  ASSERT_TRUE(s.ok()) << s.error().describe();
  uint64_t grow = reinterpret_cast<uint64_t>(&memlens_symbolize_test::Widget::grow);
  void* getpid_fn = dlsym(RTLD_DEFAULT, "getpid");
  ASSERT_NE(getpid_fn, nullptr);
  uint64_t libc_addr = reinterpret_cast<uint64_t>(getpid_fn) + 2;
  auto frames = (*s)->symbolize({grow, grow + 1, libc_addr, 0x10});
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_EQ(frames[0].kind, FrameKind::kNative);
  EXPECT_EQ(frames[0].function, "memlens_symbolize_test::Widget::grow(int)");
  EXPECT_EQ(frames[0].module, fs::read_symlink("/proc/self/exe").string());
  EXPECT_EQ(frames[1].function, frames[0].function);
  EXPECT_EQ(frames[1].symbol_offset, 1u);

  // libc: the symbol found starts where the dynamic linker says the containing symbol starts.
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(libc_addr), &info), 0);
  EXPECT_EQ(frames[2].kind, FrameKind::kNative);
  EXPECT_NE(frames[2].module.find("libc.so"), std::string::npos) << frames[2].module;
  EXPECT_EQ(libc_addr - frames[2].symbol_offset, reinterpret_cast<uint64_t>(info.dli_saddr))
      << frames[2].function;
  EXPECT_EQ(frames[2].build_id, (*elf::ElfFile::open_path(frames[2].module))->build_id());

  EXPECT_EQ(frames[3].kind, FrameKind::kUnknown);
  EXPECT_EQ(frames[3].function, "0x10");
  EXPECT_EQ((*s)->stats().native, 3u);
  EXPECT_EQ((*s)->stats().unknown, 1u);
}

TEST_F(SymbolizerTest, PieChildNativeAndJitFrames) {
  std::string binary = build("child-pie", "-fPIE -pie");
  Child child(binary);
  auto a = parse_addresses(child.read_line());
  ASSERT_NE(a.jit, 0u);
  auto s = ProcessSymbolizer::create(child.pid(), options());
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_EQ((*s)->perf_map_problem(), "");
  check_native_frames(**s, a, binary, child.pid());

  auto js = (*s)->symbolize({a.jit + 0x10}).front();
  EXPECT_EQ(js.kind, FrameKind::kJs);
  EXPECT_EQ(js.function, "JS:*fakeJs /app/x.js:1:1");
  EXPECT_EQ(js.module, "[perf-map]");
  EXPECT_EQ(js.symbol_offset, 0x10u);
  EXPECT_EQ(js.label(), "JS:*fakeJs /app/x.js:1:1 [js]");

  // JIT code described after the symbolizer read the map: a miss reads what was appended.
  auto before = (*s)->symbolize({a.jit + 0x210}).front();
  EXPECT_EQ(before.kind, FrameKind::kUnknown);
  child.send("more\n");
  ASSERT_EQ(child.read_line(), "ok\n");
  auto late = (*s)->symbolize({a.jit + 0x210}).front();
  EXPECT_EQ(late.kind, FrameKind::kJs);
  EXPECT_EQ(late.function, "JS:~lateFn /app/y.js:2:2");

  // Anonymous memory that no perf map line describes stays, as its address.
  auto anon = (*s)->symbolize({a.jit + 0x900}).front();
  EXPECT_EQ(anon.kind, FrameKind::kUnknown);
  EXPECT_EQ(anon.module, "[anon]");
  char want[32];
  snprintf(want, sizeof want, "0x%llx", static_cast<unsigned long long>(a.jit + 0x900));
  EXPECT_EQ(anon.function, want);
}

TEST_F(SymbolizerTest, NonPieChild) {
  std::string binary = build("child-nopie", "-fno-PIE -no-pie");
  Child child(binary);
  auto a = parse_addresses(child.read_line());
  ASSERT_NE(a.jit, 0u);
  auto elf = elf::ElfFile::open_path(binary);
  ASSERT_TRUE(elf.ok());
  ASSERT_FALSE((*elf)->is_dyn());
  // Linked at a fixed address: the printed address is the symbol's own value.
  EXPECT_EQ(a.c_fn, (*elf)->find_symbol("memlens_child_c")->address);
  auto s = ProcessSymbolizer::create(child.pid(), options());
  ASSERT_TRUE(s.ok()) << s.error().describe();
  check_native_frames(**s, a, binary, child.pid());
}

TEST_F(SymbolizerTest, StrippedFramesKeepModuleAndOffset) {
  std::string binary = build("child-stripped", "-fPIE -pie -s");
  Child child(binary);
  auto a = parse_addresses(child.read_line());
  ASSERT_NE(a.jit, 0u);
  auto s = ProcessSymbolizer::create(child.pid(), options());
  ASSERT_TRUE(s.ok());
  Frame f = (*s)->symbolize({a.static_fn}).front();
  EXPECT_EQ(f.kind, FrameKind::kUnknown);
  EXPECT_EQ(f.module, binary);
  EXPECT_EQ(f.build_id, kBuildId);
  char want[64];
  snprintf(want, sizeof want, "child-stripped+0x%llx", static_cast<unsigned long long>(f.file_offset));
  EXPECT_EQ(f.function, want);
  EXPECT_EQ(read_file_at(binary, f.file_offset, 16), read_memory(child.pid(), a.static_fn, 16));
}

TEST_F(SymbolizerTest, NamesSurviveTheProcessExit) {
  std::string binary = build("child-exit", "-fPIE -pie");
  auto child = std::make_unique<Child>(binary);
  auto a = parse_addresses(child->read_line());
  ASSERT_NE(a.jit, 0u);
  auto s = ProcessSymbolizer::create(child->pid(), options());
  ASSERT_TRUE(s.ok());
  EXPECT_GE((*s)->preload(), 2u);  // the binary, libc, libstdc++, ...
  pid_t pid = child->pid();
  child.reset();  // exits, removes its perf map
  ASSERT_FALSE(proc::process_exists(pid));
  fs::remove(binary);  // and nothing left on disk to read afterwards

  auto frames = (*s)->symbolize({a.grow, a.jit + 4});
  EXPECT_EQ(frames[0].kind, FrameKind::kNative);
  EXPECT_EQ(frames[0].function, "memlens_child::Widget::grow(int)");
  EXPECT_EQ(frames[1].kind, FrameKind::kJs);
  EXPECT_EQ(frames[1].function, "JS:*fakeJs /app/x.js:1:1");
}

TEST_F(SymbolizerTest, WithoutPreloadAnExitedProcessStillGivesModuleAndOffset) {
  std::string binary = build("child-gone", "-fPIE -pie");
  auto child = std::make_unique<Child>(binary);
  auto a = parse_addresses(child->read_line());
  ASSERT_NE(a.jit, 0u);
  auto s = ProcessSymbolizer::create(child->pid(), options());
  ASSERT_TRUE(s.ok());
  child.reset();
  fs::remove(binary);
  Frame f = (*s)->symbolize({a.c_fn}).front();
  EXPECT_EQ(f.kind, FrameKind::kUnknown);
  EXPECT_EQ(f.module, binary);
  EXPECT_EQ(f.function.rfind("child-gone+0x", 0), 0u) << f.function;
  EXPECT_EQ((*s)->stats().module_failures, 1u);
}

TEST_F(SymbolizerTest, ExitedProcessWithTheFileStillOnDisk) {
  std::string binary = build("child-ondisk", "-fPIE -pie");
  auto child = std::make_unique<Child>(binary);
  auto a = parse_addresses(child->read_line());
  ASSERT_NE(a.jit, 0u);
  auto s = ProcessSymbolizer::create(child->pid(), options());
  ASSERT_TRUE(s.ok());
  child.reset();
  // The same file (device and inode) is still there on the host: it is used.
  Frame f = (*s)->symbolize({a.c_fn}).front();
  EXPECT_EQ(f.kind, FrameKind::kNative);
  EXPECT_EQ(f.function, "memlens_child_c");
}

TEST_F(SymbolizerTest, DeletedBinaryOfALiveProcess) {
  std::string binary = build("child-deleted", "-fPIE -pie");
  Child child(binary);
  auto a = parse_addresses(child.read_line());
  ASSERT_NE(a.jit, 0u);
  fs::remove(binary);
  auto s = ProcessSymbolizer::create(child.pid(), options());
  ASSERT_TRUE(s.ok());
  Frame f = (*s)->symbolize({a.grow}).front();
  EXPECT_EQ(f.kind, FrameKind::kNative);
  EXPECT_EQ(f.function, "memlens_child::Widget::grow(int)");
  EXPECT_EQ(f.module, binary);  // without " (deleted)"
}

TEST_F(SymbolizerTest, ModulesAreSharedAcrossProcesses) {
  std::string binary = build("child-shared", "-fPIE -pie");
  Child one(binary), two(binary);
  auto a1 = parse_addresses(one.read_line());
  auto a2 = parse_addresses(two.read_line());
  ASSERT_NE(a1.jit, 0u);
  ASSERT_NE(a2.jit, 0u);
  auto s1 = ProcessSymbolizer::create(one.pid(), options());
  auto s2 = ProcessSymbolizer::create(two.pid(), options());
  ASSERT_TRUE(s1.ok() && s2.ok());
  EXPECT_EQ((*s1)->symbolize({a1.grow}).front().function, "memlens_child::Widget::grow(int)");
  size_t after_first = cache_->size();
  size_t bytes_after_first = cache_->memory_bytes();
  EXPECT_EQ((*s2)->symbolize({a2.grow}).front().function, "memlens_child::Widget::grow(int)");
  EXPECT_EQ(cache_->size(), after_first);
  EXPECT_EQ(cache_->memory_bytes(), bytes_after_first);
}

// A stopped child whose /tmp/perf-PID.map does not exist: node processes of other tests leave theirs
// behind, and pids are reused, so this test's own pid may have one.
struct ChildWithoutPerfMap {
  pid_t pid = -1;
  ChildWithoutPerfMap() {
    for (int i = 0; i < 64 && pid < 0; ++i) {
      pid_t c = fork();
      if (c == 0) {
        pause();
        _exit(0);
      }
      if (c < 0) return;
      if (!std::filesystem::exists("/tmp/perf-" + std::to_string(c) + ".map")) {
        pid = c;
      } else {
        kill(c, SIGKILL);
        waitpid(c, nullptr, 0);
      }
    }
  }
  ~ChildWithoutPerfMap() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

TEST_F(SymbolizerTest, NoPerfMapSaysHowToGetJsNames) {
  ChildWithoutPerfMap child;
  ASSERT_GT(child.pid, 0) << "no pid without a perf map in 64 forks";
  auto s = ProcessSymbolizer::create(child.pid, options());
  ASSERT_TRUE(s.ok());
  EXPECT_NE((*s)->perf_map_problem().find("--perf-basic-prof"), std::string::npos)
      << (*s)->perf_map_problem();
  ProcessSymbolizerOptions off = options();
  off.use_perf_map = false;
  auto s2 = ProcessSymbolizer::create(child.pid, off);
  ASSERT_TRUE(s2.ok());
  EXPECT_NE((*s2)->perf_map_problem().find("disabled"), std::string::npos);
  EXPECT_FALSE(ProcessSymbolizer::create(0x7ffffff0, options()).ok());
}

// A perf map that exists but names nothing says why, with what was wrong in it; once a valid line comes,
// the problem is gone.
TEST_F(SymbolizerTest, PerfMapWithoutAValidLineSaysWhy) {
  std::string path = "/tmp/perf-" + std::to_string(getpid()) + ".map";
  struct Remove {
    std::string path;
    ~Remove() { std::remove(path.c_str()); }
  } remove{path};
  std::ofstream(path) << "not a line\nzz 10 name\n" << std::string(200 << 10, 'x') << "\n";
  auto s = ProcessSymbolizer::create(getpid(), options());
  ASSERT_TRUE(s.ok());
  const std::string& problem = (*s)->perf_map_problem();
  EXPECT_NE(problem.find("has no valid line"), std::string::npos) << problem;
  EXPECT_NE(problem.find(path), std::string::npos) << problem;
  EXPECT_NE(problem.find("2 line(s) are malformed and 1 longer"), std::string::npos) << problem;

  std::ofstream(path, std::ios::app) << "1000 10 JS:*named\n";
  ASSERT_TRUE((*s)->refresh_perf_map().ok());
  EXPECT_EQ((*s)->perf_map_problem(), "");
  ASSERT_NE((*s)->perf_map(), nullptr);
  EXPECT_EQ((*s)->perf_map()->lookup(0x1000)->name, "JS:*named");

  std::remove(path.c_str());
  std::ofstream(path) << "";
  auto empty = ProcessSymbolizer::create(getpid(), options());
  ASSERT_TRUE(empty.ok());
  EXPECT_NE((*empty)->perf_map_problem().find("is empty"), std::string::npos) << (*empty)->perf_map_problem();
}

}  // namespace
}  // namespace memlens::symbolize
