// A statically linked program (tests/CMakeLists.txt links every *static*.c with -static): it maps no C
// library, so memlens cannot put its address-space probes on it. The hostile tests use it as a process
// that runs untraced for a known time, which memlens must count as such, with the reason.
//   static_sleeper MILLISECONDS
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

int main(int argc, char** argv) {
  long ms = argc > 1 ? atol(argv[1]) : 300;
  // A few calls memlens would have counted, had it been able to probe them.
  for (int i = 0; i < 16; ++i) {
    void* p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) munmap(p, 4096);
  }
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
  return 0;
}
