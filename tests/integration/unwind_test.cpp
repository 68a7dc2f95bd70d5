// Stacks through code built without frame pointers, unwound by the files' own unwind tables (.eh_frame).
// tests/programs/unwind_chain.c is built as Debian builds its C library (-fomit-frame-pointer) and
// allocates through a known chain, main -> unwind_level_one -> unwind_level_two -> unwind_level_three, into
// the C library (malloc and calloc that mmap, memset that faults, a direct mmap), a known number of rounds:
//  - every mmap_growth and page_faults stack with one of those functions holds the whole chain from main,
//    and reaches the thread's entry (__libc_start_main / _start);
//  - the mmap_growth bytes under the whole chain are at least the rounds' own mappings (3 x 1 MiB each),
//    the sampled page_faults bytes under it at least 90% of the pages the rounds' memsets touch;
//  - report.json's unwind section names the tables' memory (under the budget) and the walks.
#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kChain = "main;unwind_level_one;unwind_level_two;unwind_level_three";
constexpr int64_t kChunk = 1 << 20;  // the program's CHUNK
constexpr int kFaultPeriod = 16;

struct Folded {
  int64_t chain_bytes = 0;     // under the whole chain
  int64_t partial_bytes = 0;   // with a function of the chain but not the whole chain from main
  int64_t no_entry_bytes = 0;  // under the whole chain but not reaching the thread's entry
  std::string bad_example;
};

// Calls visit(line, stack, value) for each line "frame;frame;... value" of a folded file.
template <typename Visit>
void for_each_folded(const std::string& path, Visit visit) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    visit(line, line.substr(0, sp), std::stoll(line.substr(sp + 1)));
  }
}

Folded read_chain(const std::string& path) {
  Folded f;
  for_each_folded(path, [&](const std::string& line, const std::string& stack, int64_t v) {
    if (stack.find("unwind_level_") == std::string::npos) return;
    if (stack.find(kChain) == std::string::npos) {
      f.partial_bytes += v;
      if (f.bad_example.empty()) f.bad_example = line;
      return;
    }
    f.chain_bytes += v;
    if (stack.find("__libc_start_main") == std::string::npos && stack.rfind("_start", 0) != 0) {
      f.no_entry_bytes += v;
      if (f.bad_example.empty()) f.bad_example = line;
    }
  });
  return f;
}

class Unwind : public ::testing::Test {
 protected:
  // One traced run of the program shared by the tests.
  static void SetUpTestSuite() {
    if (!missing_tracing_capability().empty()) return;
    dir_ = new TempDir();
    out_ = dir_->file("out");
    Child c =
        Child::spawn({memlens_bin(), "run", "-q", "--no-fds", "--no-v8", "--fault-sample-period",
                      std::to_string(kFaultPeriod), "-o", out_, "--", test_program("unwind_chain"), "1.5"},
                     dir_->path(), "memlens");
    auto rc = c.wait(60s);
    if (rc != 0) {
      problem_ = (rc ? "memlens exited with " + std::to_string(*rc) : std::string("memlens timed out")) +
                 ": " + c.stderr_text();
      return;
    }
    auto lines = json_lines(c.stdout_text());
    auto final_line = last_event(lines, "final");
    if (!final_line) {
      problem_ = "the program printed no final line: " + c.stdout_text();
      return;
    }
    rounds_ = (*final_line)["rounds"].get<int64_t>();
    report_ = load_report(out_);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    MEMLENS_REQUIRE_TRACING();
    ASSERT_TRUE(problem_.empty()) << problem_;
    ASSERT_GT(rounds_, 10) << "the program did too little work";
  }

  static inline TempDir* dir_ = nullptr;
  static inline std::string out_, problem_;
  static inline int64_t rounds_ = 0;
  static inline json report_;
};

// The bytes of a profile under the whole chain, after checking that no stack holds part of it only.
int64_t whole_chain_bytes(const std::string& out, const std::string& kind, int64_t rounds) {
  Folded f = read_chain(out + "/" + kind + ".folded");
  std::cout << kind << ": " << f.chain_bytes << " bytes under the whole chain, " << f.partial_bytes
            << " under part of it, " << rounds << " rounds\n";
  EXPECT_EQ(f.partial_bytes, 0) << "e.g. " << f.bad_example;
  EXPECT_EQ(f.no_entry_bytes, 0) << "e.g. " << f.bad_example;
  return f.chain_bytes;
}

