#include "collect/capture_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

namespace memlens::collect {

namespace {

constexpr char kChunkMagic[4] = {'C', 'H', 'N', 'K'};
constexpr size_t kChunkHeaderBytes = 4 + 4 * 4;  // magic, raw length, compressed length, records, CRC
constexpr size_t kRecordHeaderBytes = 2 + 4;     // type, payload length
constexpr size_t kMaxVersionBytes = 64;
// Record type 1 ends a capture (docs/capture-format.md); its payload: the records the size bound dropped.
constexpr uint16_t kEndRecord = 1;
constexpr size_t kEndPayloadBytes = 24;
constexpr size_t kEndPayloadBytesV1 = 16;  // without the count of records over the chunk limit

void put_u16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint16_t get_u16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | static_cast<uint8_t>(p[1]) << 8);
}

uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(p[i]);
  return v;
}

uint64_t get_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(p[i]);
  return v;
}

void put_record(std::string& out, uint16_t type, std::string_view payload) {
  put_u16(out, type);
  put_u32(out, static_cast<uint32_t>(payload.size()));
  out.append(payload);
}

// The largest a chunk holding raw_bytes of records can be on disk.
uint64_t chunk_bound(uint64_t raw_bytes) {
  return kChunkHeaderBytes + compressBound(static_cast<uLong>(raw_bytes));
}

const uint64_t kEndChunkBound = chunk_bound(kRecordHeaderBytes + kEndPayloadBytes);

}  // namespace

uint32_t capture_crc32(std::string_view bytes) {
  return static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data()),
                                     static_cast<uInt>(bytes.size())));
}

uint64_t CaptureWriter::reserve_for(uint64_t max_bytes) {
  // A quarter of the bound, at least 64 KiB, at most half of it: the last samples, the names of the
  // frames the stacks hold, the run's end.
  return std::min(max_bytes / 2, std::max<uint64_t>(max_bytes / 4, 64u << 10));
}

Result<CaptureWriter> CaptureWriter::create(const std::string& path, const CaptureWriterOptions& opts) {
  CaptureWriter w;
  w.opts_ = opts;
  w.fd_ = UniqueFd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!w.fd_) {
    if (errno == EEXIST)
      return make_error(
          fmt::format("{} exists: choose a new file for the capture (it is never overwritten)", path),
          EEXIST);
    return errno_error(fmt::format("cannot create the capture file {}", path));
  }
  std::string header(kCaptureMagic, sizeof kCaptureMagic);
  put_u16(header, kCaptureFormatVersion);
  std::string version = opts.memlens_version.substr(0, kMaxVersionBytes);
  put_u16(header, static_cast<uint16_t>(version.size()));
  header += version;
  put_u32(header, capture_crc32(header));
  if (opts.max_bytes != 0 && header.size() + kEndChunkBound > opts.max_bytes)
    return make_error(fmt::format("--max-size {} bytes is too small for a capture", opts.max_bytes), EINVAL);
  if (auto s = w.write_all(header); !s) return s.error();
  return w;
}

Status CaptureWriter::write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("cannot write the capture file");
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    written_ += static_cast<uint64_t>(n);
  }
  return {};
}

uint64_t CaptureWriter::pending_estimate() const {
  return pending_.empty() ? 0 : chunk_bound(pending_.size());
}

Status CaptureWriter::add(uint16_t type, std::string_view payload, RecordClass cls) {
  if (closed_) return make_error("the capture file is closed");
  if (type == kEndRecord || type == 0) return make_error(fmt::format("record type {} is reserved", type));
  size_t record_bytes = kRecordHeaderBytes + payload.size();
  if (record_bytes > kMaxChunkBytes) {  // larger than a reader takes in one chunk
    ++oversize_dropped_;
    return {};
  }
  if (pending_.size() + record_bytes > kMaxChunkBytes)
    if (auto s = flush(); !s) return s;
  if (opts_.max_bytes != 0) {
    // What the file would be with this record, its chunk and the end record: never past the bound.
    uint64_t with = written_ + chunk_bound(pending_.size() + record_bytes) + kEndChunkBound;
    if (cls == RecordClass::kEvent &&
        (events_stopped_ || with > opts_.max_bytes - reserve_for(opts_.max_bytes))) {
      events_stopped_ = true;
      ++events_dropped_;
      return {};
    }
    if (with > opts_.max_bytes) {
      ++(cls == RecordClass::kEvent ? events_dropped_ : others_dropped_);
      return {};
    }
  }
  put_record(pending_, type, payload);
  ++pending_records_;
  if (pending_.size() >= kChunkTargetBytes) return flush();
  return {};
}

