// The perf map parser and reader: fixtures with malformed, overflowing and very long lines; a growing file;
// files a root tool must refuse (symlink, foreign owner) and one larger than the bound.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/safe_file.h"
#include "symbolize/perf_map.h"

namespace memlens::symbolize {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) {
  auto r = read_text_file(std::string(MEMLENS_TEST_DATA) + "/symbolize/" + name);
  EXPECT_TRUE(r.ok()) << name;
  return r.ok() ? *r : std::string();
}

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

TEST(PerfMapParse, FixtureWithMalformedAndOverflowingLines) {
  PerfMap map;
  std::string text = fixture("perf-malformed.map");
  EXPECT_EQ(map.parse(text), text.size());
  // The fixture's 18 lines: 6 good, 1 empty, 11 malformed of which 3 overflow 64 bits (see the file).
  EXPECT_EQ(map.stats().lines, 18u);
  EXPECT_EQ(map.stats().entries, 6u);
  EXPECT_EQ(map.size(), 6u);
  EXPECT_EQ(map.stats().malformed, 11u);
  EXPECT_EQ(map.stats().overflowing, 3u);
  EXPECT_FALSE(map.stats().truncated);

  auto alpha = map.lookup(0x1000);
  ASSERT_TRUE(alpha);
  EXPECT_EQ(alpha->name, "JS:*alpha /app/a.js:1:1");
  EXPECT_EQ(alpha->start, 0x1000u);
  EXPECT_EQ(alpha->size, 0x100u);
  EXPECT_EQ(map.lookup(0x10ff)->name, "JS:*alpha /app/a.js:1:1");
  EXPECT_FALSE(map.lookup(0x1100));
  EXPECT_FALSE(map.lookup(0xfff));
  // A later line overlapping an earlier one wins where they overlap, and only there.
  EXPECT_EQ(map.lookup(0x1080)->name, "JS:*beta inside alpha");
  EXPECT_EQ(map.lookup(0x108f)->name, "JS:*beta inside alpha");
  EXPECT_EQ(map.lookup(0x1090)->name, "JS:*alpha /app/a.js:1:1");
  EXPECT_EQ(map.lookup(0x107f)->name, "JS:*alpha /app/a.js:1:1");

  EXPECT_EQ(map.lookup(0x5000)->name, " two spaces keep the leading space");
  EXPECT_EQ(map.lookup(0x601f)->name, "JS:~with prefix");
  EXPECT_EQ(map.lookup(0x8005)->name, "LazyCompile:name with (parens) and spaces file.js:3:4");
  EXPECT_FALSE(map.lookup(0x3000));
  EXPECT_FALSE(map.lookup(0x4000));
  EXPECT_FALSE(map.lookup(0x7000));
  // The highest representable range is accepted; nothing wraps to low addresses.
  EXPECT_EQ(map.lookup(0xfffffffffffffffeull)->name, "JS:last byte /app/b.js:2:2");
  EXPECT_FALSE(map.lookup(0xffffffffffffffffull));
  EXPECT_FALSE(map.lookup(0));
  EXPECT_FALSE(map.lookup(0xf0));
}

TEST(PerfMapParse, LaterLinesWinIncludingCodeMovedBack) {
  PerfMap map;
  map.parse("100 100 first\n180 10 second\n100 100 third\n");
  // third covers first and second entirely: it came last.
  for (uint64_t a : {0x100ull, 0x180ull, 0x18full, 0x1ffull}) EXPECT_EQ(map.lookup(a)->name, "third") << a;
  map.parse("150 10 fourth\n");
  EXPECT_EQ(map.lookup(0x155)->name, "fourth");
  EXPECT_EQ(map.lookup(0x160)->name, "third");
  EXPECT_EQ(map.lookup(0x14f)->name, "third");
}

