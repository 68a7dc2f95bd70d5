#include "collect/extensions.h"

namespace memlens::collect {

std::unique_ptr<TraceExtension> make_fd_extension(BpfSession&) { return nullptr; }

}  // namespace memlens::collect
