// dup2 over an open fd, for the fd-tracking tests.
//
// Usage: fd_dup2 [HOLD_SECONDS [DELAY_MS [DIR]]]
// Creates two files a and b in DIR (default: a new directory under /tmp), opens both, waits DELAY_MS
// (default 0; lets a tracer attach first), then dup2(fd_a, fd_b) over the still-open fd_b, which closes b's
// file and makes fd_b refer to a's. Prints one JSON line on stdout:
//   {"event":"dup2","pid":N,"fd_a":A,"fd_b":B,"path_a":..,"path_b":..,"inode_a":..,
//    "inode_b_before":..,"inode_b_after":..,"dup2_result":B}
// then {"event":"fds","count":N,"fds":[{"fd":..,"target":..},...]} from readlink of /proc/self/fd, then
// sleeps until SIGTERM/SIGINT or HOLD_SECONDS (default 30) pass, removes the files and exits 0.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static int fail(const char* what) {
  fprintf(stderr, "fd_dup2: %s: %s\n", what, strerror(errno));
  return 1;
}

static int inode_of(int fd, unsigned long long* ino) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -1;
  *ino = (unsigned long long)st.st_ino;
  return 0;
}

// Paths here are our own temporary paths (no quotes or control characters), so they are printed as is.
static void print_fds(void) {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return;
  int dir_fd = dirfd(d);
  int count = 0;
  printf("{\"event\":\"fds\",\"fds\":[");
  struct dirent* e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd == dir_fd) continue;
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0) continue;
    target[n] = '\0';
    printf("%s{\"fd\":%d,\"target\":\"%s\"}", count ? "," : "", fd, target);
    count++;
  }
  closedir(d);
  printf("],\"count\":%d}\n", count);
  fflush(stdout);
}

int main(int argc, char** argv) {
  double hold_s = argc > 1 ? atof(argv[1]) : 30.0;
  long delay_ms = argc > 2 ? atol(argv[2]) : 0;
  char dir[PATH_MAX];
  if (argc > 3) {
    snprintf(dir, sizeof dir, "%s", argv[3]);
  } else {
    snprintf(dir, sizeof dir, "/tmp/memlens-fd-dup2-XXXXXX");
    if (!mkdtemp(dir)) return fail("mkdtemp");
  }

  char path_a[PATH_MAX + 8], path_b[PATH_MAX + 8];
  snprintf(path_a, sizeof path_a, "%s/a.txt", dir);
  snprintf(path_b, sizeof path_b, "%s/b.txt", dir);
  int fd_a = open(path_a, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd_a < 0) return fail("open a");
  int fd_b = open(path_b, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd_b < 0) return fail("open b");

  unsigned long long ino_a = 0, ino_b_before = 0, ino_b_after = 0;
  if (inode_of(fd_a, &ino_a) != 0 || inode_of(fd_b, &ino_b_before) != 0) return fail("fstat");

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  if (delay_ms > 0) {
    struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested) {
    }
  }

  int r = dup2(fd_a, fd_b);
  if (r < 0) return fail("dup2");
  if (inode_of(fd_b, &ino_b_after) != 0) return fail("fstat after dup2");

  printf(
      "{\"event\":\"dup2\",\"pid\":%d,\"fd_a\":%d,\"fd_b\":%d,\"path_a\":\"%s\",\"path_b\":\"%s\","
      "\"inode_a\":%llu,\"inode_b_before\":%llu,\"inode_b_after\":%llu,\"dup2_result\":%d}\n",
      (int)getpid(), fd_a, fd_b, path_a, path_b, ino_a, ino_b_before, ino_b_after, r);
  fflush(stdout);
  print_fds();

  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (!stop_requested) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    double elapsed = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
    if (elapsed >= hold_s) break;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
  }

  unlink(path_a);
  unlink(path_b);
  if (argc <= 3) rmdir(dir);
  return 0;
}
