#include "collect/extensions.h"

namespace memlens::collect {

std::unique_ptr<TraceExtension> make_v8_extension(BpfSession&) { return nullptr; }

}  // namespace memlens::collect