// The rounds' own mappings are 3 x 1 MiB each (malloc's a page more). Their stacks are sampled by bytes at
// the default (report.json's mmap_growth_sampling): under a mean of at most M bytes per stack, each of the
// N calls of n bytes is kept with the chance n/M and weighs M/n, so the profile's bytes estimate theirs with
// a standard deviation of at most n * sqrt(N * (M/n - 1)); exact (every call kept) while M <= n.
TEST_F(Unwind, MmapStacksHoldTheWholeChainFromMain) {
  ASSERT_EQ(report_["processes"].size(), 1u);
  const json& sampling = report_["processes"][0].value("mmap_growth_sampling", json::object());
  double most = sampling.value("mean_bytes_per_stack_max", 0.0);
  double calls = static_cast<double>(rounds_ * 3);
  double sd = most > kChunk ? kChunk * std::sqrt(calls * (most / kChunk - 1)) : 0;
  int64_t truth = rounds_ * 3 * kChunk;
  int64_t got = whole_chain_bytes(out_, "mmap_growth", rounds_);
  std::cout << "sampling " << sampling.dump() << ": " << got << " bytes against " << truth << ", sd " << sd
            << "\n";
  EXPECT_GE(static_cast<double>(got), static_cast<double>(truth) - 4 * sd)
      << "the rounds' mappings are not all under the chain";
  EXPECT_LE(static_cast<double>(got), static_cast<double>(truth) * 1.01 + 4 * sd)
      << "more growth under the chain than the rounds mapped";
}

TEST_F(Unwind, FaultStacksHoldTheWholeChainFromMain) {
  // Each round's memsets touch 2 MiB of fresh pages; one fault in kFaultPeriod is sampled.
  EXPECT_GE(whole_chain_bytes(out_, "page_faults", rounds_), rounds_ * 2 * kChunk * 9 / 10);
}

TEST_F(Unwind, ReportNamesTheTablesAndTheWalks) {
  ASSERT_TRUE(report_.contains("unwind")) << report_.dump().substr(0, 2000);
  const json& u = report_["unwind"];
  std::cout << "unwind: " << u.dump() << "\n";
  EXPECT_GT(u["table_bytes"].get<uint64_t>(), 0u);
  EXPECT_LE(u["table_bytes"].get<uint64_t>(), u["table_budget_bytes"].get<uint64_t>());
  EXPECT_GE(u["files"].get<uint64_t>(), 2u);  // the program and the C library at least
  EXPECT_GT(u["walks"]["walks"].get<uint64_t>(), 0u);
  EXPECT_GT(u["walks"]["frames_by_table"].get<uint64_t>(), 0u);
}

// The C library's frames under the program's chain in a profile's stacks: (exact names, inexact "name+0x..."
// names, bare "libc.so.6+0x..." frames).
struct LibcNames {
  std::set<std::string> exact, inexact, bare;
};

LibcNames libc_frames(const std::string& path) {
  LibcNames n;
  for_each_folded(path, [&](const std::string&, const std::string& stack, int64_t) {
    std::istringstream frames(stack);
    std::string f;
    bool below_chain = false;  // frames called by unwind_level_three: the C library's
    while (std::getline(frames, f, ';')) {
      if (below_chain && f.rfind("libc.so.6+0x", 0) == 0)
        n.bare.insert(f);
      else if (below_chain)
        (f.find("+0x") != std::string::npos ? n.inexact : n.exact).insert(f);
      below_chain |= f == "unwind_level_three";
    }
  });
  return n;
}

TEST_F(Unwind, CLibraryFramesAreNamedFromItsDebugFile) {
  for (const char* kind : {"mmap_growth", "page_faults"}) {
    LibcNames n = libc_frames(out_ + "/" + kind + ".folded");
    EXPECT_TRUE(n.bare.empty()) << kind << ": " << *n.bare.begin();
    EXPECT_TRUE(n.inexact.empty()) << kind << ": " << *n.inexact.begin();
    EXPECT_FALSE(n.exact.empty()) << kind;
  }
  // malloc's internal functions have no exported symbol: only the debug file names them.
  EXPECT_TRUE(libc_frames(out_ + "/mmap_growth.folded").exact.count("sysmalloc"));
}

