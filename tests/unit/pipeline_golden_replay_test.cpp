// The golden replay tier (tests/golden/README.md): each capture recorded from a scenario is reported again
// by `memlens report`, as an unprivileged user, and must give the files the live trace itself wrote
// (report.json, the folded and pprof profiles) and the same terminal summary; two reports of one capture
// are the same bytes. Damaged captures (cut short, a corrupt chunk, a newer format, not a capture) give
// what they can with a clear message and a distinct exit code.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "../common/replay_compare.h"
#include "collect/capture_file.h"
#include "collect/capture_records.h"

namespace fs = std::filesystem;

namespace {

constexpr uid_t kNobody = 65534;
constexpr int kExitCapture = 8;  // cli/commands.h

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

fs::path golden_dir() {
  return fs::path(getenv("MEMLENS_SOURCE_DIR")) / "tests" / "golden";
}

// A scratch directory the unprivileged user can write, holding capture.mlcap.
class Scratch {
 public:
  explicit Scratch(const std::string& capture_bytes) {
    char tmpl[] = "/tmp/memlens-golden-XXXXXX";
    dir_ = mkdtemp(tmpl);
    write_file(dir_ / "capture.mlcap", capture_bytes);
    if (geteuid() == 0) {
      (void)!chown(dir_.c_str(), kNobody, kNobody);
      (void)!chown((dir_ / "capture.mlcap").c_str(), kNobody, kNobody);
    }
  }
  ~Scratch() { fs::remove_all(dir_); }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
};

// The memlens binary the unprivileged user runs: as root, a copy in a directory anyone can enter (the build
// tree may sit under a directory only root may enter).
class ReportBinary {
 public:
  ReportBinary() {
    path_ = getenv("MEMLENS_BIN");
    if (geteuid() != 0) return;
    char tmpl[] = "/tmp/memlens-golden-bin-XXXXXX";
    dir_ = mkdtemp(tmpl);
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    fs::copy_file(path_, dir_ / "memlens");
    path_ = dir_ / "memlens";
  }
  ~ReportBinary() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  const std::string& path() const { return path_; }

 private:
  fs::path dir_;
  std::string path_;
};

const std::string& report_binary() {
  static ReportBinary bin;
  return bin.path();
}

struct ReportRun {
  int exit_code = -1;
  std::string stderr_text;
};

// `memlens report capture.mlcap -o out` in dir, as nobody when the test runs as root: a report needs no
// privilege.
ReportRun report(const fs::path& dir) {
  const std::string& bin = report_binary();
  fs::path err = dir / "stderr.txt";
  pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir.c_str()) != 0) _exit(120);
    int fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int null = open("/dev/null", O_WRONLY);
    if (fd < 0 || null < 0) _exit(121);
    dup2(fd, 2);
    dup2(null, 1);
    if (geteuid() == 0 && (setgroups(0, nullptr) != 0 || setgid(kNobody) != 0 || setuid(kNobody) != 0))
      _exit(122);
    execl(bin.c_str(), "memlens", "report", "capture.mlcap", "-o", "out", static_cast<char*>(nullptr));
    _exit(123);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ReportRun r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.stderr_text = read_file(err);
  return r;
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename());
  return out;
}

