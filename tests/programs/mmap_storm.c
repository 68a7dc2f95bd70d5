// A process that does nothing but 4 KiB anonymous mmap+munmap pairs through the C library, for a given
// time, then prints how many calls it made: the ground truth the hostile tests compare memlens's counts
// with. It calls nothing else that maps memory (no stdio, no malloc: the line is formatted on the stack and
// written with write(2)), so every mmap and munmap the process makes through the C library is one of these.
//   mmap_storm SECONDS
// prints {"event":"storm","pid":P,"mmap":N,"munmap":N}
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 3.0;
  unsigned long maps = 0, unmaps = 0;
  double end = now_s() + seconds;
  while (1) {
    // The clock is read every 64 pairs: it costs nothing next to a traced call.
    for (int i = 0; i < 64; ++i) {
      void* p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      ++maps;
      if (p == MAP_FAILED) continue;
      *(volatile char*)p = 1;
      munmap(p, 4096);
      ++unmaps;
    }
    if (now_s() >= end) break;
  }
  char line[128];
  int n = snprintf(line, sizeof line, "{\"event\":\"storm\",\"pid\":%d,\"mmap\":%lu,\"munmap\":%lu}\n",
                   (int)getpid(), maps, unmaps);
  ssize_t off = 0;
  while (off < n) {
    ssize_t w = write(1, line + off, (size_t)(n - off));
    if (w <= 0) return 1;
    off += w;
  }
  return 0;
}
