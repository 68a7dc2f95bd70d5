// The perf map parser and reader: fixtures with malformed, overflowing and very long lines; a growing file,
// a replaced or shrunk one, one without a newline for megabytes; files a root tool must refuse (symlink,
// foreign owner) and one larger than the bound.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
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

std::string fmt_line(uint64_t start, uint64_t size, const std::string& name) {
  char buf[64];
  snprintf(buf, sizeof buf, "%llx %llx ", static_cast<unsigned long long>(start),
           static_cast<unsigned long long>(size));
  return buf + name + "\n";
}

// Bytes this process has read with read(2) and friends (rchar of /proc/self/io).
uint64_t bytes_read_by_me() {
  auto io = read_text_file("/proc/self/io");
  EXPECT_TRUE(io.ok());
  if (!io.ok()) return 0;
  size_t at = io->find("rchar: ");
  EXPECT_NE(at, std::string::npos);
  return at == std::string::npos ? 0 : std::stoull(io->substr(at + 7));
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

TEST(PerfMapParse, LongNamesAreCutAndOverlongLinesSkipped) {
  std::string longname(PerfMap::kMaxLineBytes / 2, 'x');
  std::string text = "1000 10 " + longname + "\n2000 10 after\n3000 10 " +
                     std::string(PerfMap::kMaxLineBytes, 'y') + "\n4000 10 last\n";
  PerfMap map;
  EXPECT_EQ(map.parse(text), text.size());
  EXPECT_EQ(map.stats().entries, 3u);
  EXPECT_EQ(map.stats().names_cut, 1u);
  EXPECT_EQ(map.stats().too_long, 1u);
  auto first = map.lookup(0x1005);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->name.size(), PerfMap::kMaxNameBytes);
  EXPECT_EQ(first->name, longname.substr(0, PerfMap::kMaxNameBytes));
  EXPECT_EQ(map.lookup(0x2000)->name, "after");
  EXPECT_FALSE(map.lookup(0x3000));  // longer than a line can be: not kept, not even cut
  EXPECT_EQ(map.lookup(0x4000)->name, "last");
  // Memory stays proportional to what is kept, not to the line length.
  EXPECT_LT(map.memory_bytes(), 64u << 10);

  // A start field a megabyte long is not a number.
  PerfMap bad;
  bad.parse(std::string(1 << 20, 'f') + " 10 x\n");
  EXPECT_EQ(bad.stats().too_long + bad.stats().malformed, 1u);
  EXPECT_EQ(bad.size(), 0u);
}

// The streaming parser gives what the whole-text parser gives, whatever the chunk boundaries, and keeps
// no more than one line's bound of an overlong line however it arrives.
TEST(PerfMapFeed, ChunkedFeedingMatchesWholeParseAndBoundsMemory) {
  std::string text;
  for (int i = 0; i < 200; ++i) {
    text += fmt_line(0x10000 + i * 0x100, 0x80, "JS:*f" + std::to_string(i));
    if (i % 50 == 7) text += std::string(3 * PerfMap::kMaxLineBytes + i, 'j') + "\n";
    if (i % 60 == 3) text += "zz not a line\n\n";
  }
  text += "ffff0 10 unterminated";
  PerfMap whole;
  whole.parse(text);
  for (size_t chunk : {size_t{1} << 20, size_t{4096}, size_t{1000}, size_t{7}}) {
    PerfMap fed;
    size_t peak = 0;
    for (size_t pos = 0; pos < text.size(); pos += chunk) {
      fed.feed(std::string_view(text).substr(pos, chunk));
      peak = std::max(peak, fed.memory_bytes());  // the partial line included
    }
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    EXPECT_EQ(fed.size(), whole.size());
    EXPECT_EQ(fed.stats().entries, 200u);
    EXPECT_EQ(fed.stats().too_long, whole.stats().too_long);
    EXPECT_EQ(fed.stats().too_long, 4u);
    EXPECT_EQ(fed.stats().malformed, whole.stats().malformed);
    for (int i = 0; i < 200; ++i)
      EXPECT_EQ(fed.lookup(0x10000 + i * 0x100 + 1)->name, "JS:*f" + std::to_string(i));
    EXPECT_FALSE(fed.lookup(0xffff0));  // its newline has not come yet
    EXPECT_LT(peak, whole.memory_bytes() + 2 * PerfMap::kMaxLineBytes + std::min(chunk, size_t{64} << 10));
  }
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
    PerfMapOptions o;
    o.max_bytes = max_bytes;
    return PerfMapReader(getpid(), path_, {getuid()}, o);
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

  // A new file in its place is read from its start. Frames recorded before may point into code the old
  // file named: those names stay, and the new file's entries win where they overlap.
  fs::remove(path_);
  append("4000 10 four\n2000 10 two-again\n");
  ASSERT_TRUE(r.refresh().ok());
  EXPECT_EQ(r.map().stats().replaced, 1u);
  EXPECT_EQ(r.map().lookup(0x4000)->name, "four");
  EXPECT_EQ(r.map().lookup(0x2000)->name, "two-again");
  EXPECT_EQ(r.map().lookup(0x1000)->name, "one");
  EXPECT_EQ(r.map().lookup(0x3000)->name, "three");
}

