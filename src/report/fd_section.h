// The fd parts of the reports: the "fds" section of a process in report.json (report/sections.h), the
// entries `memlens fds` prints.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "model/trace.h"
#include "symbolize/stack_profile.h"
#include "symbolize/symbolizer.h"

namespace memlens::report {

// The opening stack of an entry, innermost frame first, symbolized with sym when given (else frames are
// bare addresses). Empty when the stack is unknown (a seeded fd, or its capture failed).
symbolize::Stack fd_opening_stack(const model::FdTable& table, const model::FdEntry& e,
                                  symbolize::ProcessSymbolizer* sym);

// One fd as report.json and `memlens fds --json` write it: fd, type, path or socket addresses, opened_at
// (trace seconds; null when it was open before tracing), opened_by, cloexec, and stack (frame labels,
// innermost first; null when unknown): symbolized with sym when given, else the names the table holds
// (FdTable::stack_labels), else bare addresses.
nlohmann::json fd_entry_json(const model::FdTable& table, const model::FdEntry& e,
                             symbolize::ProcessSymbolizer* sym);

}  // namespace memlens::report
