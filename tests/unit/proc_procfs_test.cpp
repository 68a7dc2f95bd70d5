// The /proc parsers against text as the kernel writes it (tests/data/proc, and this process's own files),
// and against text a traced process can twist: names with spaces and parentheses, malformed lines.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "proc/procfs.h"

namespace memlens::proc {
namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(MEMLENS_TEST_DATA) + "/proc/" + name);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(ProcMaps, FieldsOfFileAnonymousAndPseudoMappings) {
  ParseStats stats;
  auto maps = parse_maps(
      "55d0c0a00000-55d0c0a28000 r-xp 00001000 fe:01 1835023                    /usr/bin/node\n"
      "1c6f00000000-1c6f00040000 rw-p 00000000 00:00 0 \n"
      "7f0000000000-7f0000001000 rw-s 00000000 00:05 4242                       /dev/shm/a b (deleted)\n"
      "7ffc1a2b3000-7ffc1a2d4000 rw-p 00000000 00:00 0                          [stack]\n",
      &stats);
  ASSERT_EQ(maps.size(), 4u);
  EXPECT_EQ(stats.lines, 4u);
  EXPECT_EQ(stats.malformed, 0u);
  const auto& exe = maps[0];
  EXPECT_EQ(exe.start, 0x55d0c0a00000u);
  EXPECT_EQ(exe.end, 0x55d0c0a28000u);
  EXPECT_EQ(exe.size(), 0x28000u);
  EXPECT_TRUE(exe.read && exe.exec && !exe.write && !exe.shared);
  EXPECT_EQ(exe.offset, 0x1000u);
  EXPECT_EQ(exe.dev_major, 0xfeu);
  EXPECT_EQ(exe.dev_minor, 1u);
  EXPECT_EQ(exe.inode, 1835023u);
  EXPECT_EQ(exe.path, "/usr/bin/node");
  EXPECT_TRUE(exe.is_file());
  EXPECT_FALSE(maps[1].is_file());
  EXPECT_EQ(maps[1].path, "");
  EXPECT_TRUE(maps[2].shared);
  EXPECT_EQ(maps[2].path, "/dev/shm/a b (deleted)");  // spaces in a name are kept
  EXPECT_TRUE(maps[2].deleted());
  EXPECT_EQ(maps[3].path, "[stack]");
  EXPECT_FALSE(maps[3].is_file());
}

TEST(ProcMaps, MalformedLinesAreSkippedAndCounted) {
  ParseStats stats;
  auto maps = parse_maps(
      "zzzz-1000 r--p 00000000 00:00 0\n"
      "2000-1000 r--p 00000000 00:00 0\n"  // end before start
      "1000-2000 r-\n"
      "1000-2000 r--p 00000000 0000 0\n"  // no device colon
      "3000-4000 r--p 00000000 00:00 0\n",
      &stats);
  ASSERT_EQ(maps.size(), 1u);
  EXPECT_EQ(maps[0].start, 0x3000u);
  EXPECT_EQ(stats.lines, 5u);
  EXPECT_EQ(stats.malformed, 4u);
}

TEST(ProcSmaps, ResidentFiguresPerMapping) {
  ParseStats stats;
  auto e = parse_smaps(fixture("smaps.txt"), &stats);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].map.path, "/usr/bin/node");
  EXPECT_EQ(e[0].rss, 160u * 1024);
  EXPECT_EQ(e[0].private_clean, 160u * 1024);
  EXPECT_FALSE(e[0].thp_eligible);
  EXPECT_EQ(e[1].rss, 248u * 1024);
  EXPECT_EQ(e[1].anonymous, 248u * 1024);
  EXPECT_EQ(e[1].private_dirty, 248u * 1024);
  EXPECT_EQ(e[1].swap, 8u * 1024);
  EXPECT_TRUE(e[1].thp_eligible);
  EXPECT_EQ(e[2].map.path, "[stack]");
  EXPECT_EQ(e[2].rss, 40u * 1024);
  EXPECT_EQ(e[2].swap, 0u);
  EXPECT_EQ(stats.malformed, 0u);  // a stray line inside an entry is not a header: ignored
}

