// Whether SIGUSR1 would open Node's inspector in a process, decided before any signal is sent.
//
// Node catches SIGUSR1 with its own handler (node::inspector::StartIoThreadWakeup), which starts the
// inspector. An app that listens for SIGUSR1 (process.on('SIGUSR1')) makes libuv install its handler
// (uv__signal_handler) instead: the signal then reaches the app's code and no inspector starts. /proc only
// says that the signal is caught; the kernel holds the handler's address (task->sighand->action), read
// here with a BPF syscall program, and the address is named with the process's own symbols.
//
// The command line and NODE_OPTIONS refuse too: --disable-sigusr1; --permission without
// --allow-inspector; an inspector bound to an address other than loopback.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace memlens::inspector {

// The inspector options a node process was started with (its argv before the script, and NODE_OPTIONS).
struct InspectorFlags {
  bool disable_sigusr1 = false;
  bool permission = false;        // --permission (or --experimental-permission)
  bool allow_inspector = false;   // --allow-inspector
  bool inspect_at_start = false;  // --inspect, --inspect-brk, --inspect-wait: opened at start-up
  std::string host;               // from --inspect[-port]=[host:]port; empty: 127.0.0.1
  std::optional<uint16_t> port;   // empty: 9229
};
// Node's own options only: those before the script (or -e/-p code), plus NODE_OPTIONS.
InspectorFlags parse_inspector_flags(const std::vector<std::string>& argv, const std::string& node_options);
Result<InspectorFlags> read_inspector_flags(pid_t pid);

bool is_loopback_host(const std::string& host);

enum class HandlerOwner {
  kNodeInspector,  // node's handler: SIGUSR1 opens the inspector
  kAppListener,    // libuv's: the app listens for SIGUSR1 itself
  kDefault,        // SIG_DFL: the signal would end the process (node not yet started, or started with
                   // --disable-sigusr1)
  kIgnored,        // SIG_IGN
  kUnknown,        // another handler, or it could not be read
};
const char* handler_owner_name(HandlerOwner o);

struct HandlerCheck {
  HandlerOwner owner = HandlerOwner::kUnknown;
  uint64_t address = 0;
  std::string symbol;  // the handler's symbol, when named
  std::string detail;  // why kUnknown
};

// Reads the SIGUSR1 disposition of pid from the kernel and names it.
HandlerCheck check_sigusr1_handler(pid_t pid);
// Classifies a handler from its address and symbol (separate for unit tests).
HandlerOwner classify_handler(uint64_t address, const std::string& symbol);

// Reads the sa_handler of signo in pid (BPF). A value, or why it cannot be read.
Result<uint64_t> read_signal_handler(pid_t pid, int signo);

}  // namespace memlens::inspector
