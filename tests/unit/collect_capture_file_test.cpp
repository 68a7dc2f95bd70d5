// The capture container: header, compressed chunks with CRCs, tagged records; what a reader does with a
// capture cut short, damaged, or from a newer format; the size bound.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "collect/capture_file.h"

namespace memlens::collect {
namespace {

class CaptureFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/memlens-capture-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  static std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static void spit(const std::string& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  std::string dir_;
};

// A payload that compresses poorly, so sizes on disk follow the bytes written.
std::string noise(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (auto& c : s) {
    seed = seed * 1103515245 + 12345;
    c = static_cast<char>(seed >> 16);
  }
  return s;
}

TEST_F(CaptureFileTest, RecordsComeBackInOrderAcrossChunks) {
  auto w = CaptureWriter::create(path("a.mlcap"), {0, "9.9.9"});
  ASSERT_TRUE(w) << w.error().describe();
  std::vector<std::string> sent;
  for (int i = 0; i < 300; ++i) {
    sent.push_back(noise(static_cast<size_t>(i) * 37, static_cast<uint32_t>(i)));
    ASSERT_TRUE(w->add(static_cast<uint16_t>(100 + i % 7), sent.back()));
    if (i % 50 == 49) {
      ASSERT_TRUE(w->flush());
    }
  }
  ASSERT_TRUE(w->close());
  auto c = read_capture(path("a.mlcap"));
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_TRUE(c->status.complete);
  EXPECT_EQ(c->status.memlens_version, "9.9.9");
  EXPECT_EQ(c->status.format_version, kCaptureFormatVersion);
  EXPECT_GT(c->status.chunks, 6u);
  EXPECT_EQ(c->status.corrupt_chunks, 0u);
  ASSERT_EQ(c->records.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(c->records[i].type, 100 + i % 7);
    EXPECT_EQ(c->records[i].payload, sent[i]);
  }
}

TEST_F(CaptureFileTest, CreatedPrivateAndNeverOverAnExistingFileOrSymlink) {
  auto w = CaptureWriter::create(path("a.mlcap"), {0, "1"});
  ASSERT_TRUE(w);
  struct stat sb {};
  ASSERT_EQ(stat(path("a.mlcap").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  auto again = CaptureWriter::create(path("a.mlcap"), {0, "1"});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().errno_value, EEXIST);
  ASSERT_EQ(symlink(path("target").c_str(), path("link").c_str()), 0);
  EXPECT_FALSE(CaptureWriter::create(path("link"), {0, "1"}));
  EXPECT_NE(access(path("target").c_str(), F_OK), 0);  // nothing created through the link
}

TEST_F(CaptureFileTest, CutShortIsReadUpToItsLastCompleteChunkAndSaysSo) {
  auto w = CaptureWriter::create(path("a.mlcap"), {0, "1"});
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->add(200, "first"));
  ASSERT_TRUE(w->flush());
  uint64_t after_first = w->bytes_written();
  ASSERT_TRUE(w->add(200, noise(5000, 1)));
  ASSERT_TRUE(w->flush());
  // Killed here: no end record.
  std::string bytes = slurp(path("a.mlcap"));
  auto whole = parse_capture(bytes);
  ASSERT_TRUE(whole);
  EXPECT_FALSE(whole->status.complete);
  EXPECT_NE(whole->status.stopped_because.find("cut short"), std::string::npos);
  EXPECT_EQ(whole->records.size(), 2u);
  // Cut inside the second chunk: the first chunk's record stays.
  for (size_t cut : {after_first + 3, after_first + 30, bytes.size() - 1}) {
    auto c = parse_capture(std::string_view(bytes).substr(0, cut));
    ASSERT_TRUE(c) << cut;
    EXPECT_FALSE(c->status.complete);
    EXPECT_NE(c->status.stopped_because.find("cut short"), std::string::npos) << c->status.stopped_because;
    ASSERT_EQ(c->records.size(), 1u) << cut;
    EXPECT_EQ(c->records[0].payload, "first");
  }
}

TEST_F(CaptureFileTest, CorruptChunkIsSkippedAndCountedTheOthersKept) {
  auto w = CaptureWriter::create(path("a.mlcap"), {0, "1"});
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->add(200, "one"));
  ASSERT_TRUE(w->flush());
  uint64_t second_at = w->bytes_written();
  ASSERT_TRUE(w->add(200, noise(3000, 2)));
  ASSERT_TRUE(w->flush());
  ASSERT_TRUE(w->add(200, "three"));
  ASSERT_TRUE(w->close());
  std::string bytes = slurp(path("a.mlcap"));
  bytes[second_at + 40] ^= 0x5a;  // inside the second chunk's compressed bytes
  auto c = parse_capture(bytes);
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_EQ(c->status.corrupt_chunks, 1u);
  EXPECT_TRUE(c->status.complete);
  ASSERT_EQ(c->records.size(), 2u);
  EXPECT_EQ(c->records[0].payload, "one");
  EXPECT_EQ(c->records[1].payload, "three");
}

TEST_F(CaptureFileTest, NewerFormatIsRefusedNamingWhatToDo) {
  auto w = CaptureWriter::create(path("a.mlcap"), {0, "7.0.0"});
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->close());
  std::string bytes = slurp(path("a.mlcap"));
  // Format version field, then a header checksum that matches it (a genuine newer file, not damage).
  uint16_t newer = kCaptureFormatVersion + 1;
  bytes[8] = static_cast<char>(newer & 0xff);
  bytes[9] = static_cast<char>(newer >> 8);
  size_t header_len = 8 + 2 + 2 + 5;
  uint32_t crc = capture_crc32(std::string_view(bytes).substr(0, header_len));
  for (int i = 0; i < 4; ++i) bytes[header_len + i] = static_cast<char>(crc >> (8 * i));
  auto c = parse_capture(bytes);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("memlens 7.0.0 or newer"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("capture format " + std::to_string(newer)), std::string::npos)
      << c.error().message;
}