TEST(PerfMapParse, VeryLongLineIsCutAndTheNextLineStillParses) {
  std::string longname(1 << 20, 'x');
  std::string text =
      "1000 10 " + longname + "\n2000 10 after\n3000 10 " + std::string(1 << 20, '9') + "0 junk\n";
  PerfMap map;
  EXPECT_EQ(map.parse(text), text.size());
  EXPECT_EQ(map.stats().entries, 3u);
  EXPECT_EQ(map.stats().names_cut, 2u);
  auto first = map.lookup(0x1005);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->name.size(), PerfMap::kMaxNameBytes);
  EXPECT_EQ(first->name, longname.substr(0, PerfMap::kMaxNameBytes));
  EXPECT_EQ(map.lookup(0x2000)->name, "after");
  // Memory stays proportional to what is kept, not to the line length.
  EXPECT_LT(map.memory_bytes(), 64u << 10);

  // A start field a megabyte long is not a number.
  PerfMap bad;
  bad.parse(std::string(1 << 20, 'f') + " 10 x\n");
  EXPECT_EQ(bad.stats().malformed, 1u);
  EXPECT_EQ(bad.size(), 0u);
}

TEST(PerfMapParse, PartialLastLineIsLeftForLater) {
  PerfMap map;
  std::string text = "1000 10 one\n2000 10 tw";
  EXPECT_EQ(map.parse(text), std::string("1000 10 one\n").size());
  EXPECT_EQ(map.size(), 1u);
  EXPECT_EQ(map.parse("2000 10 two\r\n"), 13u);
  EXPECT_EQ(map.lookup(0x2000)->name, "two");  // a CR before the newline is not part of the name
  EXPECT_EQ(map.parse("3000 10 three", /*final=*/true), 13u);
  EXPECT_EQ(map.lookup(0x3000)->name, "three");
}

TEST(ProcessIdentity, NamespacedPidAndAllUids) {
  auto id = parse_process_identity(fixture("status-container.txt"), 4242);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->ns_pid, 1);  // the innermost namespace's pid, the one in the perf map's name
  EXPECT_EQ(id->uids, (std::vector<uid_t>{1000, 1001, 1002, 1003}));
  auto self = read_text_file("/proc/self/status");
  ASSERT_TRUE(self.ok());
  auto me = parse_process_identity(*self, getpid());
  ASSERT_TRUE(me);
  EXPECT_EQ(me->ns_pid, getpid());  // the test runs in the initial pid namespace
  EXPECT_EQ(me->uids.front(), getuid());
  EXPECT_FALSE(parse_process_identity("Name:\tx\n", 1));
  EXPECT_FALSE(parse_process_identity("Uid:\t12abc\n", 1));
}

class PerfMapReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/memlens-perfmap-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "perf-test.map").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  void append(const std::string& s) { std::ofstream(path_, std::ios::app | std::ios::binary) << s; }
  PerfMapReader reader(size_t max_bytes = 64 << 20) {
    return PerfMapReader(getpid(), path_, {getuid()}, PerfMapOptions{max_bytes});
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(PerfMapReaderTest, ReadsIncrementallyAsTheFileGrows) {
  append("1000 10 one\n2000 10 tw");
  auto r = reader();
  ASSERT_TRUE(r.refresh().ok());
  EXPECT_EQ(r.map().size(), 1u);
  EXPECT_FALSE(r.map().lookup(0x2000));
  append("o\n3000 10 three\n");
  ASSERT_TRUE(r.refresh().ok());
  EXPECT_EQ(r.map().size(), 3u);  // no line read twice
  EXPECT_EQ(r.map().lookup(0x2000)->name, "two");
  EXPECT_EQ(r.map().lookup(0x3000)->name, "three");
  ASSERT_TRUE(r.refresh().ok());  // nothing new
  EXPECT_EQ(r.map().size(), 3u);
  EXPECT_EQ(r.map().stats().lines, 3u);

  // A new file in its place (a restarted process) is read from its start.
  fs::remove(path_);
  append("4000 10 four\n");
  ASSERT_TRUE(r.refresh().ok());
  EXPECT_EQ(r.map().size(), 1u);
  EXPECT_FALSE(r.map().lookup(0x1000));
  EXPECT_EQ(r.map().lookup(0x4000)->name, "four");
}

TEST_F(PerfMapReaderTest, MissingFileIsAnError) {
  auto r = reader();
  Status s = r.refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().errno_value, ENOENT);
  EXPECT_NE(s.error().message.find(path_), std::string::npos) << s.error().describe();
}

