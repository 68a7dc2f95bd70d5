// compile_cfi against binutils: a program compiled by the test without frame pointers (stack frames of
// several shapes, a frame set up with rbp for alloca, the PLT) and the C library; every row binutils'
// `readelf --debug-dump=frames-interp` prints must be the walker's row at that pc. Corrupt copies are
// refused with the file named.
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <link.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "../common/shell.h"
#include "elf/cfi_table.h"
#include "elf/elf_file.h"

namespace memlens::elf {
namespace {

namespace fs = std::filesystem;

constexpr char kSource[] = R"(
#include <string.h>
__attribute__((noinline)) long deep(int n, char* buf) {
  char local[300]; memset(local, n, sizeof local);
  for (int i = 0; i < n; i++) buf[i] = local[i % 300];
  return local[n % 300];
}
__attribute__((noinline)) long with_alloca(int n) { char* b = __builtin_alloca(n + 16); return deep(n, b) + b[0]; }
int main(int argc, char** argv) { (void)argv; return (int)with_alloca(argc * 100); }
)";

using memlens::testing::run;

class CfiTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("memlens-cfi-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "p.c") << kSource;
    bin_ = (dir_ / "p").string();
    std::string cmd = "cc -O2 -fomit-frame-pointer -fno-optimize-sibling-calls -o " + bin_ + " " +
                      (dir_ / "p.c").string() + " 2>&1";
    ASSERT_EQ(run(cmd), "") << cmd;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static Result<CfiTable> compile(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error("open " + path, errno);
    auto t = compile_cfi(fd, path);
    close(fd);
    return t;
  }

  fs::path dir_;
  std::string bin_;
};

const ml_unwind_row* row_at(const CfiTable& t, uint64_t pc) {
  const ml_unwind_row* found = nullptr;
  for (const auto& r : t.rows)
    if (r.pc <= pc) found = &r;
  return found;
}

// Every row binutils interprets is the same rule in the compiled table. Returns the rows compared.
size_t compare_with_readelf(const std::string& path, const CfiTable& t) {
  std::istringstream in(run("readelf --debug-dump=frames-interp " + path));
  std::string line;
  std::vector<std::string> columns, cie_columns;
  std::vector<std::string> cie_row;
  bool in_cie = false;
  uint64_t fde_start = 0, fde_end = 0;
  bool fde_has_rows = false;
  size_t compared = 0;
  auto check = [&](uint64_t loc, const std::vector<std::string>& cols, const std::vector<std::string>& vals) {
    SCOPED_TRACE(::testing::Message() << path << " pc 0x" << std::hex << loc);
    const ml_unwind_row* r = row_at(t, loc);
    ASSERT_NE(r, nullptr);
    std::string cfa, rbp = "u", ra = "u";
    for (size_t i = 0; i < cols.size() && i < vals.size(); ++i) {
      if (cols[i] == "CFA") cfa = vals[i];
      if (cols[i] == "rbp") rbp = vals[i];
      if (cols[i] == "ra") ra = vals[i];
    }
    ++compared;
    if (ra != "u" &&
        ra != "c-8") {  // a return address elsewhere (signal frames): not a shape the walker reads
      EXPECT_EQ(r->cfa_kind, ML_CFA_UNSUPPORTED) << ra;
      return;
    }
    if (ra == "u") {
      EXPECT_EQ(r->cfa_kind, ML_CFA_END);
      return;
    }
    if (cfa == "exp") {
      EXPECT_EQ(r->cfa_kind, ML_CFA_PLT);
      return;
    }
    ASSERT_GT(cfa.size(), 4u);
    EXPECT_EQ(r->cfa_kind, cfa.substr(0, 4) == "rsp+" ? ML_CFA_RSP : ML_CFA_RBP) << cfa;
    EXPECT_EQ(r->cfa_offset, std::stoi(cfa.substr(4))) << cfa;
    if (rbp == "u") {
      EXPECT_EQ(r->rbp_kind, ML_RBP_SAME);
    } else {
      ASSERT_EQ(rbp.substr(0, 2), "c-");
      EXPECT_EQ(r->rbp_kind, ML_RBP_AT_CFA);
      EXPECT_EQ(r->rbp_offset, -std::stoi(rbp.substr(2)));
    }
  };
  auto split = [](const std::string& s) {
    std::istringstream ss(s);
    std::vector<std::string> v;
    std::string w;
    while (ss >> w) {
      if (w[0] == '(' && !v.empty())  // "r10 (r10)": a register rule's name, one column
        v.back() += " " + w;
      else
        v.push_back(w);
    }
    return v;
  };
  auto end_fde = [&]() {
    if (fde_start && !fde_has_rows && !cie_row.empty()) check(fde_start, cie_columns, cie_row);
    fde_start = 0;
  };
  while (std::getline(in, line)) {
    auto w = split(line);
    if (w.size() >= 4 && w[3] == "CIE") {
      end_fde();
      in_cie = true;
      cie_row.clear();
    } else if (w.size() >= 5 && w[3] == "FDE") {
      end_fde();
      in_cie = false;
      fde_has_rows = false;
      auto pc = line.substr(line.find("pc=") + 3);
      fde_start = std::stoull(pc.substr(0, pc.find("..")), nullptr, 16);
      fde_end = std::stoull(pc.substr(pc.find("..") + 2), nullptr, 16);
    } else if (!w.empty() && w[0] == "LOC") {
      columns.assign(w.begin() + 1, w.end());
      if (in_cie) cie_columns = columns;
    } else if (w.size() >= 2 && w[0].size() == 16 &&
               w[0].find_first_not_of("0123456789abcdef") == std::string::npos) {
      std::vector<std::string> vals(w.begin() + 1, w.end());
      if (in_cie) {
        cie_row = vals;
      } else if (fde_start && std::stoull(w[0], nullptr, 16) < fde_end) {  // a row at the end covers nothing
        fde_has_rows = true;
        check(std::stoull(w[0], nullptr, 16), columns, vals);
      }
    }
  }
  end_fde();
  return compared;
}

TEST_F(CfiTableTest, RowsAreThoseBinutilsInterprets) {
  auto t = compile(bin_);
  ASSERT_TRUE(t) << t.error().describe();
  ASSERT_FALSE(t->rows.empty());
  for (size_t i = 1; i < t->rows.size(); ++i) ASSERT_LT(t->rows[i - 1].pc, t->rows[i].pc);
  size_t n = compare_with_readelf(bin_, *t);
  EXPECT_GE(n, t->functions);  // at least one row per function was compared
  bool rbp_frame = false;      // with_alloca's frame is addressed from rbp: that shape was met
  for (const auto& r : t->rows) rbp_frame |= r.cfa_kind == ML_CFA_RBP;
  EXPECT_TRUE(rbp_frame);
}

TEST_F(CfiTableTest, CLibraryRowsAreThoseBinutilsInterprets) {
  // The C library this test runs with (Debian builds it without frame pointers).
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(&qsort), &info), 0);
  std::string libc = info.dli_fname;
  auto t = compile(libc);
  ASSERT_TRUE(t) << t.error().describe();
  EXPECT_GT(t->functions, 1000u);
  // At a function's first instruction the return address is at rsp: CFA = rsp + 8.
  const ml_unwind_row* r =
      row_at(*t, reinterpret_cast<uint64_t>(info.dli_saddr) - reinterpret_cast<uint64_t>(info.dli_fbase));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->cfa_kind, ML_CFA_RSP);
  EXPECT_EQ(r->cfa_offset, 8);
  EXPECT_GT(compare_with_readelf(libc, *t), t->functions);
}

