#include "cli/signals.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>

namespace memlens::cli {

namespace {

std::atomic<int> g_stop{0};
std::atomic<int> g_requests{0};

void say(const char* text) {
  (void)!write(STDERR_FILENO, text, strlen(text));
}

void on_stop(int sig) {
  int n = ++g_requests;
  if (n == 1) {
    g_stop.store(sig);
    return;
  }
  if (n == 2) {
    say("\nmemlens: stopping now, writing the report (once more to quit without it)\n");
    return;
  }
  say("\nmemlens: quitting without a report\n");
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int stop_signal() {
  return g_stop.load();
}

int stop_requests() {
  return g_requests.load();
}

void restore_default_handlers() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) signal(sig, SIG_DFL);
}

}  // namespace memlens::cli
