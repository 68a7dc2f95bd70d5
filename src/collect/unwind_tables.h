// The unwind tables the kernel's stack walker reads (bpf/common.bpf.h): each executable file a traced
// process maps gets its call-frame information compiled once per run (elf/cfi_table.h, kept by build-id,
// else by device, inode and mtime) into the shared rows array, within its byte budget; each traced process
// gets the list of its executable mappings with their file's rows. A file whose table cannot be loaded
// (no .eh_frame, corrupt, over the budget, unreadable) is named with the reason, and its frames are
// unwound by frame pointers; so is code with no file (V8's JIT code).
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "collect/bpf_session.h"
#include "elf/elf_file.h"
#include "model/trace.h"
#include "proc/procfs.h"

namespace memlens::collect {

class UnwindTables {
 public:
  explicit UnwindTables(BpfSession& session) : session_(session) {}

  // Reads pid's executable mappings and gives the kernel their tables (compiling the files not seen yet).
  // Cheap when nothing changed since the last call. loader_mapping: the process has just exec'd and its
  // libraries are being mapped: the kernel looks up what is not listed yet (ML_UNWIND_PROC_ASK_KERNEL);
  // the next call without it ends that.
  void update(pid_t pid, bool loader_mapping = false);
  // The same from maps the caller has just read.
  void update(pid_t pid, const std::vector<proc::MapEntry>& maps, bool loader_mapping);
  // At exec, before the dynamic loader has mapped anything: compiles the tables of the libraries the new
  // image needs, directly or through another library (where the loader will find them), and gives them to
  // the kernel by file identity: it finds their mappings itself as the loader makes them, until update()
  // has read them.
  void preload_needed(pid_t pid);
  // Before process pid, which memlens started and holds, execs the file at path (in memlens's own root,
  // which pid shares): compiles the tables of that file, its dynamic loader and the libraries it needs, so
  // that none of this competes with the command's start for the CPU (node's table takes about a tenth of a
  // second), and lets the kernel find pid's mappings of them from the exec on.
  void prepare_image(pid_t pid, const std::string& path);
  // pid exited or exec'd: its mappings are no longer valid.
  void forget(pid_t pid);
  // The tables' figures and the kernel's walk counters, for the report.
  model::UnwindInfo info() const;

 private:
  struct FileTable {
    bool ok = false;
    uint32_t first_row = 0, row_count = 0;
    std::vector<elf::LoadSegment> segments;
  };
  const FileTable& table_for(pid_t pid, const proc::MapEntry& m);
  // The table of an open file, compiled unless one of the same build-id (else the same file: device,
  // inode, size and mtime) is loaded.
  const FileTable& table_of_file(int fd, const std::string& name, const std::string& identity);
  // The libraries image exe (a path in pid's root) needs, and its dynamic loader, compiled and given to the
  // kernel (preload_needed); returns the paths of those compiled now.
  std::vector<std::string> preload_image(pid_t pid, const std::string& exe);
  Result<FileTable> load(const elf::ElfFile& elf, int fd, const std::string& name);
  // Gives the kernel the file open at fd (its identity as the kernel names it) with table t.
  void publish_file(int fd, const FileTable& t);

  BpfSession& session_;
  std::map<std::string, FileTable> files_;   // by build-id, else device/inode/size/mtime
  std::map<std::string, std::string> keys_;  // identity of a file seen (a mapping's, a preload's) -> key
  struct Written {
    std::vector<ml_unwind_mapping> mappings;
    uint32_t flags = 0;
  };
  std::map<pid_t, Written> written_;
  std::set<std::string> images_preloaded_;  // each image walked: its file, the root, LD_LIBRARY_PATH
  size_t files_published_ = 0;
  uint32_t rows_used_ = 0;
  double compile_ms_ = 0;
  std::vector<std::string> prepared_;  // files compiled by prepare_image, before their command ran
  std::vector<model::UnwindInfo::Failed> failed_;
};

}  // namespace memlens::collect
