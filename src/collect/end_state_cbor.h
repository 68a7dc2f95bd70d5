// The capabilities' end state of a process as a capture records it (record kRecordCapabilitiesEndState,
// docs/capture-format.md): a CBOR map (RFC 8949) with every field by name, so that a later memlens reads
// what an earlier one wrote (a field it lacks takes its default) and an earlier one skips what it does not
// know. CBOR rather than JSON text: strings keep their bytes (paths and names need not be UTF-8) and
// doubles their 64 bits.
#pragma once

#include <string>
#include <string_view>

#include "collect/trace_builder.h"
#include "common/result.h"

namespace memlens::collect {

std::string encode_capabilities_end_state(const CapabilitiesEndState& s);
// Errors: not a CBOR map, nested too deep, a number out of range, more than a live trace holds, tables
// that disagree, or a field of the wrong type.
Result<CapabilitiesEndState> decode_capabilities_end_state(std::string_view payload);

}  // namespace memlens::collect