TEST_F(CaptureFileTest, NotACaptureAndDamagedHeaderAreClearErrors) {
  auto a = parse_capture("#!/bin/sh\necho hello\n");
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message.find("not a memlens capture"), std::string::npos);
  auto w = CaptureWriter::create(path("a.mlcap"), {0, "1"});
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->close());
  std::string bytes = slurp(path("a.mlcap"));
  bytes[12] ^= 1;  // the version string
  auto b = parse_capture(bytes);
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message.find("header is damaged"), std::string::npos);
}

TEST_F(CaptureFileTest, MaxSizeIsNeverExceededEventsStopFirst) {
  const uint64_t max = 256 << 10;
  auto w = CaptureWriter::create(path("a.mlcap"), {max, "1"});
  ASSERT_TRUE(w);
  uint64_t events_sent = 0;
  for (int i = 0; i < 400; ++i) {
    ASSERT_TRUE(w->add(300, noise(1000, static_cast<uint32_t>(i)), RecordClass::kEvent));
    ++events_sent;
    if (i % 20 == 0) {
      ASSERT_TRUE(w->flush());
    }
  }
  EXPECT_TRUE(w->events_stopped());
  EXPECT_GT(w->events_dropped(), 0u);
  // Past the point events stopped, the reserve still takes the records that end a trace.
  ASSERT_TRUE(w->add(301, noise(20000, 9)));
  EXPECT_EQ(w->others_dropped(), 0u);
  // And when even they do not fit, they are dropped too, never written in part.
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(w->add(301, noise(5000, static_cast<uint32_t>(i))));
  EXPECT_GT(w->others_dropped(), 0u);
  ASSERT_TRUE(w->close());
  struct stat sb {};
  ASSERT_EQ(stat(path("a.mlcap").c_str(), &sb), 0);
  EXPECT_LE(static_cast<uint64_t>(sb.st_size), max);
  auto c = read_capture(path("a.mlcap"));
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->status.complete);
  EXPECT_EQ(c->status.events_dropped, w->events_dropped());
  EXPECT_EQ(c->status.others_dropped, w->others_dropped());
  uint64_t events_read = 0;
  for (const auto& r : c->records) events_read += r.type == 300;
  EXPECT_EQ(events_read + c->status.events_dropped, events_sent);
}

// A record larger than a chunk may hold is dropped whatever the bound, and counted apart from the bound's
// drops, in the writer and in the end record a reader sees.
TEST_F(CaptureFileTest, RecordOverTheChunkLimitIsCountedApart) {
  auto w = CaptureWriter::create(path("a.mlcap"), {0, "1"});
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->add(301, std::string(kMaxChunkBytes, 'x')));
  ASSERT_TRUE(w->add(301, "kept"));
  EXPECT_EQ(w->oversize_dropped(), 1u);
  EXPECT_EQ(w->others_dropped(), 0u);
  ASSERT_TRUE(w->close());
  auto c = read_capture(path("a.mlcap"));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->status.oversize_dropped, 1u);
  EXPECT_EQ(c->status.others_dropped, 0u);
  ASSERT_EQ(c->records.size(), 1u);
  EXPECT_EQ(c->records[0].payload, "kept");
}

// The file is read a chunk at a time; what it yields is what reading its bytes whole yields, damaged or not.
TEST_F(CaptureFileTest, FileReadChunkByChunkYieldsWhatTheWholeBytesYield) {
  auto w = CaptureWriter::create(path("a.mlcap"), {0, "1"});
  ASSERT_TRUE(w);
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(w->add(static_cast<uint16_t>(300 + i % 3), noise(static_cast<size_t>(i) * 900, i)));
    if (i % 8 == 7) {
      ASSERT_TRUE(w->flush());
    }
  }
  ASSERT_TRUE(w->close());
  std::string bytes = slurp(path("a.mlcap"));
  std::string corrupt = bytes;
  corrupt[bytes.size() / 2] ^= 0x5a;
  for (const std::string& variant : {bytes, bytes.substr(0, bytes.size() * 2 / 3), corrupt}) {
    auto whole = parse_capture(variant);
    ASSERT_TRUE(whole) << whole.error().describe();
    spit(path("v.mlcap"), variant);
    std::vector<CaptureRecord> streamed;
    auto st = scan_capture_file(path("v.mlcap"), [&](uint16_t type, std::string_view payload) {
      streamed.push_back({type, std::string(payload)});
    });
    ASSERT_TRUE(st) << st.error().describe();
    EXPECT_EQ(st->complete, whole->status.complete);
    EXPECT_EQ(st->chunks, whole->status.chunks);
    EXPECT_EQ(st->corrupt_chunks, whole->status.corrupt_chunks);
    EXPECT_EQ(st->stopped_because, whole->status.stopped_because);
    ASSERT_EQ(streamed.size(), whole->records.size());
    for (size_t i = 0; i < streamed.size(); ++i) {
      EXPECT_EQ(streamed[i].type, whole->records[i].type) << i;
      EXPECT_EQ(streamed[i].payload, whole->records[i].payload) << i;
    }
  }
  EXPECT_FALSE(scan_capture_file(path("absent.mlcap"), [](uint16_t, std::string_view) {}));
}

}  // namespace
}  // namespace memlens::collect
