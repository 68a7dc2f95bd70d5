// Who releases the held processes when memlens cannot: a tiny process forked by memlens before it loads any
// BPF (so it holds no link: its life keeps no probe attached), which waits for memlens to end, however it
// ends (SIGKILL included), and then sends SIGCONT to every process still in the hold map.
//
// It learns the held pids exactly: memlens sends it the hold map's fd over a unix socket once the map
// exists, and the kernel records every hold there before it stops the process. It learns of memlens's end
// from a pidfd of memlens, which becomes readable once every thread of memlens has exited, and so after
// every file memlens had open (its BPF links among them) was closed: no new hold can begin after that
// (the few microseconds a program already running takes are covered by sweeping again a moment later).
// It leaves memlens's session and ignores the signals a terminal sends, so a Ctrl-C meant for memlens or
// its process group does not end it first. Nothing is pinned: once it has exited, the map is gone too.
#pragma once

#include <sys/types.h>

#include "common/result.h"

namespace memlens::collect {

class HoldWatchdog {
 public:
  // Forks the watchdog. Call while memlens has one thread and before any BPF object is loaded.
  static Result<HoldWatchdog> start();
  HoldWatchdog() = default;
  HoldWatchdog(HoldWatchdog&& o) noexcept : pid_(o.pid_), sock_(o.sock_) {
    o.pid_ = -1;
    o.sock_ = -1;
  }
  HoldWatchdog& operator=(HoldWatchdog&& o) noexcept;
  HoldWatchdog(const HoldWatchdog&) = delete;
  HoldWatchdog& operator=(const HoldWatchdog&) = delete;
  // Closes memlens's end of the socket. The watchdog lives on until memlens has exited: it sweeps the map
  // once more then (a hold the kernel began while memlens was releasing the others) and exits.
  ~HoldWatchdog();

  // Hands the watchdog the hold map (a duplicate of its fd travels over the socket).
  Status watch(int held_map_fd);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int sock_ = -1;
};

}  // namespace memlens::collect
