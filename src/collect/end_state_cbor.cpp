#include "collect/end_state_cbor.h"

#include <cerrno>
#include <nlohmann/json.hpp>
#include <optional>

#include "collect/record_json.h"

// std::optional as null or its value (this nlohmann release has no serializer of its own for it).
namespace nlohmann {
template <typename T>
struct adl_serializer<std::optional<T>> {
  static void to_json(json& j, const std::optional<T>& o) {
    if (o)
      j = *o;
    else
      j = nullptr;
  }
  static void from_json(const json& j, std::optional<T>& o) {
    if (j.is_null())
      o.reset();
    else
      o = j.get<T>();
  }
};
}  // namespace nlohmann

// Field lists by name: a field a later memlens adds is skipped here, one this memlens lacks in the record
// takes its default.
namespace memlens::model {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SocketAddress, family, protocol, local, remote, state)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FdEntry, fd, type, path, socket, inode, flags, cloexec,
                                                opened_at_s, seeded, before_tracing, resolved, stack_id,
                                                caller_ip, opened_by)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FdTable::Counters, peak, opened_seen, opened_unseen,
                                                closed_seen, closed_unseen, seeded_total, unknown_closes)

void to_json(nlohmann::json& j, const FdTable& t) {
  j = {{"entries", t.entries()},
       {"counters", t.counters()},
       {"totals_lower_bound", t.totals_lower_bound},
       {"fds_series", t.fds_series},
       {"sockets_series", t.sockets_series},
       {"stacks", t.stacks},
       {"stack_labels", t.stack_labels}};
}

void from_json(const nlohmann::json& j, FdTable& t) {
  t = FdTable{};
  t.restore(j.value("entries", std::map<int, FdEntry>{}), j.value("counters", FdTable::Counters{}));
  t.totals_lower_bound = j.value("totals_lower_bound", false);
  t.fds_series = j.value("fds_series", t.fds_series);
  t.sockets_series = j.value("sockets_series", t.sockets_series);
  t.stacks = j.value("stacks", t.stacks);
  t.stack_labels = j.value("stack_labels", t.stack_labels);
}

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Breakdown, bytes, bytes_by_basis, smaps_rss_bytes,
                                                native_heap_resident_bytes, js_heap_mapped_bytes, mappings)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Reconciled, breakdown, rss_bytes, unexplained_bytes,
                                                overshoot_bytes)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ProcessLimits, cgroup_memory_max_bytes, cgroup_path,
                                                cgroup_version, cgroup_limit_set_at, nofile_soft,
                                                cgroup_usage_bytes, host_memory_bytes,
                                                host_memory_available_bytes, memory_read_at_s)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(OomKill, at_s, scope, limit_bytes, grew_most, grew_most_bytes,
                                                decided_by, scope_counted)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(OomCounters, cgroup, host)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AttributionState, last, last_at_s, last_process_age_s,
                                                final_read, reads, reads_skipped_unchanged, read_failures,
                                                read_ms_total, read_ms_max, interval_s, read_by_scan, limits,
                                                oom_counters_before, oom_kill)

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(JsFrame, function, url, line, column)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(JsInspectorStatus, t_s, state, reason, address,
                                                opened_by_memlens, handler)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(JsLivePoint, t_s, bytes, objects)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(JsForcedGc, t_s, pause_ms, reason, ok, error)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(JsOtherClient, t_s, peer)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(JsForcedGcTotals, count, failed, pause_total_ms, pause_max_ms)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(JsHeapSnapshot, t_s, reason, ok, refused, error, pause_ms,
                                                json_bytes, nodes, edges, heap_used_bytes, parsed_bytes,
                                                memlens_rss_before_bytes, memlens_peak_rss_bytes,
                                                cgroup_free_bytes, host_free_bytes, target_rss_before_bytes,
                                                target_rss_peak_bytes, file, file_error)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(JsHeapGroup, type, name, count, bytes, count_delta,
                                                bytes_delta, new_objects, new_bytes, retainer_path, location,
                                                retained_bytes)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(JsGrowingCollection, type, name, id, entries_before,
                                                entries_after, retainer_path)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(JsHeapDiff, t_s, from_t_s, groups, retained_note, collections)