TEST(ProcSmaps, OwnSmapsSumsToOwnRss) {
  // Read back to back, this process's smaps adds up to its VmRSS (within what the reads themselves touch).
  auto smaps = read_smaps(getpid());
  ASSERT_TRUE(smaps) << smaps.error().describe();
  auto status = read_status(getpid());
  ASSERT_TRUE(status);
  uint64_t sum = 0;
  for (const auto& e : *smaps) sum += e.rss;
  EXPECT_NEAR(static_cast<double>(sum), static_cast<double>(status->vm_rss),
              0.05 * status->vm_rss + 256 * 1024);
}

TEST(ProcStatus, FieldsInBytes) {
  auto s = parse_status(fixture("status.txt"));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->name, "node");
  EXPECT_EQ(s->tgid, 48211);
  EXPECT_EQ(s->ppid, 48190);
  EXPECT_EQ(s->uid, 1000u);
  EXPECT_EQ(s->vm_rss, 187804u * 1024);
  EXPECT_EQ(s->vm_hwm, 190212u * 1024);
  EXPECT_EQ(s->rss_anon, 146380u * 1024);
  EXPECT_EQ(s->rss_file, 41408u * 1024);
  EXPECT_EQ(s->rss_shmem, 16u * 1024);
  EXPECT_EQ(s->vm_swap, 512u * 1024);
  EXPECT_EQ(s->vm_size, 1241000u * 1024);
  EXPECT_EQ(s->threads, 11u);
  EXPECT_EQ(s->sig_pending, 0u);
  EXPECT_EQ(s->shared_sig_pending, 1u << (SIGKILL - 1));  // hexadecimal, "0000000000000100"
  EXPECT_EQ(s->rss_anon + s->rss_file + s->rss_shmem, s->vm_rss);
  EXPECT_FALSE(parse_status("garbage without fields"));
}

TEST(ProcStat, CommWithSpacesAndParentheses) {
  auto st = parse_stat(fixture("stat.txt"));
  ASSERT_TRUE(st);
  EXPECT_EQ(st->pid, 48211);
  EXPECT_EQ(st->comm, "node (worker) x");
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->ppid, 48190);
  EXPECT_EQ(st->minflt, 27954u);
  EXPECT_EQ(st->majflt, 12u);
  EXPECT_EQ(st->utime_ticks, 371u);
  EXPECT_EQ(st->stime_ticks, 98u);
  EXPECT_EQ(st->start_time_ticks, 8812345u);
  EXPECT_EQ(st->rss_pages, 46951u);
  EXPECT_EQ(st->num_threads, 11u);
  EXPECT_EQ(st->flags, 0x400000u);  // field 9: PF_RANDOMIZE alone, not PF_EXITING
  EXPECT_EQ(st->exit_code, 0);      // a kernel older than 3.5 writes no field 52: no wait status
}

TEST(ProcStat, ZombieCarriesItsWaitStatus) {
  // A real zombie's stat: a child of this test that exited with status 3.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(3);
  std::optional<Stat> st;
  for (int i = 0; i < 500; ++i) {  // until the child is a zombie (its parent has not waited)
    if (auto r = read_stat(child)) st = *r;
    if (st && st->state == 'Z') break;
    usleep(2000);
  }
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, 'Z');
  EXPECT_EQ(st->num_threads, 1u);
  EXPECT_TRUE(WIFEXITED(st->exit_code));
  EXPECT_EQ(WEXITSTATUS(st->exit_code), 3);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_EQ(status, st->exit_code);  // what the parent's wait returns
}

TEST(ProcStat, TruncatedOrMalformedIsRefused) {
  EXPECT_FALSE(parse_stat(""));
  EXPECT_FALSE(parse_stat("123 (node) S 1 2 3"));  // too few fields
  EXPECT_FALSE(parse_stat("abc (node) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22"));
  EXPECT_FALSE(parse_stat("123 node) S"));
}

TEST(ProcEnviron, OneVariableOfTheNulSeparatedText) {
  const char raw[] = "PATH=/bin\0NODE_OPTIONS=--max-old-space-size=256\0NODE=x\0HOME=/root";
  std::string env(raw, sizeof(raw) - 1);
  EXPECT_EQ(environ_value(env, "NODE_OPTIONS"), "--max-old-space-size=256");
  EXPECT_EQ(environ_value(env, "NODE"), "x");  // not NODE_OPTIONS's prefix
  EXPECT_EQ(environ_value(env, "HOME"), "/root");
  EXPECT_EQ(environ_value(env, "LD_LIBRARY_PATH"), "");
  EXPECT_EQ(environ_value("", "HOME"), "");
}

