// What a capture's records hold (docs/capture-format.md): the record types, and the encoding of decoded
// events (collect/decode.h) as records. Fixed little-endian fields; a reader takes a record that is longer
// than it knows (fields a later version added at its end) and refuses one that is shorter.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "collect/capture_file.h"
#include "collect/decode.h"
#include "collect/trace_builder.h"
#include "common/result.h"
#include "symbolize/stack_profile.h"

namespace memlens::collect {

enum CaptureRecordType : uint16_t {
  // 0 is never a record; 1 ends a capture (collect/capture_file.cpp).
  kRecordProcEvent = 16,
  kRecordMmEvent = 17,
  kRecordGcEvent = 18,
  kRecordArrayBufferNotice = 19,
  kRecordFdEvent = 20,
  // What the end of a trace knows (docs/capture-format.md, "Replay"):
  kRecordRun = 32,             // the run: command or pid, options, memlens version, kernel (JSON text)
  kRecordReport = 33,          // format 1 only: the analysed trace as report.json holds it, at the end
  kRecordReportSnapshot = 34,  // the same, taken during the trace: what a capture cut short reports
  kRecordStackProfile = 35,    // a stack profile with its frame-name table (names resolved at record time)
  // The capabilities' state of a process at the end (fd table, attribution, V8's inspector view, stack
  // tables; a CBOR map, collect/end_state_cbor.h) (HostAnswer).
  kRecordCapabilitiesEndState = 36,
  // 37-47: reserved for the capabilities' own state.
  // 48-63: what the live host contributes to the model, for a replay of the event stream:
  kRecordTrackStart = 48,        // memlens started tracking a process by itself (collect/trace_builder.h)
  kRecordProcessIdentity = 49,   // a process's identity as the host read it (HostAnswer)
  kRecordProcessSample = 50,     // a process's timeline sample and kernel figures (HostAnswer)
  kRecordAddressSpaceSeed = 51,  // a process's mappings as the host read them (HostAnswer)
  kRecordProcessEndState = 52,   // notes, holds, untraced time, losses of a process at the end (HostAnswer)
  kRecordTraceEnd = 53,
  kRecordV8EndState = 54,  // what the V8 capability knew of a process at the end, its GCs aside (HostAnswer)
  kRecordAddressSpaceUnmapped = 55,  // ranges a process unmapped, found in /proc at a sample (HostAnswer)
};

// Whether type is an event record this build reads.
bool is_event_record(uint16_t type);

// The record type and payload of a decoded event.
uint16_t event_record_type(const Event& e);
std::string encode_event(const Event& e);

// The event a record holds. Errors: not an event record type, or a payload shorter than its fields.
Result<Event> decode_event_record(uint16_t type, std::string_view payload);

// A TrackStart as a record. Errors: a payload shorter than its fields.
std::string encode_track_start(const TrackStart& t);
Result<TrackStart> decode_track_start(std::string_view payload);

// What the live host contributed, as a record: its type and payload, and back. Errors: not such a record
// type, or a payload shorter than its fields.
bool is_host_answer_record(uint16_t type);
uint16_t host_answer_record_type(const HostAnswer& a);
std::string encode_host_answer(const HostAnswer& a);
Result<HostAnswer> decode_host_answer(uint16_t type, std::string_view payload);

// The events of a capture, in order, with what could not be read: record types this build does not know
// (from a later memlens: skipped) and records that are malformed.
struct CaptureEvents {
  std::vector<Event> events;
  uint64_t unknown_records = 0;
  uint64_t malformed_records = 0;
};
CaptureEvents capture_events(const Capture& capture);

// A stack profile as a record: its sample types, a table of the distinct frames (each with its name,
// module, build-id and offsets as resolved while the process lived), and the samples as indexes into it.
// A report of the capture needs neither the traced binaries nor the perf maps.
std::string encode_stack_profile(const symbolize::StackProfile& profile);
// Errors: a payload shorter than its fields, or a frame index out of the table.
Result<symbolize::StackProfile> decode_stack_profile(std::string_view payload);

}  // namespace memlens::collect