// The program copied with its .eh_frame_hdr damaged, traced with the debug files hidden: the copy is named
// in report.json with the reason, the trace goes on, and the C library's internal frames are named after
// their nearest exported symbol, marked by the offset ("malloc+0x..."), never as exact names.
TEST_F(Unwind, CorruptTableIsReportedAndHiddenDebugFilesGiveInexactNames) {
  TempDir dir;
  std::string copy = dir.file("unwind_chain_damaged");
  std::filesystem::copy_file(test_program("unwind_chain"), copy);
  std::string hdr = run_shell("readelf -SW " + copy + " | awk '$2==\".eh_frame_hdr\"{print $5}'").output;
  ASSERT_FALSE(hdr.empty());
  {
    std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::stoull(hdr, nullptr, 16)));
    f.put('\x07');  // an .eh_frame_hdr version no one writes
  }
  std::string out = dir.file("out");
  Child c = Child::spawn({"/usr/bin/env", "MEMLENS_DEBUG_DIRS=" + dir.path() + "/no-debug", memlens_bin(),
                          "run", "-q", "--no-fds", "--no-v8", "-o", out, "--", copy, "0.5"},
                         dir.path(), "memlens");
  ASSERT_EQ(c.wait(60s), 0) << c.stderr_text();
  ASSERT_TRUE(last_event(json_lines(c.stdout_text()), "final")) << c.stdout_text();
  json report = load_report(out);
  bool named = false;
  for (const auto& f : report["unwind"]["failed"])
    named |= f["file"] == copy && f["reason"].get<std::string>().find(".eh_frame_hdr") != std::string::npos;
  EXPECT_TRUE(named) << report["unwind"].dump();
  LibcNames n;
  for_each_folded(out + "/mmap_growth.folded", [&](const std::string&, const std::string& stack, int64_t) {
    std::istringstream frames(stack);
    std::string f;
    while (std::getline(frames, f, ';')) {
      if (f.rfind("libc.so.6+0x", 0) == 0) n.bare.insert(f);
      if (f == "sysmalloc") n.exact.insert(f);
      if (f.find("+0x") != std::string::npos) n.inexact.insert(f);
    }
  });
  EXPECT_TRUE(n.exact.empty()) << "sysmalloc named exactly without its debug file";
  EXPECT_FALSE(n.inexact.empty()) << "no frame named after its nearest symbol";
  EXPECT_TRUE(n.bare.empty()) << *n.bare.begin();
}

// Node: the share of the mmap_growth and sampled page_faults bytes whose stacks reach a thread's entry (the
// main thread's start code, a thread's start_thread/clone3, or the dynamic loader's entry for what it does
// before main), on a scenario that grows native memory through Buffers.
struct EntryShare {
  int64_t total = 0, reaching = 0;
  std::string example;  // a heavy stack that does not reach an entry
  int64_t example_bytes = 0;
  double share() const { return total ? static_cast<double>(reaching) / static_cast<double>(total) : 0; }
};

EntryShare entry_share(const std::string& path) {
  static const char* kEntries[] = {
      "_start",  "__libc_start_main", "__libc_start_call_main", "start_thread", "clone3", "__clone3", "clone",
      "__clone", "_dl_start",         "_dl_start_user"};
  EntryShare e;
  for_each_folded(path, [&](const std::string& line, const std::string& stack, int64_t v) {
    std::string root = stack.substr(0, stack.find(';'));
    e.total += v;
    // The loader's own entry (_start of ld.so) has no symbol: it is named by its file; so is the _start of
    // a stripped executable (the libnode layout's wrapper runs sh and unshare), the only caller of
    // __libc_start_main.
    bool reaches =
        root.rfind("ld-linux-x86-64.so.2+", 0) == 0 || stack.find(";__libc_start_main;") == root.size();
    for (const char* name : kEntries) reaches |= root == name;
    if (reaches)
      e.reaching += v;
    else if (v > e.example_bytes) {
      e.example_bytes = v;
      e.example = line;
    }
  });
  return e;
}

