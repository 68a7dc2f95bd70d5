// Cost of the report writers on a large profile (100,000 distinct stacks, ~1.5 million frames): the
// merged flame-graph tree, the whole HTML page, folded text and the pprof encoding.
#include <benchmark/benchmark.h>

#include "../tests/unit/report_fixtures.h"
#include "report/folded.h"
#include "report/html.h"
#include "report/pprof.h"

namespace {

using namespace memlens::report;

const memlens::symbolize::StackProfile& big() {
  static const memlens::symbolize::StackProfile p = fixtures::large_profile("page_faults");
  return p;
}

void BM_FlameGraphJson(benchmark::State& state) {
  big();  // built once, outside the timed loop
  for (auto _ : state) benchmark::DoNotOptimize(flame_graph_json(big()));
}
BENCHMARK(BM_FlameGraphJson)->Unit(benchmark::kMillisecond);

void BM_RenderHtml(benchmark::State& state) {
  const nlohmann::json report = fixtures::sample_report();
  const std::vector<memlens::symbolize::StackProfile> profiles = {big()};
  for (auto _ : state) benchmark::DoNotOptimize(render_html(report, profiles));
}
BENCHMARK(BM_RenderHtml)->Unit(benchmark::kMillisecond);

void BM_RenderFolded(benchmark::State& state) {
  big();
  for (auto _ : state) benchmark::DoNotOptimize(render_folded(big()));
}
BENCHMARK(BM_RenderFolded)->Unit(benchmark::kMillisecond);

void BM_EncodePprof(benchmark::State& state) {
  big();
  for (auto _ : state) benchmark::DoNotOptimize(encode_pprof(big()));
}
BENCHMARK(BM_EncodePprof)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
