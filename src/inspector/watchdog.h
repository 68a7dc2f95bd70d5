// Closes an inspector memlens opened however memlens ends, SIGKILL included: a small process forked when
// the inspector opens, whose only job is to wait for memlens's end (the read end of a pipe that only
// memlens holds) and then, unless memlens said it closed the inspector itself, connect once more from
// inside the target's network namespace and evaluate process._debugEnd(). It leaves memlens's session and
// ignores the terminal's signals, so a Ctrl-C for memlens's group does not end it first; it holds no file
// of memlens's but its pipe and the namespace.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/result.h"

namespace memlens::inspector {

class InspectorWatchdog {
 public:
  // host/port/path: the inspector's WebSocket endpoint; netns_pid: whose network namespace to enter.
  static Result<InspectorWatchdog> start(pid_t netns_pid, const std::string& host, uint16_t port,
                                         const std::string& ws_path);
  InspectorWatchdog() = default;
  InspectorWatchdog(InspectorWatchdog&& o) noexcept;
  InspectorWatchdog& operator=(InspectorWatchdog&& o) noexcept;
  InspectorWatchdog(const InspectorWatchdog&) = delete;
  InspectorWatchdog& operator=(const InspectorWatchdog&) = delete;
  // Without dismiss(): the watchdog closes the inspector.
  ~InspectorWatchdog();

  // memlens closed the inspector itself (or it is gone): the watchdog exits without acting.
  void dismiss();
  pid_t pid() const { return pid_; }

 private:
  void release();
  pid_t pid_ = -1;
  int pipe_ = -1;
};

// Connects to host:port/ws_path (inside netns_fd when >= 0) and evaluates process._debugEnd().
Status close_inspector_remotely(int netns_fd, const std::string& host, uint16_t port,
                                const std::string& ws_path);

}  // namespace memlens::inspector
