// Lookup costs of the symbolizer's hot paths: a perf map of V8's size and the ELF symbols of node.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <random>
#include <string>

#include "elf/elf_file.h"
#include "proc/procfs.h"
#include "symbolize/module.h"
#include "symbolize/perf_map.h"

namespace {

using memlens::symbolize::PerfMap;

std::string synthetic_perf_map(size_t n) {
  std::string text;
  char line[128];
  for (size_t i = 0; i < n; ++i) {
    snprintf(line, sizeof line, "%zx %x JS:*function_%zu /app/file_%zu.js:%zu:1\n", 0x10000000 + i * 0x400,
             0x200 + static_cast<unsigned>(i % 0x100), i, i % 97, i % 1000);
    text += line;
  }
  return text;
}

void BM_PerfMapParse(benchmark::State& state) {
  std::string text = synthetic_perf_map(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    PerfMap map;
    map.parse(text);
    benchmark::DoNotOptimize(map.lookup(0x10000000));  // includes building the index
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_PerfMapParse)->Arg(10000)->Arg(100000);

void BM_PerfMapLookup(benchmark::State& state) {
  PerfMap map;
  map.parse(synthetic_perf_map(100000));
  std::mt19937_64 rng(1);
  for (auto _ : state) benchmark::DoNotOptimize(map.lookup(0x10000000 + rng() % (100000 * 0x400)));
}
BENCHMARK(BM_PerfMapLookup);

void BM_NodeModuleLoad(benchmark::State& state) {
  auto exe = memlens::proc::read_exe(getpid());  // fallback when node is absent: this binary
  std::string path = access("/usr/bin/node", R_OK) == 0 ? "/usr/bin/node" : *exe;
  auto real = memlens::elf::ElfFile::open_path(path);
  if (!real.ok()) {
    state.SkipWithError("cannot open the binary");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(memlens::symbolize::Module::load(**real));
}
BENCHMARK(BM_NodeModuleLoad)->Unit(benchmark::kMillisecond);

void BM_NodeModuleLookup(benchmark::State& state) {
  std::string path = access("/usr/bin/node", R_OK) == 0 ? "/usr/bin/node" : "/proc/self/exe";
  auto real = memlens::elf::ElfFile::open_path(path);
  if (!real.ok()) {
    state.SkipWithError("cannot open the binary");
    return;
  }
  auto module = memlens::symbolize::Module::load(**real);
  uint64_t lo = 0, hi = 0;
  for (const auto& seg : (*real)->load_segments())
    if (seg.exec) lo = seg.vaddr, hi = seg.vaddr + seg.memsz;
  std::mt19937_64 rng(1);
  for (auto _ : state) benchmark::DoNotOptimize(module->lookup(lo + rng() % (hi - lo)));
  state.counters["symbols"] = static_cast<double>(module->symbol_count());
  state.counters["table_bytes"] = static_cast<double>(module->memory_bytes());
}
BENCHMARK(BM_NodeModuleLookup);

}  // namespace

BENCHMARK_MAIN();
