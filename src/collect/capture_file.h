// The capture file (docs/capture-format.md): a versioned header, then chunks, each zlib-compressed with its
// length and CRC, holding tagged records. Written as a trace goes (a chunk per sample interval at most), so
// a capture cut short (SIGKILL, a full disk) stays readable up to its last complete chunk. This is the
// container only: which records a trace writes, and what they hold, is collect/capture_records.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/safe_file.h"

namespace memlens::collect {

inline constexpr char kCaptureMagic[8] = {'M', 'L', 'C', 'A', 'P', 'T', 'R', '\n'};
// The format this build writes, and the newest it reads. Older versions are read. 2: the report is rebuilt
// from the event stream and the capabilities' end states (record 36); 1 held the analysed trace (record 33).
inline constexpr uint16_t kCaptureFormatVersion = 2;
// Bounds that keep a damaged or hostile capture from costing more than a chunk's worth of memory.
inline constexpr uint32_t kMaxChunkBytes = 8u << 20;     // raw (uncompressed) bytes in one chunk
inline constexpr size_t kChunkTargetBytes = 256u << 10;  // the writer closes a chunk past this

// A record's class for the size bound (--max-size): events stop first, the rest is kept while it fits.
enum class RecordClass { kEvent, kEssential };

struct CaptureRecord {
  uint16_t type = 0;
  std::string payload;
};

struct CaptureWriterOptions {
  // The file is never larger than this (0: no bound). Past max_bytes - the reserve for what the end of a
  // trace writes (docs/capture-format.md), event records are dropped and counted; the others are written
  // while they fit.
  uint64_t max_bytes = 0;
  std::string memlens_version;
};

class CaptureWriter {
 public:
  // Creates path (mode 0600, O_EXCL|O_NOFOLLOW: an existing file or a symlink is refused) and writes the
  // header.
  static Result<CaptureWriter> create(const std::string& path, const CaptureWriterOptions& opts);
  CaptureWriter(CaptureWriter&&) = default;
  CaptureWriter& operator=(CaptureWriter&&) = default;

  // Queues a record; written with the next chunk. A record that does not fit the bound is dropped and
  // counted (dropped()), never written in part.
  Status add(uint16_t type, std::string_view payload, RecordClass cls = RecordClass::kEssential);
  // Writes the queued records as one chunk (nothing when none is queued).
  Status flush();
  // Writes the queued records and the end record, and syncs the file. A capture without its end record was
  // cut short.
  Status close();

  // Records dropped by the size bound, by class.
  uint64_t events_dropped() const { return events_dropped_; }
  uint64_t others_dropped() const { return others_dropped_; }
  // Records larger than a chunk may hold (kMaxChunkBytes), dropped whatever the bound.
  uint64_t oversize_dropped() const { return oversize_dropped_; }
  // Whether the bound stopped event records (from then on, all are dropped).
  bool events_stopped() const { return events_stopped_; }
  uint64_t bytes_written() const { return written_; }

  // The bytes kept for the records that end a trace (samples, names, the end record) once events stop.
  static uint64_t reserve_for(uint64_t max_bytes);

 private:
  CaptureWriter() = default;
  Status write_all(std::string_view bytes);
  uint64_t pending_estimate() const;

  UniqueFd fd_;
  CaptureWriterOptions opts_;
  std::string pending_;  // raw records of the chunk being built
  uint32_t pending_records_ = 0;
  uint64_t written_ = 0;
  uint64_t events_dropped_ = 0, others_dropped_ = 0, oversize_dropped_ = 0;
  bool events_stopped_ = false;
  bool closed_ = false;
};

// What reading a capture found besides its records.
struct CaptureReadStatus {
  uint16_t format_version = 0;
  std::string memlens_version;  // of the memlens that wrote it
  uint64_t chunks = 0;
  uint64_t corrupt_chunks = 0;  // CRC or zlib failure: skipped, their records lost
  bool complete = false;        // its end record was read
  // Records the writer's size bound dropped (from the end record), by class.
  uint64_t events_dropped = 0, others_dropped = 0;
  uint64_t oversize_dropped = 0;  // records over the chunk limit the writer dropped
  // Why reading stopped before the end record (cut short, damaged framing), empty when complete.
  std::string stopped_because;
  uint64_t stopped_at_offset = 0;
};

struct Capture {
  CaptureReadStatus status;
  std::vector<CaptureRecord> records;  // in file order, the end record excluded
};

// Called with each record of a capture in file order, the end record excluded; the payload is valid during
// the call only.
using CaptureRecordSink = std::function<void(uint16_t type, std::string_view payload)>;
// Reads a capture's records one chunk at a time: beyond what sink keeps, memory holds one chunk (at most
// kMaxChunkBytes inflated) whatever the capture's size. Errors as parse_capture; a capture cut short or with
// damaged chunks is read up to where it can be, and the status says so.
Result<CaptureReadStatus> scan_capture(std::string_view bytes, const CaptureRecordSink& sink);
// The same from the file at path (a regular file, no symlink), read a chunk at a time.
Result<CaptureReadStatus> scan_capture_file(const std::string& path, const CaptureRecordSink& sink);

// Reads a capture from its bytes, every record kept in memory. Errors: not a capture, a newer format version
// (with what to do). A capture cut short or with damaged chunks is read up to where it can be, and the status
// says so.
Result<Capture> parse_capture(std::string_view bytes);
// Reads the capture at path (a regular file, no symlink) and parses it.
Result<Capture> read_capture(const std::string& path);

// CRC-32 (zlib's) of bytes.
uint32_t capture_crc32(std::string_view bytes);

}  // namespace memlens::collect
