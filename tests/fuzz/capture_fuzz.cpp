// Fuzzes the capture reader (a capture comes from another host: its bytes are input like any other) and
// the ring-buffer record decoder, the stack-profile records (frame table and samples), and the records of
// what the live host answered.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "collect/capture_file.h"
#include "collect/capture_records.h"
#include "collect/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto c = memlens::collect::parse_capture(bytes);
  if (c) {
    uint64_t total = 0;
    for (const auto& r : c->records) {
      total += r.payload.size();
      if (r.type == memlens::collect::kRecordStackProfile) {
        // A decoded profile encodes back to the same bytes (one frame table order: first use).
        auto p = memlens::collect::decode_stack_profile(r.payload);
        if (p && memlens::collect::decode_stack_profile(memlens::collect::encode_stack_profile(*p))
                         ->samples.size() != p->samples.size())
          __builtin_trap();
      }
      if (memlens::collect::is_host_answer_record(r.type)) {
        auto a = memlens::collect::decode_host_answer(r.type, r.payload);
        // Fixed layouts encode back to the bytes read; the JSON record (fields by name, in any order) to
        // bytes that decode to the same again.
        std::string again = a ? memlens::collect::encode_host_answer(*a) : "";
        if (a && r.type == memlens::collect::kRecordCapabilitiesEndState) {
          auto b = memlens::collect::decode_host_answer(r.type, again);
          if (!b || memlens::collect::encode_host_answer(*b) != again) __builtin_trap();
        } else if (a && again != r.payload.substr(0, again.size())) {
          __builtin_trap();
        }
      }
      if (r.type == memlens::collect::kRecordTrackStart) {
        auto t = memlens::collect::decode_track_start(r.payload);
        if (t && memlens::collect::encode_track_start(*t) !=
                     r.payload.substr(0, memlens::collect::encode_track_start(*t).size()))
          __builtin_trap();
      }
      if (!memlens::collect::is_event_record(r.type)) continue;
      auto e = memlens::collect::decode_event_record(r.type, r.payload);
      // What decodes encodes back to the record up to the shorter of the two: later versions may append
      // fields, and a record of an earlier one, without its last optional field, encodes with it.
      if (e) {
        std::string back = memlens::collect::encode_event(*e);
        size_t common = std::min(back.size(), r.payload.size());
        if (back.compare(0, common, r.payload, 0, common) != 0) __builtin_trap();
      }
    }
    // Records are carved out of chunks that are each bounded: never more than the chunks could hold.
    if (total > c->status.chunks * uint64_t{memlens::collect::kMaxChunkBytes}) __builtin_trap();
  }
  auto d = memlens::collect::decode_event(data, size);
  if (auto* e = std::get_if<memlens::collect::Event>(&d)) (void)memlens::collect::event_pid(*e);
  return 0;
}
