// V8's old-generation limit of a node process, from the flags it was started with: --max-old-space-size
// (MB) on its command line or in NODE_OPTIONS. A JS heap leak reaches it before anything else does: V8
// then fails with "JavaScript heap out of memory". Without the flag the limit is V8's default, sized by
// V8 from the machine's memory in a way that differs between versions; memlens does not guess it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace memlens::node {

// The limit in bytes set by the last --max-old-space-size=N / --max_old_space_size N among the node
// options: NODE_OPTIONS first, then the command line (node lets the command line win). Only the options
// before the script (argv[1..] up to the first argument that is not an option) count: later ones belong to
// the script.
std::optional<uint64_t> heap_limit_from_flags(const std::vector<std::string>& argv,
                                              std::string_view node_options);

}  // namespace memlens::node