// stack_ids is the index of stacks, rebuilt from it.
void to_json(nlohmann::json& j, const JsObjectsState& s) {
  j = {{"requested", s.requested},
       {"mode", s.mode},
       {"state", s.state},
       {"reason", s.reason},
       {"address", s.address},
       {"opened_by_memlens", s.opened_by_memlens},
       {"handler", s.handler},
       {"history", s.history},
       {"stacks", s.stacks},
       {"series", s.series},
       {"profile_times", s.profile_times},
       {"sampling_interval_bytes", s.sampling_interval_bytes},
       {"profiles", s.profiles},
       {"last", s.last},
       {"points_dropped", s.points_dropped},
       {"forced_gc_totals", s.forced_gc_totals},
       {"forced_gcs", s.forced_gcs},
       {"other_clients", s.other_clients},
       {"other_clients_total", s.other_clients_total},
       {"snapshots", s.snapshots},
       {"diff", s.diff}};
}

void from_json(const nlohmann::json& j, JsObjectsState& s) {
  s = JsObjectsState{};
  s.requested = j.value("requested", s.requested);
  s.mode = j.value("mode", s.mode);
  s.state = j.value("state", s.state);
  s.reason = j.value("reason", s.reason);
  s.address = j.value("address", s.address);
  s.opened_by_memlens = j.value("opened_by_memlens", s.opened_by_memlens);
  s.handler = j.value("handler", s.handler);
  s.history = j.value("history", s.history);
  s.stacks = j.value("stacks", s.stacks);
  s.series = j.value("series", s.series);
  s.profile_times = j.value("profile_times", s.profile_times);
  s.sampling_interval_bytes = j.value("sampling_interval_bytes", s.sampling_interval_bytes);
  s.profiles = j.value("profiles", s.profiles);
  s.last = j.value("last", s.last);
  s.points_dropped = j.value("points_dropped", s.points_dropped);
  s.forced_gcs = j.value("forced_gcs", s.forced_gcs);
  s.other_clients = j.value("other_clients", s.other_clients);
  // A capture written before the totals were kept listed every forced GC and client: count the lists.
  if (auto it = j.find("forced_gc_totals"); it != j.end()) {
    s.forced_gc_totals = it->get<JsForcedGcTotals>();
  } else {
    for (const auto& g : s.forced_gcs) s.forced_gc_totals.add(g);
  }
  s.other_clients_total = j.value("other_clients_total", uint64_t{s.other_clients.size()});
  // Whatever wrote the capture, the state holds no more than a live trace would.
  if (s.forced_gcs.size() > kMaxForcedGcsListed)
    s.forced_gcs.erase(s.forced_gcs.begin(), s.forced_gcs.end() - kMaxForcedGcsListed);
  if (s.other_clients.size() > kMaxOtherClientsListed) s.other_clients.resize(kMaxOtherClientsListed);
  s.snapshots = j.value("snapshots", s.snapshots);
  if (auto it = j.find("diff"); it != j.end()) s.diff = it->get<std::optional<JsHeapDiff>>();
  for (uint32_t id = 0; id < s.stacks.size(); ++id) s.stack_ids.emplace(s.stacks[id], id);
}

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(StackWeights, bytes, count, live_bytes)

}  // namespace memlens::model

namespace memlens::collect {

namespace {

// Nesting a record needs is a handful of levels; a crafted one nested a million deep would exhaust the
// reader's stack (it descends by recursion), so the descent stops here first.
constexpr size_t kMaxNesting = 32;

class BoundedNesting : public nlohmann::detail::json_sax_dom_parser<nlohmann::json> {
  using Base = nlohmann::detail::json_sax_dom_parser<nlohmann::json>;

 public:
  explicit BoundedNesting(nlohmann::json& out) : Base(out, false) {}
  bool start_object(std::size_t n) { return ++depth_ <= kMaxNesting && Base::start_object(n); }
  bool end_object() {
    --depth_;
    return Base::end_object();
  }
  bool start_array(std::size_t n) { return ++depth_ <= kMaxNesting && Base::start_array(n); }
  bool end_array() {
    --depth_;
    return Base::end_array();
  }

