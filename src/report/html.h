// report.html: one self-contained page (inline CSS and JS, no request of any kind, enforced by its
// Content-Security-Policy) with the verdicts, per-process charts (RSS by category, GC, fds) and an
// interactive flame graph per stack kind.
//
// Data travels as JSON inside <script type="application/json"> blocks with '<', '>', '&' escaped, so a
// function name or path from the traced process can never become markup; the page puts text in the DOM
// with textContent only. The report JSON may lack any section: the page shows what is there.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"
#include "symbolize/stack_profile.h"

namespace memlens::report {

// The flame-graph data of one profile: stacks merged into a tree, in preorder (node 0 is the root "all",
// children sorted by label), as the compact JSON object the page reads:
//   {"kind", "sample_types": [{"type","unit"}], "stacks": distinct stacks, "names": [labels],
//    "name_kind": [0 native | 1 js | 2 unknown per name], "n": [name index per node],
//    "d": [depth per node], "v": [[total per node] per sample type]}
// Returned as JSON text (not yet escaped for HTML), built without an intermediate nlohmann::json for speed.
std::string flame_graph_json(const symbolize::StackProfile& profile);

// The whole page.
std::string render_html(const nlohmann::json& report, const std::vector<symbolize::StackProfile>& profiles);

// Writes <dir>/report.html atomically.
Status write_html(const std::string& dir, const nlohmann::json& report,
                  const std::vector<symbolize::StackProfile>& profiles);

// JSON text made safe inside a <script> element: '<', '>', '&' and U+2028/U+2029 as \u escapes (valid
// JSON, since these characters can occur only inside JSON strings).
std::string escape_json_for_script(std::string_view json);

}  // namespace memlens::report
