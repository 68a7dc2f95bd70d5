// A process that takes page faults and nothing else: it maps anonymous memory once, then touches one byte
// per page of it and gives the pages back (madvise MADV_DONTNEED) round after round, so that every touch
// is one minor fault. The bystander tests run it untraced beside a traced process; the bench times it.
//   fault_loop PAGES ROUNDS [WAIT_FD [BLOCKS]]
// Before its first round it writes "ready\n" and, when WAIT_FD is given, reads one byte from that fd (so
// that a caller can start tracing between). When done it prints
// {"event":"faults","pid":P,"faults":N,"ns_per_fault":X,"cpu_ns_per_fault":C,"minflt":M,"majflt":J}: N the
// touches made (each a fault), X the time per touch, C the process's CPU time (user + system) per touch
// (what the faults cost it, free of the time other work on a busy machine takes the CPU away), M and J
// the kernel's fault counters of the process (getrusage) at the end.
// With BLOCKS, it runs BLOCKS blocks of ROUNDS rounds, each after its own byte from WAIT_FD, and prints
// that line after each block (N, X and C of the block; M and J stay the process's totals): one process
// measured under changing conditions (a tracer started and stopped between blocks) keeps its own pages
// and mapping from block to block. End of file on WAIT_FD before a block ends it (exit status 1).
// No stdio and no malloc after the mapping: the loop's faults are the process's faults.
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double cpu_ns(const struct rusage* ru) {
  return ((double)ru->ru_utime.tv_sec + (double)ru->ru_stime.tv_sec) * 1e9 +
         ((double)ru->ru_utime.tv_usec + (double)ru->ru_stime.tv_usec) * 1e3;
}

static void write_all(const char* s, size_t n) {
  while (n > 0) {
    ssize_t w = write(1, s, n);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

int main(int argc, char** argv) {
  if (argc < 3) {
    static const char usage[] = "usage: fault_loop PAGES ROUNDS [WAIT_FD [BLOCKS]]\n";
    write_all(usage, sizeof usage - 1);
    return 2;
  }
  long pages = atol(argv[1]), rounds = atol(argv[2]);
  if (pages <= 0 || rounds <= 0) return 2;
  size_t len = (size_t)pages * 4096;
  char* mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 1;
  write_all("ready\n", 6);
  long blocks = argc > 4 ? atol(argv[4]) : 1;
  if (blocks <= 0) return 2;
  for (long b = 0; b < blocks; ++b) {
    if (argc > 3) {
      char c;
      if (read(atoi(argv[3]), &c, 1) != 1) return 1;  // end of file: whoever would release it is gone
    }
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = now_ns();
    for (long r = 0; r < rounds; ++r) {
      for (long i = 0; i < pages; ++i) mem[(size_t)i * 4096] = (char)r;
      madvise(mem, len, MADV_DONTNEED);
    }
    double t1 = now_ns();
    long faults = pages * rounds;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char line[200];
    int n = snprintf(line, sizeof line,
                     "{\"event\":\"faults\",\"pid\":%d,\"faults\":%ld,\"ns_per_fault\":%.1f,"
                     "\"cpu_ns_per_fault\":%.1f,\"minflt\":%ld,\"majflt\":%ld}\n",
                     (int)getpid(), faults, (t1 - t0) / (double)faults,
                     (cpu_ns(&ru) - cpu_ns(&ru0)) / (double)faults, ru.ru_minflt, ru.ru_majflt);
    write_all(line, (size_t)n);
  }
  return 0;
}
