// bare_uprobe PID: puts uprobes where memlens's fd tracking reads accept and accept4 (the branch after
// each syscall of the C library's wrappers, collect/wrapper_sites.h) into PID's main thread, with no BPF
// program: each is a counting perf event of the kernel's uprobe PMU. It prints "attached N" once they are
// in place, then, at SIGINT or SIGTERM, "hits N" and exits.
//
// bench/run.sh runs it beside an untraced server: what that server loses is what the kernel's breakpoint
// trap alone costs a connection on this machine, the floor under memlens's (and any uprobe-based
// tracer's) figure for the same workload. Node accepts on its main thread, which is the only one counted.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "collect/process_probes.h"
#include "collect/wrapper_sites.h"
#include "elf/elf_file.h"

namespace {

int fail(const std::string& what) {
  fmt::print(stderr, "bare_uprobe: {}\n", what);
  return 1;
}

int uprobe_pmu_type() {
  std::ifstream f("/sys/bus/event_source/devices/uprobe/type");
  int type = -1;
  f >> type;
  return f ? type : -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return fail("usage: bare_uprobe PID");
  pid_t pid = static_cast<pid_t>(std::strtol(argv[1], nullptr, 10));
  auto mapped = memlens::collect::find_libc(pid);
  if (!mapped) return fail(mapped.error().describe());
  const std::string& libc = mapped->host_path;
  auto elf = memlens::elf::ElfFile::open_path(libc);
  if (!elf) return fail(elf.error().describe());
  std::vector<uint64_t> offsets;
  for (const char* name : {"accept4", "accept"}) {
    auto w = memlens::collect::locate_wrapper(**elf, name);
    if (!w) return fail(fmt::format("{}: no function {}", libc, name));
    // memlens's one-hit probe sits on the branches whose stack effect is known; without them it falls
    // back to two probes per call, and this floor would not be the same comparison.
    auto sites = memlens::collect::one_hit_sites(*w);
    if (sites.empty()) return fail(fmt::format("{}: {} has no branch memlens reads in one hit", libc, name));
    for (const auto& site : sites) offsets.push_back(site.first);
  }
  int type = uprobe_pmu_type();
  if (type < 0) return fail("no uprobe PMU (/sys/bus/event_source/devices/uprobe/type)");

  // Block the stop signals before the probes exist, so that none is lost between attach and sigwait.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop, nullptr);

  std::vector<int> fds;
  for (uint64_t offset : offsets) {
    perf_event_attr attr{};
    attr.size = sizeof(attr);
    attr.type = static_cast<uint32_t>(type);
    attr.config1 = reinterpret_cast<uint64_t>(libc.c_str());  // the uprobe PMU's path
    attr.config2 = offset;
    long fd = syscall(SYS_perf_event_open, &attr, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) return fail(fmt::format("perf_event_open at {}+{:#x}: {}", libc, offset, strerror(errno)));
    fds.push_back(static_cast<int>(fd));
  }
  fmt::print("attached {} at {} +{:#x}\n", fds.size(), libc, fmt::join(offsets, " +"));
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  uint64_t hits = 0;
  for (int fd : fds) {
    uint64_t n = 0;
    if (read(fd, &n, sizeof(n)) == static_cast<ssize_t>(sizeof(n))) hits += n;
  }
  fmt::print("hits {}\n", hits);
  return 0;
}
