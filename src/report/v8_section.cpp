#include "report/sections.h"

namespace memlens::report {

nlohmann::json v8_gc_section(const model::Process&) { return nullptr; }
nlohmann::json v8_array_buffers_section(const model::Process&) { return nullptr; }

}  // namespace memlens::report
