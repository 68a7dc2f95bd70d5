// Built without frame pointers (tests/CMakeLists.txt: -O2 -fomit-frame-pointer -fno-optimize-sibling-calls),
// as Debian's C library is: a known call chain main -> unwind_level_one -> unwind_level_two ->
// unwind_level_three that allocates through the C library (a large malloc and calloc, which mmap; memset
// into fresh pages, which faults; a direct mmap), for a given time. Every stack memlens records of these
// calls must hold the whole chain up to main.
//   unwind_chain SECONDS
// prints {"event":"start","pid":P} once main runs, then {"event":"final","pid":P,"rounds":N}
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)  // above malloc's mmap threshold: every malloc/calloc of it is an mmap

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void unwind_level_three(int round) {
  char* a = malloc(CHUNK);
  if (a) memset(a, round & 0x7f, CHUNK);  // faults in memset
  char* b = calloc(1, CHUNK);
  if (b) b[round % CHUNK] = 1;
  void* m = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m != MAP_FAILED) {
    memset(m, 1, CHUNK);
    munmap(m, CHUNK);
  }
  free(b);
  free(a);
}

__attribute__((noinline)) void unwind_level_two(int round) {
  unwind_level_three(round);
  __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void unwind_level_one(int round) {
  unwind_level_two(round);
  __asm__ volatile("" ::: "memory");
}

int main(int argc, char** argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 2.0;
  // A fixed mmap threshold: every CHUNK malloc and calloc maps fresh pages and every free unmaps them (the
  // default threshold would rise to CHUNK at the first free and serve the next rounds from the heap).
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  printf("{\"event\":\"start\",\"pid\":%d}\n", (int)getpid());
  fflush(stdout);
  // The tracer reads the process's libraries when its first C library call is seen: give it that moment.
  usleep(300 * 1000);
  int rounds = 0;
  double end = now_s() + seconds;
  while (now_s() < end) {
    unwind_level_one(rounds++);
    usleep(2000);
  }
  printf("{\"event\":\"final\",\"pid\":%d,\"rounds\":%d}\n", (int)getpid(), rounds);
  return 0;
}
