// The subcommands. cli/ only parses arguments and wires the layers together.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "host/top_view.h"

namespace memlens::cli {

// Distinct exit codes, documented in the README: scripts can tell why memlens failed.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,     // an unexpected failure
  kExitUsage = 2,       // bad arguments
  kExitPrivileges = 3,  // a missing capability (named in the message) or a refusal by the kernel
  kExitKernel = 4,      // the kernel lacks BTF or a BPF feature
  kExitNoProcess = 5,   // no such pid, a zombie, or it exited while memlens attached
  kExitProbe = 6,       // a required probe failed to attach
  kExitOutput = 7,      // the report cannot be written (checked before tracing too)
  kExitCapture = 8,     // report: the capture cannot be read (not a capture, newer format, nothing in it)
  kExitCannotExecute = 126,  // run: the command exists but cannot be executed
  kExitCommandNotFound = 127,
};

struct TraceOptions {
  std::string out_dir;  // empty: no files, summary only
  double interval_s = 1.0;
  std::optional<double> duration_s;
  bool quiet = false;
  bool verbose = false;
  bool stacks = true;                // capture and symbolize user stacks
  uint32_t fault_sample_period = 0;  // one page fault in this many is sampled (mode, stack)
  // One mmap_growth stack per this many bytes of address-space growth, on average (0: every call's).
  uint32_t mmap_sample_bytes = 256u << 10;
  uint32_t unwind_table_mib = 32;  // kernel memory for the unwind tables
  // run: start node with V8's perf map when JS frames cannot be named from V8's metadata (perf_map), or
  // always (perf_map_always); --no-perf-map: never.
  bool perf_map = true;
  bool perf_map_always = false;
  bool v8 = true;                // V8 probes (GC, heap, ArrayBuffers)
  bool v8_alloc_probes = false;  // probe every ArrayBuffer allocation/free (exact totals, slower)
  bool fds = true;               // file-descriptor tracking
  std::string fd_stacks;         // --fd-stacks: "accept" probes accept/accept4 too
  bool unmap_probes = false;     // --unmap-probes: probe munmap and madvise too
  bool hold = true;              // hold new processes until their probes are attached (docs/probes.md)
  // V8's own view through its inspector: "" off, "full", "sampling" (reads once, at the end), "force"
  // (full, and an unknown SIGUSR1 check does not refuse). See README "JS objects".
  std::string js_objects;
  int max_snapshots = 3;           // heap snapshots per trace (--js-objects full)
  bool save_snapshots = false;     // write each snapshot V8 sends into out_dir (mode 0600)
  bool run_mode = false;           // set by `run`: memlens starts the traced command
  std::string capture_path;        // record: the capture file (docs/capture-format.md); empty: none
  uint64_t capture_max_bytes = 0;  // record --max-size (0: no bound)
};

struct TopOptions {
  double interval_s = 1.0;
  std::optional<uint64_t> count;  // tables to print; none: until stopped
  std::string sort = "rss";
  host::TopFilter filter;
  uint32_t v8_max_processes = 32;  // processes that get V8's GC probes (0: none)
};

struct ServeOptions {
  std::string listen = "127.0.0.1:9464";
  host::TopFilter filter;
  uint32_t max_processes = 200;  // processes whose series /metrics exports (the rest are counted)
  double interval_s = 1.0;
  uint32_t fault_sample_period = 0;
  bool verbose = false;
};

int run_command(const std::vector<std::string>& argv, const TraceOptions& opts);
int attach_command(pid_t pid, const TraceOptions& opts);
// Every Node process of the host (that passes the filter), and those that start while it runs.
int attach_all_command(const host::TopFilter& filter, const TraceOptions& opts);
// memlens report FILE -o DIR: the report files of a capture, written as the live trace wrote them.
int report_command(const std::string& capture_path, const std::string& out_dir, bool quiet);
int doctor_command(std::optional<pid_t> pid, const std::string& binary);
int top_command(const TopOptions& opts);
// A long-running agent: every Node process of the host, over HTTP (/metrics, /debug/pprof, reports).
int serve_command(const ServeOptions& opts);

}  // namespace memlens::cli
