// Maps 32 anonymous regions of 1 MiB (each call's stack always kept: above --mmap-sample-bytes), touches
// them, then gives most of them back with munmap: every region but one in four whole, and the second half
// of one region it keeps. Then it waits, so that memlens takes samples after the unmaps. What stays mapped
// is the ground truth for the mmap_growth live bytes.
//   map_then_unmap SECONDS
// prints {"event":"unmapped","pid":P,"mapped":N,"kept":N} (bytes), then waits SECONDS and exits
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define REGIONS 32
#define REGION (1ul << 20)

__attribute__((noinline)) void* map_region(void) {
  void* p = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p != MAP_FAILED) memset(p, 1, REGION);
  return p;
}

int main(int argc, char** argv) {
  unsigned seconds = argc > 1 ? (unsigned)atoi(argv[1]) : 3;
  char* regions[REGIONS];
  unsigned long mapped = 0, kept = 0;
  for (int i = 0; i < REGIONS; ++i) {
    regions[i] = map_region();
    if (regions[i] == MAP_FAILED) return 1;
    mapped += REGION;
  }
  for (int i = 0; i < REGIONS; ++i) {
    if (i % 4 != 0) {
      munmap(regions[i], REGION);
    } else if (i == 4) {
      munmap(regions[i] + REGION / 2, REGION / 2);
      kept += REGION / 2;
    } else {
      kept += REGION;
    }
  }
  printf("{\"event\":\"unmapped\",\"pid\":%d,\"mapped\":%lu,\"kept\":%lu}\n", (int)getpid(), mapped, kept);
  fflush(stdout);
  sleep(seconds);
  return 0;
}
