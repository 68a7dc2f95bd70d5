// uprobe_trap [CALLS] [ROUNDS]: what one uprobe hit costs the probed process on this machine, with no BPF
// program: the breakpoint trap, the kernel's uprobe dispatch and the return to the probed code, for each
// kind of site a tracer's probes sit on.
//
// The kernel runs a few instructions itself at a uprobe (calls, jumps, conditional branches, push, nop):
// one exception a hit. Every other instruction is copied out of line and single-stepped: two exceptions.
// A return probe adds the return through the kernel's trampoline to its entry's hit. This program calls
// three small functions of its own CALLS times (50,000) each: one that starts with a move (stepped, as the
// entry of the C library's mmap, munmap and brk), one with a push (emulated, as most function entries
// with a frame pointer), one with a jump (emulated, as the branches after a syscall). It measures its own
// CPU time per call with no probe, then with a counting uprobe (a perf event of the kernel's uprobe PMU in
// this process), and with a return probe on the second one, ROUNDS times (7) in alternating order. Prints
// {"trap_ns":S,"emulated_ns":E,"return_ns":R,"push_ns":P,"branch_ns":B,"plain_ns":N,"hits":H}: the
// medians over the rounds of (probed - plain) per call, S the stepped site, E the larger of the two
// emulated ones (P and B), R the return probe's hit less the emulated entry's in the same round (a
// difference of two small figures: it can come out a little below zero), H the fewest hits the kernel
// counted in any probed run (CALLS, or a probe did not fire).
//
// bench/run.sh charges each uprobe program's runs with the cost of the sites it is attached at
// (bench/uprobe_sites.c) to account for the traps of a tracer, which its programs' run time
// (kernel.bpf_stats_enabled) does not include.
#include <errno.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile uint64_t memlens_bench_sink;

uint64_t memlens_bench_total;  // what the probed functions add to
void memlens_bench_stepped(uint64_t x);
void memlens_bench_pushed(uint64_t x);
void memlens_bench_branched(uint64_t x);
// Written out so that the first instruction of each is the kind it names, whatever the compiler does.
__asm__(
    ".text\n"
    ".globl memlens_bench_stepped\n.type memlens_bench_stepped,@function\nmemlens_bench_stepped:\n"
    "  mov memlens_bench_total(%rip), %rax\n  add %rdi, %rax\n  mov %rax, memlens_bench_total(%rip)\n  ret\n"
    ".size memlens_bench_stepped, .-memlens_bench_stepped\n"
    ".globl memlens_bench_pushed\n.type memlens_bench_pushed,@function\nmemlens_bench_pushed:\n"
    "  push %rbp\n  mov memlens_bench_total(%rip), %rax\n  add %rdi, %rax\n"
    "  mov %rax, memlens_bench_total(%rip)\n  pop %rbp\n  ret\n"
    ".size memlens_bench_pushed, .-memlens_bench_pushed\n"
    ".globl memlens_bench_branched\n.type memlens_bench_branched,@function\nmemlens_bench_branched:\n"
    "  jmp 1f\n1:\n  mov memlens_bench_total(%rip), %rax\n  add %rdi, %rax\n"
    "  mov %rax, memlens_bench_total(%rip)\n  ret\n"
    ".size memlens_bench_branched, .-memlens_bench_branched\n");

typedef void (*probed_fn)(uint64_t);

static double cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double per_call_ns(probed_fn volatile fn, long calls) {
  double t0 = cpu_ns();
  for (long i = 0; i < calls; i++) fn((uint64_t)i);
  memlens_bench_sink = memlens_bench_total;
  return (cpu_ns() - t0) / (double)calls;
}