Status CaptureWriter::flush() {
  if (pending_.empty()) return {};
  uLongf comp_len = compressBound(static_cast<uLong>(pending_.size()));
  std::string comp(comp_len, '\0');
  if (compress2(reinterpret_cast<Bytef*>(comp.data()), &comp_len,
                reinterpret_cast<const Bytef*>(pending_.data()), static_cast<uLong>(pending_.size()),
                Z_BEST_SPEED) != Z_OK)
    return make_error("cannot compress a capture chunk");
  comp.resize(comp_len);
  std::string chunk(kChunkMagic, sizeof kChunkMagic);
  put_u32(chunk, static_cast<uint32_t>(pending_.size()));
  put_u32(chunk, static_cast<uint32_t>(comp.size()));
  put_u32(chunk, pending_records_);
  put_u32(chunk, capture_crc32(comp));
  chunk += comp;
  pending_.clear();
  pending_records_ = 0;
  return write_all(chunk);
}

Status CaptureWriter::close() {
  if (closed_) return {};
  if (auto s = flush(); !s) return s;
  std::string end;
  put_u64(end, events_dropped_);
  put_u64(end, others_dropped_);
  put_u64(end, oversize_dropped_);
  put_record(pending_, kEndRecord, end);
  pending_records_ = 1;
  if (auto s = flush(); !s) return s;
  closed_ = true;
  if (::fsync(fd_.get()) != 0) return errno_error("cannot sync the capture file");
  return {};
}

namespace {

// Where a reader takes a capture's bytes from: a buffer, or a file read a piece at a time.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // The n bytes at off (off + n <= size()), valid until the next read.
  virtual Result<std::string_view> read(uint64_t off, size_t n) = 0;
};

class BufferSource : public ByteSource {
 public:
  explicit BufferSource(std::string_view bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  Result<std::string_view> read(uint64_t off, size_t n) override { return bytes_.substr(off, n); }

 private:
  std::string_view bytes_;
};

class FileSource : public ByteSource {
 public:
  FileSource(int fd, uint64_t size) : fd_(fd), size_(size) {}
  uint64_t size() const override { return size_; }
  Result<std::string_view> read(uint64_t off, size_t n) override {
    buf_.resize(n);
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd_, buf_.data() + got, n - got, static_cast<off_t>(off + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return errno_error("cannot read the capture");
      if (r == 0) return make_error("the capture shrank while it was read", EIO);
      got += static_cast<size_t>(r);
    }
    return std::string_view(buf_);
  }

