#include "cli/signals.h"

#include <signal.h>

namespace memlens::cli {

namespace {

std::atomic<int> g_stop{0};

void on_stop(int sig) {
  g_stop.store(sig);
  // The next one gets the default action.
  signal(sig, SIG_DFL);
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int stop_signal() { return g_stop.load(); }

void restore_default_handlers() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) signal(sig, SIG_DFL);
}

}  // namespace memlens::cli