 private:
  size_t depth_ = 0;
};

// The number of elements at j[first] or j[first][second] (0 when absent or not a container).
size_t count_at(const nlohmann::json& j, const char* first, const char* second) {
  const nlohmann::json* v = &j;
  for (const char* key : {first, second}) {
    if (!key) break;
    if (!v->is_object()) return 0;
    auto it = v->find(key);
    if (it == v->end()) return 0;
    v = &*it;
  }
  return v->is_structured() ? v->size() : 0;
}

// What a live trace can hold, with room to spare: a record beyond it was not written by memlens, and its
// decoded tables could cost many times the record's bytes.
struct Bound {
  const char* first;
  const char* second;  // nullptr: j[first] itself
  size_t max;
};
constexpr Bound kBounds[] = {
    {"fds", "entries", size_t{1} << 20},  // the kernel's largest fd table (fs.nr_open)
    {"fds", "stacks", size_t{1} << 16},
    {"fds", "stack_labels", 1024},
    {"fds", "fds_series", size_t{1} << 20},
    {"fds", "sockets_series", size_t{1} << 20},
    {"js_objects", "stacks", size_t{1} << 16},
    {"js_objects", "series", size_t{1} << 16},
    {"js_objects", "last", size_t{1} << 16},
    {"js_objects", "profile_times", size_t{1} << 16},
    {"js_objects", "history", size_t{1} << 16},
    {"js_objects", "forced_gcs", size_t{1} << 16},
    {"js_objects", "other_clients", size_t{1} << 16},
    {"js_objects", "snapshots", size_t{1} << 16},
    {"stacks", nullptr, 64},
};

// Tables whose parts must agree (the analyses index one by the other), and their sizes.
std::string check_consistent(const CapabilitiesEndState& s) {
  const auto& js = s.js_objects;
  if (js.series.size() != js.stacks.size()) return "js_objects has a series count unlike its stack count";
  size_t frames = 0;
  for (const auto& st : js.stacks) frames += st.size();
  for (const auto& pts : js.series)
    if (pts.size() > model::kMaxJsLivePointsPerSite)
      return "a js_objects series is longer than memlens keeps";
  for (const auto& [id, point] : js.last)
    if (id >= js.stacks.size()) return "js_objects names a stack it does not have";
  // The growth analysis keeps a figure per profile for each node of the sites' tree.
  if (frames > (size_t{1} << 20) || frames * js.profile_times.size() > (size_t{1} << 26))
    return "js_objects holds more frames and profiles than memlens keeps";
  for (const auto& [kind, table] : s.stacks)
    if (table.size() > (size_t{1} << 20)) return "a stack table is larger than memlens keeps";
  for (const auto& [id, addrs] : s.fds.stacks)
    if (addrs.size() > 256) return "an fd opening stack is deeper than memlens walks";
  for (const auto& [key, labels] : s.fds.stack_labels)
    if (labels.size() > 256) return "an fd opening stack is deeper than memlens walks";
  return "";
}

}  // namespace

std::string encode_capabilities_end_state(const CapabilitiesEndState& s) {
  nlohmann::json j = {{"pid", s.pid},
                      {"start_time_ns", s.start_time_ns},
                      {"fds", s.fds},
                      {"attribution", s.attribution},
                      {"js_objects", s.js_objects},
                      {"stacks", s.stacks}};
  auto bytes = nlohmann::json::to_cbor(j);
  return std::string(bytes.begin(), bytes.end());
}

Result<CapabilitiesEndState> decode_capabilities_end_state(std::string_view payload) {
  nlohmann::json j;
  try {
    BoundedNesting sax(j);
    if (!nlohmann::json::sax_parse(payload.begin(), payload.end(), &sax,
                                   nlohmann::json::input_format_t::cbor) ||
        !j.is_object())
      return make_error("a capabilities end-state record is not a CBOR map (or nests too deep)", EINVAL);
    if (!safe_numbers(j))
      return make_error("a capabilities end-state record holds a number out of range", EINVAL);
    for (const auto& b : kBounds)
      if (count_at(j, b.first, b.second) > b.max)
        return make_error("a capabilities end-state record holds more than memlens keeps", EINVAL);
    CapabilitiesEndState s;
    s.pid = j.at("pid").get<pid_t>();
    s.start_time_ns = j.at("start_time_ns").get<uint64_t>();
    s.fds = j.value("fds", model::FdTable{});
    s.attribution = j.value("attribution", model::AttributionState{});
    s.js_objects = j.value("js_objects", model::JsObjectsState{});
    s.stacks = j.value("stacks", model::StackTable{});
    if (auto why = check_consistent(s); !why.empty())
      return make_error("a capabilities end-state record is inconsistent: " + why, EINVAL);
    return s;
  } catch (const nlohmann::json::exception& e) {
    return make_error(std::string("a capabilities end-state record cannot be read: ") + e.what(), EINVAL);
  }
}

}  // namespace memlens::collect
