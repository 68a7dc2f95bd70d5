#include "report/breakdown_section.h"

namespace memlens::report {

nlohmann::json breakdown_section(const model::Process& p) {
  const auto& st = p.attribution;
  if (!st.last) return nullptr;
  // A process still running at the end was measured at the end, so its breakdown is set against the RSS
  // the report prints (what changed since shows as unexplained). A process that exited was last measured
  // while it ran; what it did after that is mostly its way out (node frees its heap and every Buffer
  // before it exits), which is no breakdown of anything: its breakdown keeps the RSS of its own moment.
  bool exited_since = !p.alive() && !st.final_read;
  auto r = exited_since ? *st.last : model::reconcile(st.last->breakdown, p.rss.total());
  nlohmann::json j;
  for (auto c : model::kAttributionCategories)
    j[std::string(model::category_name(c)) + "_bytes"] = r.breakdown[c];
  j["unexplained_bytes"] = r.unexplained_bytes;
  nlohmann::json by_basis;
  for (size_t i = 0; i < model::kBasisCount; ++i)
    by_basis[std::string(model::basis_name(static_cast<model::Basis>(i)))] = r.breakdown.bytes_by_basis[i];
  // Details live in a nested object so that every number at the top level is a category's bytes.
  nlohmann::json m = {
      {"source", st.read_by_scan ? "pagemap_scan" : "smaps"},
      {"rss_bytes", r.rss_bytes},
      {"smaps_rss_bytes", r.breakdown.smaps_rss_bytes},
      {"overshoot_bytes", r.overshoot_bytes},
      {"native_heap_resident_bytes", r.breakdown.native_heap_resident_bytes},
      {"js_heap_mapped_bytes", r.breakdown.js_heap_mapped_bytes},
      {"bytes_by_basis", by_basis},
      {"measured_at_s", st.last_at_s},
      {"process_age_s", st.last_process_age_s},
      {"final_read", st.final_read},
      {"smaps_reads", st.reads},
      {"smaps_reads_skipped_unchanged", st.reads_skipped_unchanged},
      {"smaps_read_failures", st.read_failures},
      {"smaps_read_ms_avg", st.reads ? st.read_ms_total / static_cast<double>(st.reads) : 0.0},
      {"smaps_read_ms_max", st.read_ms_max},
      {"smaps_interval_s", st.interval_s},
      {"array_buffers_known", p.v8.array_buffers_probed ||
                                  (!p.timeline.empty() && p.timeline.back().array_buffers_bytes.has_value())},
  };
  if (exited_since && p.exited_at_s) m["before_exit_s"] = std::max(0.0, *p.exited_at_s - st.last_at_s);
  if (r.overshoot_bytes > 0)
    m["note"] =
        "the categories exceed the RSS by overshoot_bytes (the mappings' resident bytes and the RSS counters "
        "were read at different moments); unexplained_bytes is clamped to 0";
  j["method"] = std::move(m);
  return j;
}

}  // namespace memlens::report
