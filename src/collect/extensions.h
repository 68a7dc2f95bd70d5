// The capabilities every trace runs with, in the order their hooks are called.
#pragma once

#include <memory>
#include <vector>

#include "collect/extension.h"

namespace memlens::collect {

struct ExtensionOptions {
  bool fds = true;
  bool v8 = true;
  // V8: probe every ArrayBuffer allocation and free (exact totals and stacks, at a trap per allocation)
  // rather than reading the allocator's counter and sampling stacks in short windows.
  bool v8_alloc_probes = false;
  bool attribution = true;
  bool fd_accept_stacks = false;  // --fd-stacks=accept
};

// accept_stacks: probe accept and accept4 too (each accepted connection then costs a trap, and gets its
// opening stack); without, accepted sockets are found in /proc at each sample.
std::unique_ptr<TraceExtension> make_fd_extension(BpfSession& session, bool accept_stacks = false);
std::unique_ptr<TraceExtension> make_v8_extension(BpfSession& session, bool alloc_probes = false);
struct AttributionOptions;  // collect/attribution_extension.h
std::unique_ptr<TraceExtension> make_attribution_extension(const AttributionOptions& opts);

std::vector<std::unique_ptr<TraceExtension>> default_extensions(BpfSession& session,
                                                                const ExtensionOptions& opts);

}  // namespace memlens::collect