std::vector<fs::path> golden_cases() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(golden_dir()))
    if (fs::exists(e.path() / "capture.mlcap")) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(GoldenReplay, EachCaptureReportsWhatTheLiveTraceWrote) {
  auto cases = golden_cases();
  ASSERT_GE(cases.size(), 6u) << "tests/golden/ lost its captures";
  for (const auto& c : cases) {
    SCOPED_TRACE(c.filename().string());
    fs::path expected = c / "expected";
    Scratch first(read_file(c / "capture.mlcap"));
    ReportRun r = report(first.dir());
    ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
    if (geteuid() == 0) {  // written by the unprivileged user
      struct stat st {};
      ASSERT_EQ(stat((first.dir() / "out" / "report.json").c_str(), &st), 0);
      EXPECT_EQ(st.st_uid, kNobody);
    }
    EXPECT_EQ(r.stderr_text, read_file(expected / "summary.txt"));
    auto produced = names_in(first.dir() / "out");
    for (const auto& name : names_in(expected)) {
      if (name == "summary.txt") continue;
      SCOPED_TRACE(name);
      ASSERT_TRUE(produced.count(name)) << "report did not write " << name;
      EXPECT_TRUE(read_file(expected / name) == read_file(first.dir() / "out" / name)) << "differs";
    }
    // Nothing written that the live trace did not write (report.html is left out of expected/ for size).
    for (const auto& name : produced)
      EXPECT_TRUE(name == "report.html" || fs::exists(expected / name)) << "unexpected " << name;

    // Twice: the same bytes, report.html included (no field is taken from the time of reporting).
    Scratch second(read_file(c / "capture.mlcap"));
    ReportRun again = report(second.dir());
    ASSERT_EQ(again.exit_code, 0);
    EXPECT_EQ(again.stderr_text, r.stderr_text);
    ASSERT_EQ(names_in(second.dir() / "out"), produced);
    for (const auto& name : produced)
      EXPECT_TRUE(read_file(first.dir() / "out" / name) == read_file(second.dir() / "out" / name))
          << name << " differs between two reports of one capture";
  }
}

// What the scenarios say of themselves, in the replayed reports.
nlohmann::json replayed_report(const std::string& name) {
  Scratch s(read_file(golden_dir() / name / "capture.mlcap"));
  ReportRun r = report(s.dir());
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  return nlohmann::json::parse(read_file(s.dir() / "out" / "report.json"));
}

TEST(GoldenReplay, ScenarioFactsSurviveTheReplay) {
  // exit_midway.js exits with status 3 in the middle of its work.
  auto exit_midway = replayed_report("exit_midway");
  ASSERT_FALSE(exit_midway["processes"].empty());
  EXPECT_EQ(exit_midway["processes"][0]["exit_status"], 3) << exit_midway["processes"][0].dump();
  // fork_child.js forks one child node: two processes, the child's parent being the first.
  auto fork = replayed_report("fork");
  ASSERT_GE(fork["processes"].size(), 2u);
  EXPECT_EQ(fork["processes"][1]["ppid"], fork["processes"][0]["pid"]);
}

// The run's metadata record says what was traced and how, the same as the report.
TEST(GoldenReplay, RunMetadataNamesTheCommandAndItsOptions) {
  for (const auto& c : golden_cases()) {
    SCOPED_TRACE(c.filename().string());
    auto capture = memlens::collect::read_capture((c / "capture.mlcap").string());
    ASSERT_TRUE(capture) << capture.error().describe();
    std::optional<nlohmann::json> run;
    for (const auto& r : capture->records)
      if (r.type == memlens::collect::kRecordRun) run = nlohmann::json::parse(r.payload);
    ASSERT_TRUE(run.has_value());
    EXPECT_EQ((*run)["memlens_version"], capture->status.memlens_version);
    ASSERT_GE((*run)["command"].size(), 2u);
    EXPECT_TRUE((*run)["command"][1].get<std::string>().starts_with("scenarios/")) << run->dump();
    EXPECT_EQ((*run)["options"]["interval_s"], 0.5);
    EXPECT_EQ((*run)["options"]["fault_sample_period"], 256);
    if (fs::exists(c / "expected" / "report.json") && c.filename() != "cut_short") {
      auto report = nlohmann::json::parse(read_file(c / "expected" / "report.json"));
      EXPECT_EQ((*run)["command"], report["command"]);
    }
  }
}

