// pprof's profile.proto, gzip-compressed: the format pprof, Pyroscope, Parca and speedscope open.
//
// What a profile holds:
//  - sample_type: the symbolize::StackProfile's sample types, in order; default_sample_type is the first.
//  - one Sample per distinct (pid, stack), leaf first, values summed, a numeric label "pid".
//  - one Function per distinct (label, name, module): name is Frame::label() (JS frames end in " [js]"),
//    system_name the symbol as symbolized, filename the module path.
//  - one Location per distinct (pid, module, address, function), with its address and mapping.
//  - one Mapping per (pid, module, build-id): memory_start is the address where the module's file offset 0
//    lies (address - file_offset), memory_limit one past the highest address seen, the build-id as hex.
//    has_functions is set, so viewers do not try to symbolize again.
//  - time_nanos and duration_nanos from the profile; a comment naming memlens and the kind.
// Every string is made valid UTF-8 (protobuf strings must be).
#pragma once

#include <string>

#include "common/result.h"
#include "symbolize/stack_profile.h"

namespace memlens::report {

// The uncompressed profile.proto message.
std::string encode_pprof_proto(const symbolize::StackProfile& profile);

// The gzip-compressed message, as written to <kind>.pb.gz.
Result<std::string> encode_pprof(const symbolize::StackProfile& profile);

// Writes <dir>/<kind>.pb.gz atomically.
Status write_pprof(const std::string& dir, const symbolize::StackProfile& profile);

// gzip (RFC 1952) compression and decompression with zlib. gunzip bounds its output to max_bytes.
Result<std::string> gzip_compress(std::string_view data);
Result<std::string> gzip_decompress(std::string_view data, size_t max_bytes = size_t{1} << 30);

}  // namespace memlens::report