TEST_F(PerfMapReaderTest, SymlinkIsRefused) {
  std::string target = (dir_ / "real.map").string();
  std::ofstream(target) << "1000 10 secret\n";
  fs::create_symlink(target, path_);
  auto r = reader();
  Status s = r.refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("symbolic link"), std::string::npos) << s.error().describe();
  EXPECT_EQ(r.map().size(), 0u);
  // A link in a directory on the way is refused too.
  fs::create_directory_symlink(dir_, dir_ / "linkdir");
  PerfMapReader via_dir(getpid(), (dir_ / "linkdir" / "real.map").string(), {getuid()});
  EXPECT_FALSE(via_dir.refresh().ok());
  EXPECT_EQ(via_dir.map().size(), 0u);
}

TEST_F(PerfMapReaderTest, DirectoryIsRefused) {
  fs::create_directory(path_);
  auto r = reader();
  EXPECT_FALSE(r.refresh().ok());
}

TEST_F(PerfMapReaderTest, FileOwnedByAnotherUserIsRefused) {
  if (geteuid() != 0) {
    if (in_ci()) FAIL() << "CI=true: this test needs root to chown a file to another user";
    GTEST_SKIP() << "needs root to chown a file to another user";
  }
  append("1000 10 planted\n");
  ASSERT_EQ(chown(path_.c_str(), 12345, 12345), 0);
  PerfMapReader r(getpid(), path_, {1000, 1001}, PerfMapOptions{});
  Status s = r.refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().errno_value, EPERM);
  EXPECT_NE(s.error().message.find("owned by uid 12345"), std::string::npos) << s.error().describe();
  EXPECT_EQ(r.map().size(), 0u);
  // The process's own uid is accepted, and so is root.
  PerfMapReader own(getpid(), path_, {12345}, PerfMapOptions{});
  EXPECT_TRUE(own.refresh().ok());
  EXPECT_EQ(own.map().size(), 1u);
  ASSERT_EQ(chown(path_.c_str(), 0, 0), 0);
  EXPECT_TRUE(r.refresh().ok());
}

TEST_F(PerfMapReaderTest, LargerThanTheBoundIsTruncatedAndSaysSo) {
  std::string text;
  for (int i = 0; i < 1000; ++i)
    text += std::to_string(1000 + i) + "0 10 JS:*function_number_" + std::to_string(i) + "\n";
  append(text);
  const size_t bound = 4096;
  auto r = reader(bound);
  ASSERT_TRUE(r.refresh().ok());
  EXPECT_TRUE(r.map().stats().truncated);
  // Exactly the complete lines within the first `bound` bytes are kept.
  std::string head = text.substr(0, bound);
  size_t complete = static_cast<size_t>(std::count(head.begin(), head.end(), '\n'));
  EXPECT_EQ(r.map().size(), complete);
  EXPECT_EQ(r.map().stats().malformed, 0u);
  // Further refreshes read no more.
  append("ffff0 10 late\n");
  ASSERT_TRUE(r.refresh().ok());
  EXPECT_EQ(r.map().size(), complete);
  EXPECT_TRUE(r.map().stats().truncated);

  auto whole = reader();
  ASSERT_TRUE(whole.refresh().ok());
  EXPECT_FALSE(whole.map().stats().truncated);
  EXPECT_EQ(whole.map().size(), 1001u);
}

TEST(PerfMapReaderFor, UsesTheNamespacedPidPath) {
  auto r = PerfMapReader::for_process(getpid());
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->path(), "/tmp/perf-" + std::to_string(getpid()) + ".map");
  EXPECT_FALSE(PerfMapReader::for_process(0x7ffffff0).ok());
}

}  // namespace
}  // namespace memlens::symbolize
