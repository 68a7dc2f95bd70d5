// Names of a stripped file's internal functions from its separate debug file, found as gdb finds it (by
// build-id under a debug directory, or by .gnu_debuglink beside the file), against a program compiled by
// the test with a static function that only .symtab names; without a debug file the frame is named after
// the nearest exported symbol with the offset, and said to be inexact.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../common/shell.h"
#include "symbolize/module.h"

namespace memlens::symbolize {
namespace {

namespace fs = std::filesystem;
using memlens::testing::run;

constexpr char kSource[] = R"(
static __attribute__((noinline, used)) int memlens_internal(int x) { return x * 7 + 1; }
__attribute__((noinline)) int memlens_exported(int x) { return memlens_internal(x) - 2; }
int main(int argc, char** argv) { (void)argv; return memlens_exported(argc); }
)";

class DebugFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("memlens-debug-" + std::to_string(getpid()));
    fs::create_directories(dir_ / "bin");
    std::ofstream(dir_ / "p.c") << kSource;
    full_ = (dir_ / "p.full").string();
    stripped_ = (dir_ / "bin" / "p").string();
    ASSERT_EQ(run("cc -O2 -rdynamic -Wl,--build-id -o " + full_ + " " + (dir_ / "p.c").string() + " 2>&1"),
              "");
    ASSERT_EQ(run("objcopy --only-keep-debug " + full_ + " " + (dir_ / "p.debug").string() + " 2>&1"), "");
    ASSERT_EQ(run("strip -o " + stripped_ + " " + full_ + " 2>&1"), "");
    // The internal function's address, from the unstripped program.
    auto full = elf::ElfFile::open_path(full_);
    ASSERT_TRUE(full);
    auto s = (*full)->find_symbol("memlens_internal");
    ASSERT_TRUE(s);
    internal_ = s->address;
    ASSERT_FALSE((*full)->build_id().empty());
    build_id_ = (*full)->build_id();
    setenv("MEMLENS_DEBUG_DIRS", (dir_ / "debug").string().c_str(), 1);
  }
  void TearDown() override {
    unsetenv("MEMLENS_DEBUG_DIRS");
    fs::remove_all(dir_);
  }
  // The module of the stripped program, as a fresh cache reads it.
  std::shared_ptr<const Module> load() {
    auto file = elf::ElfFile::open_path(stripped_);
    if (!file) return nullptr;
    ModuleCache cache;
    int fd = open(stripped_.c_str(), O_RDONLY | O_CLOEXEC);
    auto m = cache.get(fd, stripped_);
    close(fd);
    return m ? *m : nullptr;
  }

  fs::path dir_;
  std::string full_, stripped_, build_id_;
  uint64_t internal_ = 0;
};

TEST_F(DebugFileTest, ByBuildIdUnderADebugDirectory) {
  fs::path by_id = dir_ / "debug" / ".build-id" / build_id_.substr(0, 2);
  fs::create_directories(by_id);
  fs::copy_file(dir_ / "p.debug", by_id / (build_id_.substr(2) + ".debug"));
  auto m = load();
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->debug_file().empty());
  auto hit = m->lookup(internal_ + 1);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->mangled, "memlens_internal");
  EXPECT_TRUE(m->has_all_functions());
}

TEST_F(DebugFileTest, ByDebuglinkBesideTheFile) {
  ASSERT_EQ(run("objcopy --add-gnu-debuglink=" + (dir_ / "p.debug").string() + " " + stripped_ + " 2>&1"),
            "");
  fs::create_directories(dir_ / "bin" / ".debug");
  fs::copy_file(dir_ / "p.debug", dir_ / "bin" / ".debug" / "p.debug", fs::copy_options::overwrite_existing);
  auto m = load();
  ASSERT_TRUE(m);
  auto hit = m->lookup(internal_ + 1);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->mangled, "memlens_internal");
}

TEST_F(DebugFileTest, WithoutADebugFileOnlyTheNearestSymbolIsKnown) {
  auto m = load();
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->debug_file().empty());
  EXPECT_FALSE(m->has_all_functions());
  auto hit = m->lookup(internal_ + 1);
  EXPECT_TRUE(!hit || hit->mangled != "memlens_internal");
}

}  // namespace
}  // namespace memlens::symbolize
