#include "collect/extensions.h"

#include "collect/attribution_extension.h"
#include "collect/bpf_session.h"

namespace memlens::collect {

std::vector<std::unique_ptr<TraceExtension>> default_extensions(BpfSession& session,
                                                                const ExtensionOptions& opts) {
  std::vector<std::unique_ptr<TraceExtension>> out;
  if (opts.v8)
    if (auto e = make_v8_extension(session, opts.v8_alloc_probes)) out.push_back(std::move(e));
  if (opts.fds)
    if (auto e = make_fd_extension(session, opts.fd_accept_stacks)) out.push_back(std::move(e));
  // Last: its on_sample reads the figures the others put on the same sample (live backing stores).
  if (opts.attribution) {
    AttributionOptions a;
    a.oom_victims_marked = [&session]() { return session.marks_oom_victims(); };
    out.push_back(make_attribution_extension(a));
  }
  return out;
}

}  // namespace memlens::collect