// The recorded event stream, applied again through the trace builder with the replay host (the host's
// answers recorded beside the events), gives what the live trace's own report.json holds of it.
TEST(GoldenReplay, EventStreamRebuildsWhatItsEventsAndSamplesDecided) {
  for (const auto& c : golden_cases()) {
    if (c.filename() == "cut_short") continue;  // no live report to compare with
    SCOPED_TRACE(c.filename().string());
    auto live = nlohmann::json::parse(read_file(c / "expected" / "report.json"));
    memlens::testing::expect_replay_rebuilds_live((c / "capture.mlcap").string(), live);
    // Every capture but the one kept from before memlens recorded the capabilities' end state has one
    // per process: its report is rebuilt, not the analysed trace it holds.
    auto replayed = memlens::collect::replay_events((c / "capture.mlcap").string());
    ASSERT_TRUE(replayed);
    bool older = c.filename() == "v1_js_leak";
    EXPECT_EQ(replayed->capability_end_states, older ? 0u : live["processes"].size());
  }
}

TEST(GoldenReplay, CutShortCaptureReportsItsLastSnapshotAndSaysSo) {
  // A recording whose memlens was killed (tests/golden/cut_short), and a complete one cut in the middle.
  std::string whole = read_file(golden_dir() / "js_leak" / "capture.mlcap");
  for (const std::string& bytes :
       {read_file(golden_dir() / "cut_short" / "capture.mlcap"), whole.substr(0, whole.size() / 2)}) {
    Scratch s(bytes);
    ReportRun r = report(s.dir());
    ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
    EXPECT_NE(r.stderr_text.find("cut short"), std::string::npos) << r.stderr_text;
    auto j = nlohmann::json::parse(read_file(s.dir() / "out" / "report.json"));
    EXPECT_EQ(j["capture"]["complete"], false);
    EXPECT_NE(j["capture"]["cut_short"].get<std::string>().find("cut short"), std::string::npos);
    EXPECT_FALSE(j["processes"].empty());
    EXPECT_EQ(j["capture"]["reported_from"], "last snapshot taken during the trace");
    EXPECT_EQ(j["stop_reason"], "recording cut short after this point");
    // No stack profile: the stacks are named only at the end of a trace.
    for (const auto& name : names_in(s.dir() / "out"))
      EXPECT_TRUE(name == "report.json" || name == "report.html") << name;
  }
}

TEST(GoldenReplay, CaptureCutAfterItsEndOfTraceReportsItWhole) {
  // Only the end record's chunk lost: the analysed trace and the profiles were read.
  std::string whole = read_file(golden_dir() / "js_leak" / "capture.mlcap");
  Scratch s(whole.substr(0, whole.size() - 8));
  ReportRun r = report(s.dir());
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("its end of trace was read"), std::string::npos) << r.stderr_text;
  auto j = nlohmann::json::parse(read_file(s.dir() / "out" / "report.json"));
  EXPECT_EQ(j["capture"]["complete"], false);
  EXPECT_EQ(j["capture"]["reported_from"], "end of trace");
  fs::path expected = golden_dir() / "js_leak" / "expected";
  for (const auto& name : names_in(expected)) {
    if (name.ends_with(".folded") || name.ends_with(".pb.gz")) {
      EXPECT_TRUE(read_file(expected / name) == read_file(s.dir() / "out" / name)) << name;
    }
  }
}

// A capability end state that cannot be read: the report is still rebuilt from the events and the other
// records, lacks what only that record held (the breakdown), and counts it as malformed.
TEST(GoldenReplay, MalformedEndStateIsCountedAndTheRestIsReported) {
  auto capture = memlens::collect::read_capture((golden_dir() / "fd_leak" / "capture.mlcap").string());
  ASSERT_TRUE(capture) << capture.error().describe();
  char tmpl[] = "/tmp/memlens-golden-malformed-XXXXXX";
  fs::path dir = mkdtemp(tmpl);
  std::string rewritten = (dir / "capture.mlcap").string();
  {
    auto w = memlens::collect::CaptureWriter::create(rewritten, {0, capture->status.memlens_version});
    ASSERT_TRUE(w) << w.error().describe();
    size_t spoiled = 0;
    for (const auto& r : capture->records) {
      bool spoil = r.type == memlens::collect::kRecordCapabilitiesEndState;
      spoiled += spoil;
      ASSERT_TRUE(w->add(r.type, spoil ? std::string("\xa1\x63pi", 4) : r.payload));
    }
    ASSERT_EQ(spoiled, 1u);
    ASSERT_TRUE(w->close());
  }
  Scratch s(read_file(rewritten));
  fs::remove_all(dir);
  ReportRun r = report(s.dir());
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("1 malformed record"), std::string::npos) << r.stderr_text;
  auto j = nlohmann::json::parse(read_file(s.dir() / "out" / "report.json"));
  EXPECT_EQ(j["capture"]["malformed_records"], 1);
  EXPECT_EQ(j["capture"]["reported_from"], "end of trace");
  auto live = nlohmann::json::parse(read_file(golden_dir() / "fd_leak" / "expected" / "report.json"));
  ASSERT_EQ(j["processes"].size(), 1u);
  const auto& p = j["processes"][0];
  EXPECT_FALSE(p.contains("breakdown")) << "the attribution was in the spoiled record";
  EXPECT_TRUE(live["processes"][0].contains("breakdown"));
  for (const char* key : {"pid", "timeline", "exit_status", "rss_peak_bytes", "gc"})
    EXPECT_EQ(p.value(key, nlohmann::json()), live["processes"][0].value(key, nlohmann::json())) << key;
}

