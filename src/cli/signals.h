// Ctrl-C, SIGTERM and SIGHUP end a trace cleanly: the loop sees the flag, drains, detaches and writes
// the report. A second signal hurries the stop (no grace period for the command to exit) but still writes
// the report the first one promised; a third is left to its default action, so a stuck memlens can always
// be interrupted.
#pragma once

#include <atomic>

namespace memlens::cli {

void install_stop_handlers();
// 0 when no stop was asked, else the number of the first stop signal.
int stop_signal();
// How many stop signals arrived: 2 asks to stop at once.
int stop_requests();
void restore_default_handlers();

}  // namespace memlens::cli
