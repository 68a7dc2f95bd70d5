// memlens doctor: one pass/fail line per requirement, each failure with its remedy. With --pid or
// --binary, also what that process or binary offers.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/environment.h"
#include "collect/bpf_session.h"
#include "collect/process_probes.h"
#include "collect/v8_doctor.h"
#include "elf/cfi_table.h"
#include "elf/elf_file.h"
#include "memlens.skel.h"
#include "node/v8_frame_layout.h"
#include "proc/procfs.h"
#include "symbolize/module.h"

namespace memlens::cli {

namespace {

// What stacks through the C library (built without frame pointers) will be: its unwind table against the
// default budget, and whether its debug file names its internal functions.
Check check_unwind_tables(const std::string& libc_path) {
  Check c{"unwind tables (C library)"};
  auto file = elf::ElfFile::open_path(libc_path);
  if (!file) {
    c.detail = file.error().describe();
    return c;
  }
  UniqueFd fd(open(libc_path.c_str(), O_RDONLY | O_CLOEXEC));
  auto table = elf::compile_cfi(fd.get(), libc_path);
  if (!table) {
    c.detail = table.error().describe();
    c.remedy = "stacks through the C library end at its first frame (it has no frame pointers)";
    return c;
  }
  c.ok = true;
  uint64_t budget = collect::SessionOptions{}.unwind_table_bytes;
  auto debug = symbolize::find_debug_file(**file, libc_path);
  c.detail = fmt::format("{} KiB of the {} MiB budget (--unwind-table-mib); {}",
                         table->rows.size() * sizeof(ml_unwind_row) >> 10, budget >> 20,
                         debug ? "its internal functions are named from " + debug->display_name()
                               : "no debug file: its internal functions are named after the nearest "
                                 "exported symbol (memset+0x41); install libc6-dbg for their names");
  return c;
}

struct Printer {
  int failures = 0;
  void line(const Check& c) {
    fmt::print("[{}] {}: {}\n", c.ok ? " ok " : "FAIL", c.name, c.detail);
    if (!c.ok) {
      ++failures;
      if (!c.remedy.empty()) fmt::print("       remedy: {}\n", c.remedy);
    }
  }
};

}  // namespace

namespace {

// Whether the JS frames of a binary's processes can be named from V8's metadata (without a perf map).
void print_js_names(const std::string& what, const Result<node::V8FrameLayout>& layout) {
  if (layout) {
    fmt::print(
        "JS frame names from V8 metadata of {}: understood (function at fp{:+d}, context at fp{:+d}; "
        "builtins {})\n",
        what, layout->off_fp_function, layout->off_fp_context,
        layout->builtins_from_symbols ? "named by the binary" : "not named: its whole code is checked");
  } else {
    fmt::print(
        "JS frame names from V8 metadata of {}: not understood: {} (JS frames keep their addresses "
        "unless node writes a perf map)\n",
        what, layout.error().message);
  }
}

}  // namespace

int doctor_command(std::optional<pid_t> pid, const std::string& binary) {
  install_libbpf_logging(false);
  Printer out;
  fmt::print("memlens {} on Linux {}\n", MEMLENS_VERSION, proc::kernel_release());
  Check priv = check_privileges();
  out.line(priv);
  out.line(check_btf());
  out.line(check_ring_buffer());
  out.line(check_uprobes());

  std::unique_ptr<collect::BpfSession> session;
  if (priv.ok) {
    auto s = collect::BpfSession::open_and_load({});
    Check load{"BPF programs load (verifier, CO-RE)"};
    load.ok = s.ok();
    load.detail = s ? "all programs verified" : s.error().describe();
    load.remedy = s || !is_permission_error(s.error())
                      ? "a kernel >= 5.17 with BTF is needed; run with -v for libbpf's log"
                      : "the kernel refused it for lack of privileges: run memlens as root, or grant it "
                        "CAP_BPF and CAP_PERFMON";
    out.line(load);
    if (s) {
      session = std::move(*s);
      auto st = session->attach_kernel_probes();
      if (!st) {
        out.line({"tracepoints", false, st.error().describe(), "the kernel lacks a required tracepoint"});
      } else {
        for (const auto& p : *st)
          out.line({"tracepoint " + p.name, p.attached, p.attached ? "attached" : p.reason,
                    "page-fault counting needs the x86 exceptions tracepoints; figures will lack faults"});
      }
      // A uprobe on our own C library proves the uprobe path end to end.
      auto libc = collect::find_libc(getpid());
      Check up{"uprobe attach (libc mmap, own process)"};
      if (libc) {
        auto probes = collect::attach_process_probes(*session, getpid(), *libc, true);
        up.ok = probes.ok();
        up.detail =
            probes ? fmt::format("{} probes attached on {}", probes->attached_count(), libc->path_in_process)
                   : probes.error().describe();
      } else {
        up.detail = libc.error().describe();
      }
      up.remedy = "uprobes need CONFIG_UPROBE_EVENTS and a readable C library";
      out.line(up);
      if (libc) out.line(check_unwind_tables(libc->path_in_process));
      // Not a failure either way: without it a forked child runs until its probes are attached, and that
      // time is counted as untraced.
      bool fork_holds = collect::BpfSession::read_kernel_facts().can_signal_task;
      out.line({"holding new processes", true,
                fork_holds
                    ? "at fork and at exec, until their probes are attached"
                    : "at exec only: this kernel has no bpf_send_signal_task (Linux 6.13+), so a forked "
                      "child runs untraced until its probes are attached (counted as untraced time)",
                ""});
    }
  }

  if (pid) {
    Check exists{fmt::format("process {}", *pid)};
    exists.ok = proc::process_exists(*pid);
    if (exists.ok) {
      auto st = proc::read_stat(*pid);
      auto exe = proc::read_exe(*pid);
      exists.detail = fmt::format("{} ({})", st ? st->comm : "?", exe ? *exe : "exe unreadable");
    } else {
      exists.detail = "no such process";
      exists.remedy = "check the pid";
    }
    out.line(exists);
    if (exists.ok) {
      out.line(check_process_access(*pid));
      out.line(check_fd_listing(*pid));
    }
    if (exists.ok) {
      auto libc = collect::find_libc(*pid);
      Check c{"C library of the process"};
      c.ok = libc.ok();
      c.detail = libc ? libc->path_in_process : libc.error().describe();
      c.remedy = "address-space calls are traced through the C library; a static binary is not supported";
      out.line(c);
      if (libc && session) {
        auto probes = collect::attach_process_probes(*session, *pid, *libc, true);
        out.line({"address-space uprobes on the process", probes.ok(),
                  probes ? fmt::format("{} attached", probes->attached_count()) : probes.error().describe(),
                  "check that the process's C library is readable"});
      }
      auto v8 = collect::describe_v8_probes_for_pid(*pid);
      fmt::print("V8 probes of process {}:\n{}", *pid, v8 ? *v8 : "  " + v8.error().describe() + "\n");
      if (auto maps = proc::read_maps(*pid)) {
        auto layout = node::v8_layout_for_process(*pid, *maps);
        print_js_names(layout.binary.empty() ? "process " + std::to_string(*pid) : layout.binary,
                       layout.layout ? Result<node::V8FrameLayout>(*layout.layout)
                                     : Result<node::V8FrameLayout>(make_error(layout.error)));
      }
    }
  }
  if (!binary.empty()) {
    Check c{"binary " + binary};
    c.ok = access(binary.c_str(), R_OK) == 0;
    c.detail = c.ok ? "readable" : "cannot be read";
    c.remedy = "check the path";
    out.line(c);
    auto v8 = collect::describe_v8_probes_for_binary(binary);
    fmt::print("V8 probes of {}:\n{}", binary, v8 ? *v8 : "  " + v8.error().describe() + "\n");
    if (auto elf = elf::ElfFile::open_path(binary)) print_js_names(binary, node::read_v8_frame_layout(**elf));
  }

  if (out.failures == 0) {
    fmt::print("all checks passed\n");
    return kExitOk;
  }
  fmt::print("{} check(s) failed\n", out.failures);
  return kExitFailure;
}

}  // namespace memlens::cli