TEST(GoldenReplay, CorruptChunkIsSkippedAndCounted) {
  std::string bytes = read_file(golden_dir() / "js_leak" / "capture.mlcap");
  // The first chunk's compressed data: after the header (magic, format, version length, version, crc) and
  // the chunk's own 20-byte header.
  size_t header = 8 + 2 + 2 + (static_cast<uint8_t>(bytes[10]) | static_cast<uint8_t>(bytes[11]) << 8) + 4;
  bytes[header + 20 + 8] ^= 0x5a;
  Scratch s(bytes);
  ReportRun r = report(s.dir());
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("1 damaged chunk"), std::string::npos) << r.stderr_text;
  auto j = nlohmann::json::parse(read_file(s.dir() / "out" / "report.json"));
  EXPECT_EQ(j["capture"]["corrupt_chunks"], 1);
  EXPECT_EQ(j["capture"]["complete"], true);
}

TEST(GoldenReplay, NewerFormatIsRefusedWithWhatToDo) {
  std::string bytes = read_file(golden_dir() / "js_leak" / "capture.mlcap");
  size_t vlen = static_cast<uint8_t>(bytes[10]) | static_cast<uint8_t>(bytes[11]) << 8;
  size_t header = 8 + 2 + 2 + vlen;
  uint16_t newer = memlens::collect::kCaptureFormatVersion + 1;
  bytes[8] = static_cast<char>(newer & 0xff);
  bytes[9] = static_cast<char>(newer >> 8);
  uint32_t crc = memlens::collect::capture_crc32(std::string_view(bytes).substr(0, header));
  for (int i = 0; i < 4; ++i) bytes[header + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  Scratch s(bytes);
  ReportRun r = report(s.dir());
  EXPECT_EQ(r.exit_code, kExitCapture);
  EXPECT_NE(r.stderr_text.find("or newer"), std::string::npos) << r.stderr_text;
  EXPECT_FALSE(fs::exists(s.dir() / "out" / "report.json"));
}

TEST(GoldenReplay, NotACaptureOrNothingToReportIsRefused) {
  {
    Scratch s("{\"not\": \"a capture\"}\n");
    ReportRun r = report(s.dir());
    EXPECT_EQ(r.exit_code, kExitCapture);
    EXPECT_NE(r.stderr_text.find("not a memlens capture"), std::string::npos) << r.stderr_text;
  }
  {
    // Only the header: memlens killed before its first sample.
    std::string bytes = read_file(golden_dir() / "js_leak" / "capture.mlcap");
    size_t vlen = static_cast<uint8_t>(bytes[10]) | static_cast<uint8_t>(bytes[11]) << 8;
    Scratch s(bytes.substr(0, 8 + 2 + 2 + vlen + 4));
    ReportRun r = report(s.dir());
    EXPECT_EQ(r.exit_code, kExitCapture);
    EXPECT_NE(r.stderr_text.find("before the first sample"), std::string::npos) << r.stderr_text;
  }
}

}  // namespace
