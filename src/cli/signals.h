// Ctrl-C, SIGTERM and SIGHUP end a trace cleanly: the loop sees the flag, drains, detaches and writes
// the report. A second signal while stopping is left to its default action, so a stuck memlens can be
// interrupted.
#pragma once

#include <atomic>

namespace memlens::cli {

void install_stop_handlers();
// 0 when no stop was asked, else the signal number.
int stop_signal();
void restore_default_handlers();

}  // namespace memlens::cli
