// A process whose main thread calls pthread_exit while another thread runs on: /proc/PID/stat of the
// leader says Z, yet the process lives (its address space and its other thread). For the zombie tests.
//
// Usage: leader_exits [SECONDS]   the surviving thread touches memory for SECONDS (default 30), then exits 0.
// Prints {"event":"ready","pid":N} once the leader is about to exit.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double seconds = 30;

static void* survivor(void* arg) {
  (void)arg;
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    char* block = malloc(1 << 16);
    if (block) memset(block, 1, 1 << 16);
    free(block);
    usleep(10000);
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - start.tv_sec + (now.tv_nsec - start.tv_nsec) / 1e9 >= seconds) exit(0);
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc > 1) seconds = atof(argv[1]);
  pthread_t t;
  if (pthread_create(&t, NULL, survivor, NULL) != 0) return 1;
  printf("{\"event\":\"ready\",\"pid\":%d}\n", getpid());
  fflush(stdout);
  pthread_exit(NULL);
}
