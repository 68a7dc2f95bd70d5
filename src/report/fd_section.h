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

// How many open fds the "longest_open" list of a process holds.
inline constexpr size_t kLongestOpenFds = 20;

// The opening stack of an entry, innermost frame first, symbolized with sym when given (else frames are
// bare addresses). Empty when the stack is unknown (a seeded fd, or its capture failed).
symbolize::Stack fd_opening_stack(const model::FdTable& table, const model::FdEntry& e,
                                  symbolize::ProcessSymbolizer* sym);

// One fd as report.json and `memlens fds --json` write it: fd, type, path or socket addresses, opened_at
// (trace seconds; null when it was open before tracing), opened_by, cloexec, and stack (frame labels,
// innermost first; null when unknown).
nlohmann::json fd_entry_json(const model::FdTable& table, const model::FdEntry& e,
                             symbolize::ProcessSymbolizer* sym);

// The open fds that were open longest (seeded ones first, by fd number), at most n.
std::vector<const model::FdEntry*> longest_open(const model::FdTable& table, size_t n);

}  // namespace memlens::report