// A copy of the program with one section's bytes overwritten.
std::string damaged_copy(const fs::path& dir, const std::string& bin, const std::string& section, size_t skip,
                         char fill) {
  std::string out = (dir / ("damaged" + section)).string();
  fs::copy_file(bin, out, fs::copy_options::overwrite_existing);
  auto elf = ElfFile::open_path(bin);
  if (!elf) return "";
  for (const auto& s : (*elf)->sections()) {
    if (s.name != section || s.size <= skip) continue;
    std::fstream f(out, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(s.file_offset + skip));
    std::string junk(s.size - skip, fill);
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    return out;
  }
  return "";
}

TEST_F(CfiTableTest, CorruptTablesAreRefusedWithTheFileNamed) {
  for (auto [section, skip, fill] :
       {std::tuple{".eh_frame_hdr", 0, '\x07'}, std::tuple{".eh_frame_hdr", 12, '\x7f'},
        std::tuple{".eh_frame", 0, '\xff'}}) {
    SCOPED_TRACE(::testing::Message() << section << " from " << skip);
    std::string copy = damaged_copy(dir_, bin_, section, static_cast<size_t>(skip), fill);
    ASSERT_FALSE(copy.empty());
    auto t = compile(copy);
    ASSERT_FALSE(t) << "a damaged " << section << " was compiled into " << t->rows.size() << " rows";
    EXPECT_NE(t.error().describe().find(copy), std::string::npos) << t.error().describe();
  }
}

TEST_F(CfiTableTest, AFileWithoutUnwindTablesIsRefused) {
  std::string stripped = (dir_ / "noeh").string();
  ASSERT_EQ(run("objcopy --remove-section .eh_frame_hdr --remove-section .eh_frame " + bin_ + " " + stripped +
                " 2>&1"),
            "");
  auto t = compile(stripped);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().describe().find("no .eh_frame_hdr"), std::string::npos) << t.error().describe();
}

}  // namespace
}  // namespace memlens::elf
