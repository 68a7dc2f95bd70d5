// What holding a new process costs it: the time from fork() in the parent to the child's first
// instruction, measured many times, median and 90th percentile. Run it bare and under `memlens run` to see
// what memlens's hold (the child stopped until its probes are attached) adds (docs/probes.md).
//   hold_latency fork COUNT   fork -> the child's first instruction after fork (its return from fork())
//   hold_latency exec COUNT   fork -> first instruction of main() of a freshly exec'd image (this program)
//   hold_latency true COUNT   fork + exec of /bin/true + its exit, as the parent's waitpid() sees it
// prints {"mode":M,"count":N,"median_us":X,"p90_us":Y,"min_us":Z}
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "--stamp") == 0) {  // the exec'd child: report when main started
    double t = now_us();
    (void)!write(atoi(argv[2]), &t, sizeof t);
    return 0;
  }
  if (argc < 3) {
    fprintf(stderr, "usage: hold_latency fork|exec|true COUNT\n");
    return 2;
  }
  const char* mode = argv[1];
  int count = atoi(argv[2]);
  double* lat = calloc((size_t)count, sizeof *lat);
  for (int i = 0; i < count; ++i) {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    double t0 = now_us(), t1 = 0;
    pid_t pid = fork();
    if (pid == 0) {
      if (strcmp(mode, "fork") == 0) {
        double t = now_us();
        (void)!write(fds[1], &t, sizeof t);
        _exit(0);
      }
      if (strcmp(mode, "exec") == 0) {
        char fd[16];
        snprintf(fd, sizeof fd, "%d", fds[1]);
        execl("/proc/self/exe", argv[0], "--stamp", fd, (char*)NULL);
      } else {
        execl("/bin/true", "true", (char*)NULL);
      }
      _exit(127);
    }
    close(fds[1]);
    if (strcmp(mode, "true") != 0 && read(fds[0], &t1, sizeof t1) != sizeof t1) return 1;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (strcmp(mode, "true") == 0) t1 = now_us();
    lat[i] = t1 - t0;
  }
  qsort(lat, (size_t)count, sizeof *lat, cmp);
  printf("{\"mode\":\"%s\",\"count\":%d,\"median_us\":%.1f,\"p90_us\":%.1f,\"min_us\":%.1f}\n", mode, count,
         lat[count / 2], lat[(count * 9) / 10], lat[0]);
  return 0;
}