// The file offset of fn in this executable: where the uprobe PMU wants it.
static int function_offset(const char* exe, probed_fn fn, uint64_t* offset) {
  uintptr_t addr = (uintptr_t)fn;
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

static double median(double* v, int n) {
  qsort(v, (size_t)n, sizeof(double), compare);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int read_int_file(const char* path, const char* format, int* value) {
  FILE* f = fopen(path, "r");
  int ok = f && fscanf(f, format, value) == 1;
  if (f) fclose(f);
  return ok ? 0 : -1;
}

enum { kStepped, kPushed, kBranched, kReturn, kKinds };

int main(int argc, char** argv) {
  long calls = argc > 1 ? atol(argv[1]) : 50000;
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
  int type = -1, retprobe_bit = -1;
  if (read_int_file("/sys/bus/event_source/devices/uprobe/type", "%d", &type) != 0) {
    fprintf(stderr, "uprobe_trap: no uprobe PMU (/sys/bus/event_source/devices/uprobe/type)\n");
    return 1;
  }
  if (read_int_file("/sys/bus/event_source/devices/uprobe/format/retprobe", "config:%d", &retprobe_bit) != 0) {
    fprintf(stderr, "uprobe_trap: the uprobe PMU has no retprobe format bit\n");
    return 1;
  }
  const probed_fn fns[kKinds] = {memlens_bench_stepped, memlens_bench_pushed, memlens_bench_branched,
                                 memlens_bench_pushed};
  uint64_t offsets[kKinds];
  for (int k = 0; k < kKinds; k++)
    if (function_offset(exe, fns[k], &offsets[k]) != 0) {
      fprintf(stderr, "uprobe_trap: a probed function is not in a mapping of %s\n", exe);
      return 1;
    }

  double diffs[kKinds][99], plain_all[99];
  uint64_t least_hits = UINT64_MAX;
  for (int k = 0; k < kKinds; k++) per_call_ns(fns[k], calls);  // warm: the code and data are resident
  for (int r = 0; r < rounds; r++) {
    double plain[kKinds], probed[kKinds];
    for (int k = 0; k < kKinds; k++) plain[k] = per_call_ns(fns[k], calls);
    // Every other round the other way round, so that a drift in the machine's speed cancels out.
    for (int i = 0; i < kKinds; i++) {
      int k = r % 2 ? kKinds - 1 - i : i;
      struct perf_event_attr attr;
      memset(&attr, 0, sizeof(attr));
      attr.size = sizeof(attr);
      attr.type = (uint32_t)type;
      attr.config = k == kReturn ? 1ull << retprobe_bit : 0;
      attr.config1 = (uint64_t)(uintptr_t)exe;
      attr.config2 = offsets[k];
      int fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
      if (fd < 0) {
        fprintf(stderr, "uprobe_trap: perf_event_open at %s+%#lx: %s\n", exe, (unsigned long)offsets[k],
                strerror(errno));
        return 1;
      }
      probed[k] = per_call_ns(fns[k], calls);
      uint64_t hits = 0;
      if (read(fd, &hits, sizeof(hits)) != (ssize_t)sizeof(hits)) hits = 0;
      close(fd);
      if (hits < least_hits) least_hits = hits;
    }
    for (int k = 0; k < kKinds; k++) diffs[k][r] = probed[k] - plain[k];
    diffs[kReturn][r] -= diffs[kPushed][r];
    plain_all[r] = plain[kStepped];
  }
  double m[kKinds];
  for (int k = 0; k < kKinds; k++) m[k] = median(diffs[k], rounds);
  printf(
      "{\"trap_ns\":%.1f,\"emulated_ns\":%.1f,\"return_ns\":%.1f,\"push_ns\":%.1f,\"branch_ns\":%.1f,"
      "\"plain_ns\":%.2f,\"hits\":%llu}\n",
      m[kStepped], m[kPushed] > m[kBranched] ? m[kPushed] : m[kBranched], m[kReturn], m[kPushed], m[kBranched],
      median(plain_all, rounds), (unsigned long long)least_hits);
  return least_hits == (uint64_t)calls ? 0 : 1;
}
