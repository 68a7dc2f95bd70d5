#include "report/pprof.h"

#include <zlib.h>

#include <algorithm>
#include <map>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include "common/safe_file.h"
#include "report/folded.h"
#include "report/proto/profile.pb.h"

namespace memlens::report {
namespace {

// Interns strings into the profile's string table; index 0 is "" as the format requires.
class StringTable {
 public:
  explicit StringTable(pprof::Profile* profile) : profile_(profile) { intern(""); }
  int64_t intern(const std::string& s) {
    auto [it, inserted] = index_.try_emplace(s, static_cast<int64_t>(index_.size()));
    if (inserted) profile_->add_string_table(valid_utf8(s));
    return it->second;
  }

 private:
  pprof::Profile* profile_;
  std::unordered_map<std::string, int64_t> index_;
};

struct MappingKey {
  int pid;
  std::string module;
  std::string build_id;
  auto operator<=>(const MappingKey&) const = default;
};

struct LocationKey {
  uint64_t mapping_id;
  uint64_t address;
  uint64_t function_id;
  auto operator<=>(const LocationKey&) const = default;
};

struct FunctionKey {
  std::string name;
  std::string system_name;
  std::string filename;
  auto operator<=>(const FunctionKey&) const = default;
};

bool same_symbol(const symbolize::Frame& a, const symbolize::Frame& b) {
  return a.address == b.address && a.kind == b.kind && a.file_offset == b.file_offset &&
         a.function == b.function && a.module == b.module && a.build_id == b.build_id;
}

}  // namespace

std::string encode_pprof_proto(const symbolize::StackProfile& profile) {
  pprof::Profile out;
  StringTable strings(&out);

  for (const symbolize::SampleType& st : profile.sample_types) {
    pprof::ValueType* vt = out.add_sample_type();
    vt->set_type(strings.intern(st.type));
    vt->set_unit(strings.intern(st.unit));
  }
  if (!profile.sample_types.empty()) out.set_default_sample_type(out.sample_type(0).type());
  out.set_time_nanos(profile.time_ns);
  out.set_duration_nanos(profile.duration_ns);
  out.add_comment(strings.intern("memlens " MEMLENS_VERSION " " + profile.kind));

  std::map<MappingKey, uint64_t> mappings;
  std::map<FunctionKey, uint64_t> functions;
  std::map<LocationKey, uint64_t> locations;
  // Samples with the same pid and locations are merged; the key is the location list, leaf first.
  // Keyed by the raw bytes of pid and location ids: hashing them is cheaper than ordering vectors.
  std::unordered_map<std::string, size_t> sample_index;
  std::string sample_key;
  const int64_t pid_key = strings.intern("pid");
  const size_t nvalues = profile.sample_types.size();

  struct SeenFrame {
    int pid;
    const symbolize::Frame* frame;
    uint64_t location_id;
  };
  std::unordered_map<uint64_t, SeenFrame> seen_frames;

  std::vector<uint64_t> location_ids;
  for (const symbolize::StackSample& sample : profile.samples) {
    location_ids.clear();
    for (auto it = sample.stack.rbegin(); it != sample.stack.rend(); ++it) {
      const symbolize::Frame& frame = *it;
      // Fast path: the same address in the same process was seen before with the same symbolization.
      const uint64_t seen_key = frame.address ^ (uint64_t(uint32_t(sample.pid)) << 47) ^ uint64_t(sample.pid);
      auto seen = seen_frames.find(seen_key);
      if (seen != seen_frames.end() && seen->second.pid == sample.pid &&
          same_symbol(*seen->second.frame, frame)) {
        location_ids.push_back(seen->second.location_id);
        continue;
      }

      MappingKey mkey{sample.pid, frame.module, frame.build_id};
      auto [mit, mnew] = mappings.try_emplace(std::move(mkey), out.mapping_size() + 1);
      const uint64_t base = frame.address >= frame.file_offset ? frame.address - frame.file_offset : 0;
      if (mnew) {
        pprof::Mapping* mapping = out.add_mapping();
        mapping->set_id(mit->second);
        mapping->set_filename(strings.intern(frame.module));
        mapping->set_build_id(strings.intern(frame.build_id));
        mapping->set_has_functions(true);
        mapping->set_memory_start(base);
        mapping->set_memory_limit(frame.address + 1);
      } else {
        pprof::Mapping* mapping = out.mutable_mapping(static_cast<int>(mit->second - 1));
        mapping->set_memory_start(std::min<uint64_t>(mapping->memory_start(), base));
        mapping->set_memory_limit(std::max<uint64_t>(mapping->memory_limit(), frame.address + 1));
      }

      FunctionKey fkey{frame.label(), frame.function, frame.module};
      auto [fit, fnew] = functions.try_emplace(fkey, out.function_size() + 1);
      if (fnew) {
        pprof::Function* fn = out.add_function();
        fn->set_id(fit->second);
        fn->set_name(strings.intern(fkey.name.empty() ? "[unknown]" : fkey.name));
        fn->set_system_name(strings.intern(fkey.system_name));
        fn->set_filename(strings.intern(fkey.filename));
      }

      LocationKey lkey{mit->second, frame.address, fit->second};
      auto [lit, lnew] = locations.try_emplace(lkey, out.location_size() + 1);
      if (lnew) {
        pprof::Location* loc = out.add_location();
        loc->set_id(lit->second);
        loc->set_mapping_id(mit->second);
        loc->set_address(frame.address);
        loc->add_line()->set_function_id(fit->second);
      }
      location_ids.push_back(lit->second);
      seen_frames.insert_or_assign(seen_key, SeenFrame{sample.pid, &frame, lit->second});
    }

    sample_key.assign(reinterpret_cast<const char*>(&sample.pid), sizeof sample.pid);
    sample_key.append(reinterpret_cast<const char*>(location_ids.data()),
                      location_ids.size() * sizeof(uint64_t));
    auto [sit, snew] = sample_index.try_emplace(sample_key, out.sample_size());
    pprof::Sample* s;
    if (snew) {
      s = out.add_sample();
      for (uint64_t id : location_ids) s->add_location_id(id);
      for (size_t i = 0; i < nvalues; ++i) s->add_value(0);
      if (sample.pid != 0) {
        pprof::Label* label = s->add_label();
        label->set_key(pid_key);
        label->set_num(sample.pid);
      }
    } else {
      s = out.mutable_sample(static_cast<int>(sit->second));
    }
    // A sample with fewer values than sample types counts 0 for the missing ones; extra values are
    // dropped (a sample's value count must equal the number of sample types).
    for (size_t i = 0; i < nvalues && i < sample.values.size(); ++i) {
      s->set_value(static_cast<int>(i), s->value(static_cast<int>(i)) + sample.values[i]);
    }
  }
  return out.SerializeAsString();
}

Result<std::string> gzip_compress(std::string_view data) {
  z_stream zs{};
  // windowBits 15 + 16 selects the gzip wrapper; memLevel 8 is zlib's default.
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return make_error("zlib deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  const size_t written = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return make_error("zlib deflate failed: " + std::to_string(rc));
  out.resize(written);
  return out;
}

Result<std::string> gzip_decompress(std::string_view data, size_t max_bytes) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return make_error("zlib inflateInit2 failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buf[64 * 1024];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      return make_error("gzip data is corrupt or truncated (zlib " + std::to_string(rc) + ")");
    }
    out.append(buf, sizeof buf - zs.avail_out);
    if (out.size() > max_bytes) {
      inflateEnd(&zs);
      return make_error("gzip data inflates beyond " + std::to_string(max_bytes) + " bytes");
    }
  }
  inflateEnd(&zs);
  return out;
}

Result<std::string> encode_pprof(const symbolize::StackProfile& profile) {
  return gzip_compress(encode_pprof_proto(profile));
}

Status write_pprof(const std::string& dir, const symbolize::StackProfile& profile) {
  Result<std::string> data = encode_pprof(profile);
  if (!data) return make_error("pprof " + profile.kind + ": " + data.error().message);
  return write_file_atomic(dir + "/" + profile.kind + ".pb.gz", *data);
}

}  // namespace memlens::report
