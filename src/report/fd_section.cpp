#include "report/sections.h"

namespace memlens::report {

nlohmann::json fd_section(const model::Process&) { return nullptr; }

}  // namespace memlens::report
