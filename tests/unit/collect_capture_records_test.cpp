// Decoded events as capture records: every field survives the round trip, a record cut short is refused,
// a record with fields a later version appended is read.
#include <gtest/gtest.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "collect/capture_records.h"
#include "collect/end_state_cbor.h"

namespace memlens::collect {
namespace {

std::vector<Event> one_of_each() {
  ProcEvent p;
  p.kind = ProcEvent::Kind::kExec;
  p.ts_ns = 0x1122334455667788;
  p.pid = 4242;
  p.ppid = -1;
  p.start_time_ns = 99;
  p.exit_code = -9;
  p.minflt = 1ull << 40;
  p.majflt = 3;
  p.comm = "node";
  p.flags = 0x80000001;
  p.hold_error = -13;
  MmEvent m;
  m.kind = MmEvent::Kind::kMremap;
  m.ts_ns = 5;
  m.pid = 7;
  m.addr = 0x7fff00001000;
  m.len_bytes = 4096;
  m.new_len_bytes = 8192;
  m.result = -12;
  m.prot = 3;
  m.flags = 0x22;
  m.fd = -1;
  m.advice = 4;
  m.offset = 1ull << 33;
  m.stack_id = 17;
  m.caller_ip = 0xdeadbeef;
  m.stack_sample_bytes = 1u << 20;
  GcEvent g;
  g.ts_ns = 10;
  g.pid = 8;
  g.start_ns = 9;
  g.kind = 4;
  g.usdt = true;
  g.heap_used_after_bytes = 1234;
  g.stack_id = 3;
  g.stack_weight = 7;
  ArrayBufferNotice n{11, 9, 2, 0x5555};
  FdEvent f;
  f.ts_ns = 12;
  f.pid = 10;
  f.close = true;
  f.kind = 33;
  f.result = -1;
  f.args = {3, ~0ull, 4};
  f.fds = {5, -1};
  f.stack_id = 2;
  f.caller_ip = 77;
  f.path = std::string("/tmp/with\0nul", 13);
  return {p, m, g, n, f};
}

bool same(const Event& a, const Event& b) {
  return encode_event(a) == encode_event(b) && a.index() == b.index();
}

TEST(CaptureRecords, EveryEventKindRoundTrips) {
  for (const auto& e : one_of_each()) {
    uint16_t type = event_record_type(e);
    EXPECT_TRUE(is_event_record(type));
    auto back = decode_event_record(type, encode_event(e));
    ASSERT_TRUE(back) << back.error().describe();
    EXPECT_TRUE(same(e, *back)) << type;
    EXPECT_EQ(event_pid(*back), event_pid(e));
    EXPECT_EQ(event_ts_ns(*back), event_ts_ns(e));
  }
  auto fd = decode_event_record(kRecordFdEvent, encode_event(one_of_each()[4]));
  ASSERT_TRUE(fd);
  const auto& f = std::get<FdEvent>(*fd);
  EXPECT_EQ(f.path.size(), 13u);
  EXPECT_EQ(f.args[1], ~0ull);
  auto gc = decode_event_record(kRecordGcEvent, encode_event(one_of_each()[2]));
  ASSERT_TRUE(gc);
  const auto& g = std::get<GcEvent>(*gc);
  EXPECT_FALSE(g.heap_used_before_bytes);
  EXPECT_EQ(g.heap_used_after_bytes, 1234u);
  EXPECT_EQ(g.stack_weight, 7u);
}

TEST(CaptureRecords, CutShortIsRefusedLongerIsRead) {
  for (const auto& e : one_of_each()) {
    uint16_t type = event_record_type(e);
    std::string payload = encode_event(e);
    // An address-space record may end before its last field (stack_sample_bytes), as captures written
    // before it do: read as 0, every stack kept. A GC record may end before its stack's weight: read as 1,
    // every GC's stack kept.
    size_t optional_tail = type == kRecordMmEvent || type == kRecordGcEvent ? sizeof(uint32_t) : 0;
    for (size_t n = 0; n < payload.size(); ++n) {
      auto cut = decode_event_record(type, payload.substr(0, n));
      if (optional_tail && n == payload.size() - optional_tail) {
        ASSERT_TRUE(cut) << cut.error().describe();
        if (type == kRecordMmEvent) {
          EXPECT_EQ(std::get<MmEvent>(*cut).stack_sample_bytes, 0u);
          EXPECT_EQ(std::get<MmEvent>(*cut).caller_ip, std::get<MmEvent>(e).caller_ip);
        } else {
          EXPECT_EQ(std::get<GcEvent>(*cut).stack_weight, 1u);
          EXPECT_EQ(std::get<GcEvent>(*cut).stack_id, std::get<GcEvent>(e).stack_id);
        }
        continue;
      }
      EXPECT_FALSE(cut) << type << " cut at " << n;
    }
    auto longer = decode_event_record(type, payload + std::string(8, '\x7f'));
    ASSERT_TRUE(longer);
    EXPECT_TRUE(same(e, *longer));
  }
}

TEST(CaptureRecords, AGcStackWeighingNothingIsRefused) {
  GcEvent g;
  g.stack_id = 2;
  g.stack_weight = 0;
  auto back = decode_event_record(kRecordGcEvent, encode_event(Event(g)));
  ASSERT_FALSE(back);
  EXPECT_NE(back.error().describe().find("weighs its stack 0"), std::string::npos) << back.error().describe();
}

TEST(CaptureRecords, UnknownKindsAndTypesAreRefused) {
  std::string p = encode_event(one_of_each()[0]);
  p[0] = 9;  // no such process event kind
  EXPECT_FALSE(decode_event_record(kRecordProcEvent, p));
  EXPECT_FALSE(decode_event_record(1, ""));
  EXPECT_FALSE(is_event_record(1));
  EXPECT_FALSE(decode_event_record(999, encode_event(one_of_each()[3])));
}

TEST(CaptureRecords, ACapturesEventsSkipAndCountUnknownAndMalformedRecords) {
  Capture c;
  auto events = one_of_each();
  for (const auto& e : events) c.records.push_back({event_record_type(e), encode_event(e)});
  c.records.insert(c.records.begin() + 2, CaptureRecord{4000, "from a later memlens"});
  c.records.push_back({kRecordMmEvent, "short"});
  auto got = capture_events(c);
  EXPECT_EQ(got.unknown_records, 1u);
  EXPECT_EQ(got.malformed_records, 1u);
  ASSERT_EQ(got.events.size(), events.size());
  for (size_t i = 0; i < events.size(); ++i) EXPECT_TRUE(same(events[i], got.events[i])) << i;
}

// tests/data/capture/events.mlcap was written by a short script from docs/capture-format.md alone, not by
// memlens: the reader follows the documented layout.
TEST(CaptureRecords, ACaptureWrittenFromTheDocumentedLayoutIsRead) {
  auto c = read_capture(std::string(MEMLENS_TEST_DATA) + "/capture/events.mlcap");
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_TRUE(c->status.complete);
  EXPECT_EQ(c->status.memlens_version, "0.0.0");
  auto got = capture_events(*c);
  EXPECT_EQ(got.unknown_records, 1u);
  EXPECT_EQ(got.malformed_records, 0u);
  ASSERT_EQ(got.events.size(), 2u);
  const auto& mm = std::get<MmEvent>(got.events[0]);
  EXPECT_EQ(mm.kind, MmEvent::Kind::kMmap);
  EXPECT_EQ(mm.pid, 42);
  EXPECT_EQ(mm.len_bytes, 4096u);
  EXPECT_EQ(mm.result, 0x7f0000);
  EXPECT_EQ(mm.fd, -1);
  EXPECT_EQ(mm.stack_id, 5);
  const auto& fd = std::get<FdEvent>(got.events[1]);
  EXPECT_EQ(fd.kind, 2u);
  EXPECT_EQ(fd.result, 4);
  EXPECT_EQ(fd.path, "/tmp/x");
}

// A stack profile record keeps every frame's name and location (the perf map and binaries may be gone when
// it is read) and each frame once: a frame shared by many stacks costs its name once.
TEST(CaptureRecords, StackProfileRoundTripsWithOneEntryPerFrame) {
  symbolize::StackProfile p;
  p.kind = "page_faults";
  p.time_ns = 1'700'000'000'000'000'000;
  p.duration_ns = 3'000'000'000;
  p.sample_types = {{"bytes", "bytes"}, {"count", "count"}};
  symbolize::Frame main_frame{
      symbolize::FrameKind::kNative, "main", "/opt/node/bin/node", "abcd", 0x401000, 0x1000, 0};
  symbolize::Frame js{symbolize::FrameKind::kJs, "allocate /srv/app.js:10", "[perf-map]", "", 0x7f00, 0, 4};
  symbolize::Frame unknown{
      symbolize::FrameKind::kUnknown, "libc.so.6+0x10", "/lib/libc.so.6", "", 0x7e00, 0x10, 0};
  for (int i = 0; i < 50; ++i) p.samples.push_back({{main_frame, js, unknown}, {4096 * i, i}, 42 + i});
  std::string payload = encode_stack_profile(p);
  size_t names = 0;
  for (size_t at = payload.find(js.function); at != std::string::npos; at = payload.find(js.function, at + 1))
    ++names;
  EXPECT_EQ(names, 1u);
  auto got = decode_stack_profile(payload);
  ASSERT_TRUE(got) << got.error().describe();
  EXPECT_EQ(got->kind, p.kind);
  EXPECT_EQ(got->time_ns, p.time_ns);
  EXPECT_EQ(got->duration_ns, p.duration_ns);
  ASSERT_EQ(got->sample_types.size(), 2u);
  EXPECT_EQ(got->sample_types[1].type, "count");
  ASSERT_EQ(got->samples.size(), p.samples.size());
  for (size_t i = 0; i < p.samples.size(); ++i) {
    EXPECT_EQ(got->samples[i].pid, p.samples[i].pid);
    EXPECT_EQ(got->samples[i].values, p.samples[i].values);
    ASSERT_EQ(got->samples[i].stack.size(), 3u);
    for (size_t f = 0; f < 3; ++f) {
      const auto &a = got->samples[i].stack[f], &b = p.samples[i].stack[f];
      EXPECT_EQ(a.kind, b.kind);
      EXPECT_EQ(a.function, b.function);
      EXPECT_EQ(a.module, b.module);
      EXPECT_EQ(a.build_id, b.build_id);
      EXPECT_EQ(a.address, b.address);
      EXPECT_EQ(a.file_offset, b.file_offset);
      EXPECT_EQ(a.symbol_offset, b.symbol_offset);
    }
  }
  EXPECT_EQ(encode_stack_profile(*got), payload);
  // Every cut of the record is refused, never read in part.
  for (size_t n = 0; n < payload.size(); n += 7)
    EXPECT_FALSE(decode_stack_profile(payload.substr(0, n))) << n;
}

std::vector<HostAnswer> host_answers() {
  ProcessIdentity id;
  id.pid = 77;
  id.start_time_ns = 1ull << 50;
  id.new_process = true;
  id.first_seen_s = 0.1 + 0.2;  // not exact in binary: its bits must survive
  id.comm = "node";
  id.exe = "/usr/bin/node";
  id.cmdline = {"node", "", "a b"};
  id.minflt_at_start = 1;
  id.majflt_at_start = 2;
  id.thread_minflt_at_start = 3;
  id.thread_majflt_at_start = 4;
  ProcessSample s;
  s.pid = 77;
  s.start_time_ns = 5;
  s.sample.t_s = 1.0 / 3;
  s.sample.rss = {10, 20, 30, 40};
  s.sample.faults = 50;
  s.sample.events = 60;
  s.sample.array_buffers_bytes = 0;  // present and zero, not absent
  s.sample.fds_open = 7;
  s.sample.categories = {{"js_heap", 1}, {"code", 2}};
  s.rss_peak_bytes = 99;
  s.minflt = 8;
  s.fault_sample_period = 256;
  s.has_kernel_fault_counts = true;
  s.lost_map_full = 3;
  s.at_exit = true;
  s.wait_status = 9;
  AddressSpaceSeed seed;
  seed.pid = 77;
  seed.now_ns = 123;
  seed.maps.push_back({0x1000, 0x3000, true, false, true, false, 0x200, 8, 1, 4242, "/usr/bin/node"});
  seed.maps.push_back({0x7000, 0x8000, true, true, false, true, 0, 0, 0, 0, ""});
  ProcessEndState end;
  end.pid = 77;
  end.notes = {"one", ""};
  end.holds = 2;
  end.held_s = 0.1;
  end.untraced_s = 1e-9;
  end.untraced_reason = "a; b";
  end.lost_by_source["kernel"].ring_full = 5;
  end.lost_by_source["v8"].unpaired = 6;
  V8EndState v8;
  v8.pid = 77;
  v8.v8.probed = true;
  v8.v8.probe_source = "usdt";
  v8.v8.array_buffers_source = "allocation_probes";
  v8.v8.heap_size_limit_bytes = 1ull << 32;
  v8.v8.array_buffer_frees = 11;
  v8.v8.external_adjustments_bytes = -5;
  v8.v8.external_probed = true;
  CapabilitiesEndState caps;
  caps.pid = 77;
  caps.start_time_ns = 5;
  memlens::model::FdEntry fd;
  fd.fd = 12;
  fd.type = memlens::proc::FdType::kSocket;
  fd.socket = memlens::model::SocketAddress{"inet", "tcp", "127.0.0.1:80", "127.0.0.1:5000", "ESTABLISHED"};
  fd.opened_at_s = 0.1 + 0.2;
  fd.stack_id = 3;
  fd.caller_ip = 0xffffffffffff0000ull;
  fd.opened_by = "socket";
  caps.fds.restore({{12, fd}}, {.peak = 9, .opened_seen = 8, .closed_unseen = 1, .unknown_closes = 2});
  caps.fds.fds_series = {{1.0 / 3, 4}};
  caps.fds.stacks[3] = {1, 2, 3};
  caps.fds.stack_labels[{3, fd.caller_ip}] = {"main (app.js:1)", "\xff"};
  memlens::model::Reconciled r;
  r.breakdown[memlens::model::Category::code] = 4096;
  r.rss_bytes = 1ull << 40;
  caps.attribution.last = r;
  caps.attribution.limits.cgroup_memory_max_bytes = 768ull << 20;
  caps.attribution.oom_kill =
      memlens::model::OomKill{2.5, "host", std::nullopt, "js_heap", -1, "kernel", false};
  caps.attribution.reads_skipped_unchanged = 9;
  caps.js_objects.requested = true;
  caps.js_objects.stacks = {{{"f", "a.js", 1, 2}}};
  caps.js_objects.series = {{{0.5, 10, 1}}};
  caps.js_objects.diff = memlens::model::JsHeapDiff{};
  caps.js_objects.diff->groups.push_back({.type = "object", .name = "Leak", .bytes_delta = -3});
  for (int i = 0; i < 300; ++i)  // more than are listed: the totals count what the list dropped
    memlens::model::apply(caps.js_objects,
                          memlens::model::JsForcedGc{1.0 * i, 2.0, "profile read", true, ""});
  caps.stacks["page_faults"][7] = {1, 2, 3};
  AddressSpaceUnmapped unmapped;
  unmapped.pid = 77;
  unmapped.start_time_ns = 5;
  unmapped.now_ns = 124;
  unmapped.ranges = {{0x7000, 0x1000}, {0x7fff0000, 1ull << 33}};
  return {id, s, seed, end, v8, caps, unmapped};
}

TEST(CaptureRecords, HostAnswersRoundTripAndAreRefusedCutShort) {
  for (const auto& a : host_answers()) {
    uint16_t type = host_answer_record_type(a);
    EXPECT_TRUE(is_host_answer_record(type));
    EXPECT_FALSE(is_event_record(type));
    std::string payload = encode_host_answer(a);
    auto back = decode_host_answer(type, payload);
    ASSERT_TRUE(back) << back.error().describe();
    EXPECT_EQ(back->index(), a.index());
    EXPECT_EQ(encode_host_answer(*back), payload) << type;
    for (size_t n = 0; n < payload.size(); ++n)
      EXPECT_FALSE(decode_host_answer(type, payload.substr(0, n))) << type << " cut at " << n;
    // Fixed-layout records take bytes a later version appended; the JSON one takes fields it added.
    if (type == kRecordCapabilitiesEndState) {
      auto later = nlohmann::json::from_cbor(payload);
      later["later"] = {1};
      later["fds"]["later"] = "x";
      auto bytes = nlohmann::json::to_cbor(later);
      EXPECT_TRUE(decode_host_answer(type, std::string(bytes.begin(), bytes.end())));
    } else
      EXPECT_TRUE(decode_host_answer(type, payload + std::string(8, '\x7f'))) << type;
  }
  {
    auto caps = std::get<CapabilitiesEndState>(host_answers()[5]);
    auto back = decode_capabilities_end_state(encode_capabilities_end_state(caps));
    ASSERT_TRUE(back) << back.error().describe();
    EXPECT_EQ(back->fds.counters().closed_unseen, 1u);
    EXPECT_EQ(back->fds.find(12)->socket->remote, "127.0.0.1:5000");
    EXPECT_EQ(back->fds.find(12)->opened_at_s, 0.1 + 0.2);
    EXPECT_EQ(back->fds.stack_labels.at({3, 0xffffffffffff0000ull}).at(1), "\xff");
    EXPECT_EQ(back->attribution.last->rss_bytes, 1ull << 40);
    EXPECT_FALSE(back->attribution.oom_kill->limit_bytes);
    EXPECT_EQ(back->attribution.oom_kill->decided_by, "kernel");
    EXPECT_FALSE(back->attribution.oom_kill->scope_counted);
    EXPECT_EQ(back->attribution.reads_skipped_unchanged, 9u);
    EXPECT_EQ(back->js_objects.stack_ids.at(caps.js_objects.stacks[0]), 0u);  // the index, rebuilt
    EXPECT_EQ(back->js_objects.diff->groups.at(0).bytes_delta, -3);
    EXPECT_EQ(back->js_objects.forced_gc_totals.count, 300u);
    EXPECT_DOUBLE_EQ(back->js_objects.forced_gc_totals.pause_total_ms, 600.0);
    EXPECT_EQ(back->js_objects.forced_gcs.size(), memlens::model::kMaxForcedGcsListed);
    EXPECT_EQ(back->stacks.at("page_faults").at(7).live_bytes, 3);
    auto cbor = [](const char* text) {
      auto bytes = nlohmann::json::to_cbor(nlohmann::json::parse(text));
      return std::string(bytes.begin(), bytes.end());
    };
    EXPECT_TRUE(decode_capabilities_end_state(cbor(R"({"pid":1,"start_time_ns":1})")));
    // A capture from before the totals were kept: its lists are counted.
    auto older = decode_capabilities_end_state(cbor(
        R"({"pid":1,"start_time_ns":1,"js_objects":{"stacks":[],"series":[],"forced_gcs":[{"t_s":1,"pause_ms":4},{"t_s":4,"pause_ms":6,"ok":false}],"other_clients":[{"t_s":2,"peer":"127.0.0.1:5"}]}})"));
    ASSERT_TRUE(older) << older.error().describe();
    EXPECT_EQ(older->js_objects.forced_gc_totals.count, 2u);
    EXPECT_EQ(older->js_objects.forced_gc_totals.failed, 1u);
    EXPECT_DOUBLE_EQ(older->js_objects.forced_gc_totals.pause_total_ms, 10.0);
    EXPECT_DOUBLE_EQ(older->js_objects.forced_gc_totals.pause_max_ms, 6.0);
    EXPECT_EQ(older->js_objects.other_clients_total, 1u);
    {
      // An older capture of a long trace: every forced GC and client listed. Counted in full, then held
      // as a live trace would hold them (the latest forced GCs, the first clients).
      nlohmann::json long_one = {{"pid", 1}, {"start_time_ns", 1}};
      auto& js = long_one["js_objects"];
      js["stacks"] = nlohmann::json::array();
      js["series"] = nlohmann::json::array();
      for (int i = 0; i < 1000; ++i) {
        js["forced_gcs"].push_back({{"t_s", i}, {"pause_ms", 1}});
        js["other_clients"].push_back({{"t_s", i}, {"peer", "127.0.0.1:" + std::to_string(1000 + i)}});
      }
      auto bytes = nlohmann::json::to_cbor(long_one);
      auto back_long = decode_capabilities_end_state(std::string(bytes.begin(), bytes.end()));
      ASSERT_TRUE(back_long) << back_long.error().describe();
      const auto& j = back_long->js_objects;
      EXPECT_EQ(j.forced_gc_totals.count, 1000u);
      EXPECT_DOUBLE_EQ(j.forced_gc_totals.pause_total_ms, 1000.0);
      ASSERT_EQ(j.forced_gcs.size(), memlens::model::kMaxForcedGcsListed);
      EXPECT_EQ(j.forced_gcs.front().t_s, 1000.0 - memlens::model::kMaxForcedGcsListed);
      EXPECT_EQ(j.forced_gcs.back().t_s, 999.0);
      EXPECT_EQ(j.other_clients_total, 1000u);
      ASSERT_EQ(j.other_clients.size(), memlens::model::kMaxOtherClientsListed);
      EXPECT_EQ(j.other_clients.front().peer, "127.0.0.1:1000");
    }
    EXPECT_FALSE(decode_capabilities_end_state(cbor(R"({"pid":"x","start_time_ns":1})")));
    EXPECT_FALSE(decode_capabilities_end_state(cbor(R"({"pid":1,"start_time_ns":1,"fds":{"entries":7}})")));
    EXPECT_FALSE(decode_capabilities_end_state(R"({"pid":1,"start_time_ns":1})"));  // JSON text, not CBOR
    // Numbers that would be undefined once converted, and tables the analyses index one by the other
    // that disagree: refused.
    EXPECT_FALSE(decode_capabilities_end_state(cbor(R"({"pid":1e300,"start_time_ns":1})")));
    auto nan_time = nlohmann::json::parse(R"({"pid":1,"start_time_ns":1,"fds":{"fds_series":[[0.5,1]]}})");
    nan_time["fds"]["fds_series"][0][0] = std::numeric_limits<double>::quiet_NaN();
    auto nan_bytes = nlohmann::json::to_cbor(nan_time);
    EXPECT_FALSE(decode_capabilities_end_state(std::string(nan_bytes.begin(), nan_bytes.end())));
    EXPECT_FALSE(decode_capabilities_end_state(
        cbor(R"({"pid":1,"start_time_ns":1,"js_objects":{"stacks":[[{"function":"f"}]],"series":[]}})")));
    EXPECT_FALSE(decode_capabilities_end_state(cbor(
        R"({"pid":1,"start_time_ns":1,"js_objects":{"stacks":[],"series":[],"last":[[5,{"bytes":1}]]}})")));
    EXPECT_TRUE(decode_capabilities_end_state(
        cbor(R"({"pid":1,"start_time_ns":1,"js_objects":{"stacks":[[{"function":"f"}]],"series":[[]]}})")));
    // A map holding arrays nested a million deep: refused, not a blown stack.
    std::string deep =
        "\xa1\x63"
        "pid" +
        std::string(1000000, '\x81') + "\x01";
    EXPECT_FALSE(decode_capabilities_end_state(deep));
  }
  auto answers = host_answers();
  auto id = decode_host_answer(kRecordProcessIdentity, encode_host_answer(answers[0]));
  ASSERT_TRUE(id);
  EXPECT_EQ(std::get<ProcessIdentity>(*id).cmdline, std::get<ProcessIdentity>(answers[0]).cmdline);
  EXPECT_EQ(std::get<ProcessIdentity>(*id).first_seen_s, 0.1 + 0.2);
  auto s = decode_host_answer(kRecordProcessSample, encode_host_answer(answers[1]));
  ASSERT_TRUE(s);
  EXPECT_EQ(std::get<ProcessSample>(*s).sample.t_s, 1.0 / 3);
  EXPECT_EQ(std::get<ProcessSample>(*s).sample.array_buffers_bytes, std::optional<uint64_t>(0));
  EXPECT_FALSE(std::get<ProcessSample>(*s).sample.js_heap_used_bytes.has_value());
  auto seed = decode_host_answer(kRecordAddressSpaceSeed, encode_host_answer(answers[2]));
  ASSERT_TRUE(seed);
  const auto& maps = std::get<AddressSpaceSeed>(*seed).maps;
  ASSERT_EQ(maps.size(), 2u);
  EXPECT_TRUE(maps[0].exec && !maps[0].write && maps[0].path == "/usr/bin/node");
  EXPECT_TRUE(maps[1].shared && maps[1].write && maps[1].path.empty());
  EXPECT_FALSE(decode_host_answer(kRecordProcEvent, encode_host_answer(answers[0])));
  auto unmapped = decode_host_answer(kRecordAddressSpaceUnmapped, encode_host_answer(answers[6]));
  ASSERT_TRUE(unmapped);
  EXPECT_EQ(std::get<AddressSpaceUnmapped>(*unmapped).ranges,
            std::get<AddressSpaceUnmapped>(answers[6]).ranges);
}

TEST(CaptureRecords, TrackStartRoundTripsAndIsRefusedCutShort) {
  TrackStart t{1ull << 60, 10, 9, 1ull << 40, true, false};
  std::string payload = encode_track_start(t);
  auto back = decode_track_start(payload);
  ASSERT_TRUE(back) << back.error().describe();
  EXPECT_EQ(encode_track_start(*back), payload);
  EXPECT_TRUE(back->attached_late);
  EXPECT_FALSE(back->before_command_exec);
  for (size_t n = 0; n < payload.size(); ++n) EXPECT_FALSE(decode_track_start(payload.substr(0, n))) << n;
}

}  // namespace
}  // namespace memlens::collect
