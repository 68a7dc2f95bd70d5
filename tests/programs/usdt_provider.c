// A USDT provider shaped like Node <= 18 built --with-dtrace (src/node_provider.d): provider `node`, probes
// gc__start(int type, int flags, void* isolate) and gc__done(int type, int flags, void* isolate), each
// guarded by a semaphore as dtrace -G generates them. The probes fire only while a tracer has incremented
// the semaphore (libbpf's USDT attach does), so the tests can check both the notes and the semaphore path.
//
//   usdt_provider [N] [interval_ms] [stray]
//     prints its pid, waits until a tracer has raised both semaphores (up to 20 s), then fires N pairs of
//     gc__start/gc__done and after them `stray` lone gc__done (a GC end with no start: default 2).
//     On exit it prints how many times each probe fired.
//
// Why it waits, and waits a little more: the kernel raises a semaphore when the uprobe is registered, which
// is before the tracer's program is attached to it (perf_event_open, then the BPF program on the event).
// A probe fired in between reaches no program, so counting from the first raised semaphore would race the
// attach. The settle time is many times that window (microseconds) on a loaded machine.
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

// One site per probe, as in Node: each probe has exactly one note (tests compare the notes with readelf).
static __attribute__((noinline)) int fire_start(int type, void* isolate) {
  if (!node_gc__start_semaphore) return 0;
  STAP_PROBE3(node, gc__start, type, 0, isolate);
  return 1;
}

static __attribute__((noinline)) int fire_done(int type, void* isolate) {
  if (!node_gc__done_semaphore) return 0;
  STAP_PROBE3(node, gc__done, type, 0, isolate);
  return 1;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int main(int argc, char** argv) {
  long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10;
  long interval_ms = argc > 2 ? strtol(argv[2], NULL, 10) : 20;
  long stray = argc > 3 ? strtol(argv[3], NULL, 10) : 2;
  static int fake_isolate;
  long fired_start = 0, fired_done = 0;
  printf("%d\n", (int)getpid());
  fflush(stdout);
  for (int waited = 0; waited < 20000 && !(node_gc__start_semaphore && node_gc__done_semaphore); waited++)
    sleep_ms(1);
  sleep_ms(300);
  for (long i = 0; i < n; i++) {
    int type = kGcTypes[i % 3];
    fired_start += fire_start(type, &fake_isolate);
    sleep_ms(interval_ms);
    fired_done += fire_done(type, &fake_isolate);
  }
  for (long i = 0; i < stray; i++) fired_done += fire_done(1, &fake_isolate);
  printf("fired gc__start %ld gc__done %ld\n", fired_start, fired_done);
  return 0;
}