TEST_F(PerfMapReaderTest, ShrunkFileIsReadAgainKeepingEarlierNames) {
  append("1000 10 one\n2000 10 two\n3000 10 three\n");
  auto r = reader();
  ASSERT_TRUE(r.refresh().ok());
  ASSERT_EQ(r.map().size(), 3u);
  // Same inode, rewritten shorter than what was read: nothing of it would be seen from the old offset.
  std::ofstream(path_, std::ios::trunc | std::ios::binary) << "5000 10 five\n";
  ASSERT_TRUE(r.refresh().ok());
  EXPECT_EQ(r.map().stats().replaced, 1u);
  EXPECT_EQ(r.map().lookup(0x5000)->name, "five");
  EXPECT_EQ(r.map().lookup(0x1000)->name, "one");
  append("6000 10 six\n");
  ASSERT_TRUE(r.refresh().ok());
  EXPECT_EQ(r.map().lookup(0x6000)->name, "six");
  EXPECT_EQ(r.map().stats().replaced, 1u);  // growing again is not a replacement
  EXPECT_EQ(r.map().stats().entries, 5u);   // no line read twice
}

// A hostile map: a long run without a newline (a sparse file: junk, then zeros) before one valid line.
// Every refresh reads at most its budget and the next one resumes where it stopped, so the valid line is
// reached after size/budget refreshes, and memory stays at one line's bound.
TEST_F(PerfMapReaderTest, NoNewlineForTensOfMegabytesCostsABoundedReadPerRefresh) {
  const uint64_t junk_end = 40ull << 20;
  {
    std::ofstream f(path_, std::ios::binary);
    f << std::string(1 << 20, 'J');
  }
  ASSERT_EQ(truncate(path_.c_str(), static_cast<off_t>(junk_end)), 0);
  append("\n1000 10 JS:*after_the_junk\n");
  const uint64_t file_size = fs::file_size(path_);

  PerfMapOptions opts;
  const uint64_t budget = opts.refresh_bytes;
  ASSERT_LT(budget * 4, file_size) << "the file must take several refreshes";
  PerfMapReader r(getpid(), path_, {getuid()}, opts);
  uint64_t refreshes = 0, total = 0;
  while (!r.map().lookup(0x1000) && refreshes < 2 * (file_size / budget + 1)) {
    uint64_t before = bytes_read_by_me();
    ASSERT_TRUE(r.refresh().ok());
    uint64_t read = bytes_read_by_me() - before;
    total += read;
    ++refreshes;
    EXPECT_LE(read, budget + (64u << 10)) << "refresh " << refreshes;
    EXPECT_LT(r.map().memory_bytes(), 2 * PerfMap::kMaxLineBytes) << "refresh " << refreshes;
  }
  ASSERT_TRUE(r.map().lookup(0x1000)) << "after " << refreshes << " refreshes";
  EXPECT_EQ(r.map().lookup(0x1000)->name, "JS:*after_the_junk");
  EXPECT_LE(refreshes, file_size / budget + 1);
  EXPECT_LT(total, file_size + (1u << 20));  // every byte read about once
  EXPECT_EQ(r.map().stats().too_long, 1u);
  EXPECT_EQ(r.map().stats().entries, 1u);
  EXPECT_FALSE(r.map().stats().truncated);

  // Once the total bound is reached, refreshes read nothing more and say the file was cut.
  PerfMapOptions small;
  small.max_bytes = 2 * budget;
  PerfMapReader cut(getpid(), path_, {getuid()}, small);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(cut.refresh().ok());
  uint64_t before = bytes_read_by_me();
  ASSERT_TRUE(cut.refresh().ok());
  EXPECT_LT(bytes_read_by_me() - before, 4096u);
  EXPECT_TRUE(cut.map().stats().truncated);
  EXPECT_EQ(cut.map().stats().bytes, 2 * budget);
  EXPECT_EQ(cut.map().size(), 0u);
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
