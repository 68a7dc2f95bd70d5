// JSON text of a document memlens writes. Strings from a traced process (its comm, command line, paths,
// JS names) need not be UTF-8, which JSON requires: their bad bytes become U+FFFD rather than an exception
// that would stop a report half written.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace memlens {

inline std::string json_text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace memlens