void expect_node_stacks_reach_entries(const std::string& node, const std::string& label) {
  TempDir dir;
  std::string out = dir.file("out");
  Child c = Child::spawn({memlens_bin(), "run", "-q", "--no-fds", "--fault-sample-period", "16", "-o", out,
                          "--", node, scenario("buffer_records_leak"), "--duration", "3"},
                         dir.path(), "memlens");
  auto rc = c.wait(90s);
  ASSERT_EQ(rc, 0) << c.stderr_text();
  for (const char* kind : {"mmap_growth", "page_faults"}) {
    EntryShare e = entry_share(out + "/" + kind + ".folded");
    std::cout << label << " " << kind << ": " << e.reaching << " of " << e.total << " bytes ("
              << 100 * e.share() << "%) in stacks that reach a thread's entry\n";
    ASSERT_GT(e.total, 0) << kind;
    // What falls short: library init code without call-frame information (crti's _init), V8's
    // deserializer recursing deeper than ML_MAX_STACK_DEPTH frames at start-up.
    EXPECT_GE(e.share(), 0.95) << kind << ": the heaviest stack that does not: " << e.example;
  }
}

TEST(UnwindNode, Node20StacksReachAThreadEntry) {
  MEMLENS_REQUIRE_TRACING();
  expect_node_stacks_reach_entries(node_bin(), "node " + std::string("20"));
}

// memlens run compiles the tables of what the command will run before letting it start, so that this work
// (a tenth of a second for node) does not take the CPU from the command's own start-up, and its first
// stacks are walked with them. Ground truth: the executable files node itself sees mapped
// (/proc/self/maps), each the same file (device and inode) as one report.json lists as prepared.
TEST(UnwindNode, TablesOfWhatTheCommandMapsAreCompiledBeforeItStarts) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  std::string out = dir.file("out"), maps = dir.file("maps.txt");
  Child c = Child::spawn(
      {memlens_bin(), "run", "-q", "--no-fds", "--no-v8", "-o", out, "--", node_bin(), "-e",
       "const fs = require('fs'); fs.writeFileSync(process.argv[1], fs.readFileSync('/proc/self/maps'))",
       maps},
      dir.path(), "memlens");
  auto rc = c.wait(60s);
  ASSERT_EQ(rc, 0) << c.stderr_text();
  json report = load_report(out);
  ASSERT_TRUE(report.contains("unwind")) << report.dump().substr(0, 2000);
  json prepared = report["unwind"].value("prepared_files", json::array());
  std::cout << "prepared: " << prepared.dump() << "\n";
  // A regular file's device and inode; "" for anything else.
  auto identity = [](const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)
               ? std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)
               : std::string();
  };
  std::set<std::string> prepared_ids;
  for (const auto& f : prepared) prepared_ids.insert(identity(f.get<std::string>()));
  prepared_ids.erase("");
  // A file whose table could not be loaded (no .eh_frame_hdr, over the budget) is named there instead.
  std::set<std::string> failed_ids;
  for (const auto& f : report["unwind"].value("failed", json::array())) {
    std::cout << "failed: " << f.dump() << "\n";
    failed_ids.insert(identity(f.value("file", "")));
  }
  std::ifstream in(maps);
  std::string line;
  std::set<std::string> mapped;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string range, perms, offset, dev, inode, path;
    fields >> range >> perms >> offset >> dev >> inode >> path;
    if (perms.size() == 4 && perms[2] == 'x' && !path.empty() && path.front() == '/' &&
        !identity(path).empty())
      mapped.insert(path);
  }
  ASSERT_GE(mapped.size(), 2u) << "node's maps name no executable files: " << maps;
  // node and the C library at least have tables.
  EXPECT_GE(prepared_ids.size(), 2u);
  for (const auto& path : mapped)
    EXPECT_TRUE(prepared_ids.count(identity(path)) || failed_ids.count(identity(path)))
        << path << " is mapped executable by node but its table was not compiled before node started";
}

class UnwindNodeBuilds : public ::testing::TestWithParam<std::string> {};

TEST_P(UnwindNodeBuilds, StacksReachAThreadEntry) {
  MEMLENS_REQUIRE_TRACING();
  REQUIRE_NODE(node, GetParam());
  expect_node_stacks_reach_entries(node, "node " + GetParam());
}

INSTANTIATE_TEST_SUITE_P(Majors, UnwindNodeBuilds, ::testing::Values("18", "22", "24"));

// Debian's node: the executable is a stub, the code is in libnode and the libraries it needs, which the
// dynamic loader maps after exec while node's first threads already allocate.
TEST(UnwindNode, LibnodeStacksReachAThreadEntry) {
  MEMLENS_REQUIRE_TRACING();
  REQUIRE_NODE(node, "libnode");
  expect_node_stacks_reach_entries(node, "node libnode");
}

}  // namespace
}  // namespace memlens::testing
