#include "collect/extensions.h"

namespace memlens::collect {

std::vector<std::unique_ptr<TraceExtension>> default_extensions(BpfSession& session, const ExtensionOptions& opts) {
  std::vector<std::unique_ptr<TraceExtension>> out;
  if (opts.v8)
    if (auto e = make_v8_extension(session)) out.push_back(std::move(e));
  if (opts.fds)
    if (auto e = make_fd_extension(session)) out.push_back(std::move(e));
  return out;
}

}  // namespace memlens::collect
