// A USDT provider shaped like Node <= 18 built --with-dtrace (src/node_provider.d): provider `node`, probes
// gc__start(int type, int flags, void* isolate) and gc__done(int type, int flags, void* isolate), each
// guarded by a semaphore as dtrace -G generates them. The probes fire only while a tracer has incremented
// the semaphore (libbpf's USDT attach does), so the tests can check both the notes and the semaphore path.
//
//   usdt_provider [N] [interval_ms]   prints its pid, then fires both probes N times (default 10)
//   On exit it prints how many times each probe was enabled when it fired.
#define _SDT_HAS_SEMAPHORES 1
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>
#include <time.h>
#include <unistd.h>

// Semaphores as Node's generated header names them: <provider>_<probe>_semaphore in section .probes.
__extension__ unsigned short node_gc__start_semaphore __attribute__((unused))
__attribute__((section(".probes")));
__extension__ unsigned short node_gc__done_semaphore __attribute__((unused))
__attribute__((section(".probes")));

// Node's kinds: v8::GCType bits (kGCTypeScavenge = 1, kGCTypeMarkSweepCompact = 4).
static const int kGcTypes[] = {1, 1, 4};

int main(int argc, char** argv) {
  long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10;
  long interval_ms = argc > 2 ? strtol(argv[2], NULL, 10) : 20;
  static int fake_isolate;
  long fired_start = 0, fired_done = 0;
  printf("%d\n", (int)getpid());
  fflush(stdout);
  struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
  for (long i = 0; i < n; i++) {
    int type = kGcTypes[i % 3];
    if (node_gc__start_semaphore) {
      STAP_PROBE3(node, gc__start, type, 0, &fake_isolate);
      fired_start++;
    }
    nanosleep(&ts, NULL);
    if (node_gc__done_semaphore) {
      STAP_PROBE3(node, gc__done, type, 0, &fake_isolate);
      fired_done++;
    }
  }
  printf("enabled gc__start %ld gc__done %ld\n", fired_start, fired_done);
  return 0;
}
