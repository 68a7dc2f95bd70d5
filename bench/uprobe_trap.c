// uprobe_trap [CALLS] [ROUNDS]: what one uprobe hit costs the probed process on this machine, with no BPF
// program: the breakpoint trap, the kernel's uprobe dispatch and the return to the probed code.
//
// It calls a small function of its own CALLS times (200,000) with no probe, then with a counting uprobe on
// it (a perf event of the kernel's uprobe PMU in this process), ROUNDS times (7) alternating, and measures
// its own CPU time (user + system) per call. Prints
// {"trap_ns":T,"plain_ns":P,"probed_ns":Q,"hits":H}: T the median over the rounds of (probed - plain) per
// call, H the hits the kernel counted in the last probed round (CALLS, or the probe did not fire).
//
// The probe sits on the function's first instruction, an ordinary one (a load), which the kernel runs out
// of line and single-steps: two exceptions a hit, as at the entry of the C library's mmap, munmap and brk
// (a move each). A probe on a branch, which the kernel emulates in one trap, costs less.
//
// bench/run.sh multiplies the uprobe programs' run counts by T to account for the traps of a tracer that
// its programs' run time (kernel.bpf_stats_enabled) does not include.
#include <errno.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile uint64_t sink;

__attribute__((noipa)) void memlens_bench_probed(uint64_t x) { sink += x * 3 + 1; }

static double cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec) * 1e9 +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e3;
}

static double per_call_ns(long calls) {
  double t0 = cpu_ns();
  for (long i = 0; i < calls; i++) memlens_bench_probed((uint64_t)i);
  return (cpu_ns() - t0) / (double)calls;
}

// The file offset of the function in this executable: where the uprobe PMU wants it.
static int function_offset(const char* exe, uint64_t* offset) {
  uintptr_t addr = (uintptr_t)&memlens_bench_probed;
  FILE* maps = fopen("/proc/self/maps", "r");
  if (!maps) return -1;
  char line[4096];
  int found = -1;
  while (fgets(line, sizeof(line), maps)) {
    unsigned long start, end, pgoff;
    char path[4096] = "";
    if (sscanf(line, "%lx-%lx %*s %lx %*s %*s %4095s", &start, &end, &pgoff, path) < 3) continue;
    if (addr >= start && addr < end && strcmp(path, exe) == 0) {
      *offset = addr - start + pgoff;
      found = 0;
      break;
    }
  }
  fclose(maps);
  return found;
}

static int compare(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  long calls = argc > 1 ? atol(argv[1]) : 200000;
  int rounds = argc > 2 ? atoi(argv[2]) : 7;
  if (calls <= 0 || rounds <= 0 || rounds > 99) {
    fprintf(stderr, "usage: uprobe_trap [CALLS] [ROUNDS (1-99)]\n");
    return 2;
  }
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) {
    fprintf(stderr, "uprobe_trap: cannot read /proc/self/exe: %s\n", strerror(errno));
    return 1;
  }
  exe[n] = '\0';
  uint64_t offset = 0;
  if (function_offset(exe, &offset) != 0) {
    fprintf(stderr, "uprobe_trap: the probed function is not in a mapping of %s\n", exe);
    return 1;
  }
  FILE* t = fopen("/sys/bus/event_source/devices/uprobe/type", "r");
  int type = -1;
  if (!t || fscanf(t, "%d", &type) != 1) {
    fprintf(stderr, "uprobe_trap: no uprobe PMU (/sys/bus/event_source/devices/uprobe/type)\n");
    return 1;
  }
  fclose(t);

  double diffs[99], plain_sum = 0, probed_sum = 0;
  uint64_t hits = 0;
  per_call_ns(calls);  // warm: the page of the loop and the function are resident
  for (int r = 0; r < rounds; r++) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = (uint32_t)type;
    attr.config1 = (uint64_t)(uintptr_t)exe;
    attr.config2 = offset;
    double plain = 0, probed = 0;
    for (int k = 0; k < 2; k++) {
      int with_probe = (r + k) % 2;
      if (!with_probe) {
        plain = per_call_ns(calls);
        continue;
      }
      int fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
      if (fd < 0) {
        fprintf(stderr, "uprobe_trap: perf_event_open at %s+%#lx: %s\n", exe, (unsigned long)offset,
                strerror(errno));
        return 1;
      }
      probed = per_call_ns(calls);
      if (read(fd, &hits, sizeof(hits)) != (ssize_t)sizeof(hits)) hits = 0;
      close(fd);
    }
    diffs[r] = probed - plain;
    plain_sum += plain;
    probed_sum += probed;
  }
  qsort(diffs, (size_t)rounds, sizeof(double), compare);
  double median = rounds % 2 ? diffs[rounds / 2] : (diffs[rounds / 2 - 1] + diffs[rounds / 2]) / 2;
  printf("{\"trap_ns\":%.1f,\"plain_ns\":%.2f,\"probed_ns\":%.1f,\"hits\":%llu}\n", median, plain_sum / rounds,
         probed_sum / rounds, (unsigned long long)hits);
  return hits == (uint64_t)calls ? 0 : 1;
}
