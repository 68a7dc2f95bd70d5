// Checks on the JSON (and CBOR) documents a capture's records hold, which are untrusted input: a number
// that is not finite, or too large for the integer fields it may be read into, would be undefined
// behaviour once converted, so a document holding one is refused whole.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace memlens::collect {

// Whether every floating-point number in j is finite and within +-2^31 (the times and durations memlens
// writes as doubles are far below it; an integer field never holds a double that memlens wrote). Walks
// with a stack of its own: a document nested deeply cannot exhaust the thread's.
bool safe_numbers(const nlohmann::json& j);

// The string at key in object j, or "" when it is absent or not a string.
std::string string_at(const nlohmann::json& j, const char* key);

}  // namespace memlens::collect