 private:
  int fd_;
  uint64_t size_;
  std::string buf_;
};

Result<CaptureReadStatus> scan(ByteSource& src, const CaptureRecordSink& sink) {
  CaptureReadStatus st;
  constexpr size_t kFixed = sizeof kCaptureMagic + 2 + 2;
  auto fixed = src.size() < kFixed ? Result<std::string_view>(std::string_view()) : src.read(0, kFixed);
  if (!fixed) return fixed.error();
  if (fixed->size() < kFixed || std::memcmp(fixed->data(), kCaptureMagic, sizeof kCaptureMagic) != 0)
    return make_error("not a memlens capture (no capture header): give a file written by memlens record",
                      EINVAL);
  st.format_version = get_u16(fixed->data() + sizeof kCaptureMagic);
  size_t version_len = get_u16(fixed->data() + sizeof kCaptureMagic + 2);
  if (version_len > kMaxVersionBytes || src.size() < kFixed + version_len + 4)
    return make_error("the capture's header is damaged or cut short: nothing in it can be read", EINVAL);
  size_t header_len = kFixed + version_len;
  auto header = src.read(0, header_len + 4);
  if (!header) return header.error();
  st.memlens_version.assign(header->data() + kFixed, version_len);
  if (get_u32(header->data() + header_len) != capture_crc32(header->substr(0, header_len)))
    return make_error("the capture's header is damaged (checksum mismatch): nothing in it can be read",
                      EINVAL);
  if (st.format_version == 0)
    return make_error("the capture's header names format version 0, which no memlens writes", EINVAL);
  if (st.format_version > kCaptureFormatVersion)
    return make_error(
        fmt::format("this capture was written by memlens {} in capture format {}; this memlens "
                    "reads formats up to {}: report it with memlens {} or newer",
                    st.memlens_version, st.format_version, kCaptureFormatVersion, st.memlens_version),
        ENOTSUP);
  uint64_t off = header_len + 4;
  const uint64_t size = src.size();
  auto stop = [&](std::string why) {
    st.stopped_because = std::move(why);
    st.stopped_at_offset = off;
  };
  std::string raw;
  while (!st.complete) {
    if (off == size) {
      stop("cut short: it ends without its end record (memlens was killed, or the disk filled up)");
      break;
    }
    if (size - off < kChunkHeaderBytes) {
      stop("cut short inside a chunk header");
      break;
    }
    auto hv = src.read(off, kChunkHeaderBytes);
    if (!hv) {
      stop(hv.error().describe());
      break;
    }
    const char* h = hv->data();
    if (std::memcmp(h, kChunkMagic, sizeof kChunkMagic) != 0) {
      stop(fmt::format("damaged: no chunk where one should start (byte {})", off));
      break;
    }
    uint32_t raw_len = get_u32(h + 4), comp_len = get_u32(h + 8), crc = get_u32(h + 16);
    if (raw_len > kMaxChunkBytes || comp_len > compressBound(kMaxChunkBytes)) {
      stop(fmt::format("damaged: a chunk header at byte {} gives impossible lengths", off));
      break;
    }
    if (size - off - kChunkHeaderBytes < comp_len) {
      stop("cut short inside a chunk");
      break;
    }
    auto comp = src.read(off + kChunkHeaderBytes, comp_len);
    if (!comp) {
      stop(comp.error().describe());
      break;
    }
    off += kChunkHeaderBytes + comp_len;
    ++st.chunks;
    if (capture_crc32(*comp) != crc) {
      ++st.corrupt_chunks;
      continue;
    }
    raw.assign(raw_len, '\0');
    uLongf got = raw_len;
    if (uncompress(reinterpret_cast<Bytef*>(raw.data()), &got, reinterpret_cast<const Bytef*>(comp->data()),
                   comp_len) != Z_OK ||
        got != raw_len) {
      ++st.corrupt_chunks;
      continue;
    }
    size_t r = 0;
    while (r < raw.size()) {
      if (raw.size() - r < kRecordHeaderBytes) {
        ++st.corrupt_chunks;
        break;
      }
      uint16_t type = get_u16(raw.data() + r);
      uint32_t len = get_u32(raw.data() + r + 2);
      if (raw.size() - r - kRecordHeaderBytes < len) {
        ++st.corrupt_chunks;
        break;
      }
      std::string_view payload(raw.data() + r + kRecordHeaderBytes, len);
      r += kRecordHeaderBytes + len;
      if (type == kEndRecord) {
        st.complete = true;
        if (payload.size() >= kEndPayloadBytesV1) {
          st.events_dropped = get_u64(payload.data());
          st.others_dropped = get_u64(payload.data() + 8);
        }
        if (payload.size() >= kEndPayloadBytes) st.oversize_dropped = get_u64(payload.data() + 16);
        break;
      }
      sink(type, payload);
    }
  }
  return st;
}

}  // namespace

Result<CaptureReadStatus> scan_capture(std::string_view bytes, const CaptureRecordSink& sink) {
  BufferSource src(bytes);
  return scan(src, sink);
}

Result<CaptureReadStatus> scan_capture_file(const std::string& path, const CaptureRecordSink& sink) {
  auto f = open_regular_file(path);
  if (!f) return f.error();
  FileSource src(f->fd.get(), static_cast<uint64_t>(f->size));
  auto st = scan(src, sink);
  if (!st) return make_error(fmt::format("{}: {}", path, st.error().message), st.error().errno_value);
  return st;
}

namespace {

// Every record of a capture kept in memory, as scan_fn (a scan with a sink) yields them.
template <typename ScanFn>
Result<Capture> keep_all(ScanFn scan_fn) {
  Capture out;
  auto st = scan_fn([&](uint16_t type, std::string_view payload) {
    out.records.push_back({type, std::string(payload)});
  });
  if (!st) return st.error();
  out.status = std::move(*st);
  return out;
}

}  // namespace

Result<Capture> parse_capture(std::string_view bytes) {
  return keep_all([&](const CaptureRecordSink& sink) { return scan_capture(bytes, sink); });
}

Result<Capture> read_capture(const std::string& path) {
  return keep_all([&](const CaptureRecordSink& sink) { return scan_capture_file(path, sink); });
}

}  // namespace memlens::collect