TEST(ProcLive, OwnProcessAgreesWithItself) {
  auto st = read_stat(getpid());
  ASSERT_TRUE(st);
  EXPECT_EQ(st->pid, getpid());
  EXPECT_EQ(st->ppid, getppid());
  EXPECT_TRUE(process_exists(getpid()));
  EXPECT_TRUE(process_running(getpid()));
  auto start = read_start_time_ns(getpid());
  ASSERT_TRUE(start);
  EXPECT_GT(*start, 0u);
  auto exe = read_exe(getpid());
  ASSERT_TRUE(exe);
  EXPECT_NE(exe->find("proc_procfs_test"), std::string::npos);
  auto args = read_cmdline(getpid());
  ASSERT_TRUE(args);
  ASSERT_FALSE(args->empty());
  EXPECT_NE((*args)[0].find("proc_procfs_test"), std::string::npos);
  // A pid that cannot exist: the error says the process is gone.
  auto gone = read_status(0x3fffffff);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().errno_value, ESRCH);
  EXPECT_FALSE(process_exists(0x3fffffff));
  EXPECT_FALSE(process_running(0x3fffffff));
}

// A process that ends with 512 MiB to give back is dying at every look from the moment it is killed
// (SIGKILL pending) or calls exit (PF_EXITING) through its teardown, until it is a zombie: the window in
// which the OOM killer has already counted its kill. Before that it is not dying.
class ProcDying : public ::testing::TestWithParam<bool> {};

TEST_P(ProcDying, FromTheKillOrExitThroughTheTeardown) {
  const bool killed = GetParam();
  constexpr size_t kBytes = 512u << 20;
  int ready[2], go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto* mem =
        static_cast<char*>(mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (mem == MAP_FAILED) _exit(2);
    for (size_t i = 0; i < kBytes; i += 4096) mem[i] = 1;
    char c = 1;
    if (write(ready[1], &c, 1) != 1) _exit(2);
    if (read(go[0], &c, 1) != 1) _exit(2);  // the parent says when to exit (or kills)
    _exit(0);
  }
  close(ready[1]);
  close(go[0]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  EXPECT_FALSE(process_dying(child)) << "a live process that has just written its memory";
  if (killed)
    ASSERT_EQ(kill(child, SIGKILL), 0);
  else
    ASSERT_EQ(write(go[1], &c, 1), 1);
  // A kill is pending when kill(2) returns; an exit starts when the child gets to run, after which it
  // must read as dying at every look.
  bool seen_dying = killed;
  int looks_before_zombie = 0, not_dying = 0;
  for (int i = 0; i < 200000; ++i) {
    auto st = read_stat(child);
    if (!st || st->state == 'Z') break;
    // Read after the stat: a zombie by now counts as dying, rightly.
    bool dying = process_dying(child);
    seen_dying = seen_dying || dying;
    if (!seen_dying) continue;
    ++looks_before_zombie;
    if (!dying) ++not_dying;
  }
  EXPECT_GT(looks_before_zombie, 0) << "the teardown of 512 MiB was over before the first look at it";
  EXPECT_EQ(not_dying, 0) << "of " << looks_before_zombie << " looks before it was a zombie";
  EXPECT_TRUE(process_dying(child)) << "a zombie";
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(process_dying(child)) << "reaped: gone";
  if (killed)
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  else
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  close(ready[0]);
  close(go[1]);
}

INSTANTIATE_TEST_SUITE_P(Ends, ProcDying, ::testing::Bool(), [](const ::testing::TestParamInfo<bool>& i) {
  return i.param ? "Sigkill" : "Exit";
});

}  // namespace
}  // namespace memlens::proc

// The pagemap's present bits against the kernel's other account of the same pages (mincore): a fresh
// anonymous mapping with every third page written.
TEST(ProcLive, ResidentBytesOfARangeAgreeWithMincore) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE)), pages = 48;
  void* p = mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  auto* bytes = static_cast<volatile char*>(p);
  for (size_t i = 0; i < pages; i += 3) bytes[i * page] = 1;
  std::vector<unsigned char> in_core(pages);
  ASSERT_EQ(mincore(p, pages * page, in_core.data()), 0);
  uint64_t expected = 0;
  for (unsigned char c : in_core) expected += (c & 1) ? page : 0;
  auto start = reinterpret_cast<uint64_t>(p);
  auto r = memlens::proc::resident_bytes(getpid(), start, start + pages * page);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(*r, expected);
  EXPECT_GT(*r, 0u);
  munmap(p, pages * page);
}
