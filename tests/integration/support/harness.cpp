#include "support/harness.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace memlens::testing {

namespace fs = std::filesystem;

bool in_ci() {
  const char* ci = getenv("CI");
  return ci && std::string(ci) == "true";
}

std::string node_bin() {
  if (const char* n = getenv("MEMLENS_TEST_NODE")) return n;
  return "node";
}

std::string missing_tracing_capability() {
  if (geteuid() != 0) return "integration tests need root (BPF and uprobes)";
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) return "the kernel has no BTF (/sys/kernel/btf/vmlinux)";
  if (system((node_bin() + " --version >/dev/null 2>&1").c_str()) != 0) return "node is not on PATH";
  return "";
}

std::string memlens_bin() {
  const char* b = getenv("MEMLENS_BIN");
  return b ? b : "memlens";
}

std::string source_dir() {
  const char* s = getenv("MEMLENS_SOURCE_DIR");
  return s ? s : ".";
}

std::string test_program(const std::string& name) {
  const char* b = getenv("MEMLENS_BUILD_DIR");
  return std::string(b ? b : ".") + "/test-programs/" + name;
}

std::string scenario(const std::string& name) {
  return source_dir() + "/tests/scenarios/" + name + ".js";
}

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "memlens-test-XXXXXX").string();
  char* p = mkdtemp(tmpl.data());
  path_ = p ? p : "";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty() && !getenv("MEMLENS_KEEP_TEST_DIRS")) fs::remove_all(path_, ec);
}

Child Child::spawn(const std::vector<std::string>& argv, const std::string& capture_dir,
                   const std::string& tag) {
  Child c;
  c.out_path_ = capture_dir + "/" + tag + ".stdout";
  c.err_path_ = capture_dir + "/" + tag + ".stderr";
  pid_t pid = fork();
  if (pid == 0) {
    int out = open(c.out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(c.err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(err, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    setpgid(0, 0);  // its own group: a test can signal memlens without hitting the test runner
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  c.pid_ = pid;
  return c;
}

Child::Child(Child&& o) noexcept {
  *this = std::move(o);
}

Child& Child::operator=(Child&& o) noexcept {
  pid_ = o.pid_;
  out_path_ = std::move(o.out_path_);
  err_path_ = std::move(o.err_path_);
  status_ = o.status_;
  o.pid_ = -1;
  return *this;
}

Child::~Child() {
  if (pid_ > 0 && !status_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::optional<int> Child::wait(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int st = 0;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
      return status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void Child::signal(int sig) {
  if (pid_ > 0 && !status_) kill(pid_, sig);
}

static std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Child::stdout_text() const {
  return slurp(out_path_);
}
std::string Child::stderr_text() const {
  return slurp(err_path_);
}

std::optional<nlohmann::json> Child::wait_for_event(const std::string& event,
                                                    std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto e = last_event(json_lines(stdout_text()), event)) return e;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return std::nullopt;
}

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

std::optional<nlohmann::json> last_event(const std::vector<nlohmann::json>& lines, const std::string& event,
                                         std::optional<int> pid) {
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (it->value("event", "") != event) continue;
    if (pid && it->value("pid", -1) != *pid) continue;
    return *it;
  }
  return std::nullopt;
}

int pid_of(const std::vector<nlohmann::json>& lines, const nlohmann::json& line) {
  if (line.contains("pid")) return line["pid"].get<int>();
  std::string tag = line.value("tag", "");
  for (const auto& l : lines)
    if (l.value("event", "") == "ready" && l.value("tag", "") == tag && l.contains("pid"))
      return l["pid"].get<int>();
  return 0;
}

nlohmann::json load_report(const std::string& dir) {
  std::ifstream in(dir + "/report.json");
  if (!in) return nlohmann::json();
  return nlohmann::json::parse(in, nullptr, false);
}

std::optional<nlohmann::json> report_process(const nlohmann::json& report, int pid) {
  if (!report.is_object() || !report.contains("processes")) return std::nullopt;
  for (const auto& p : report["processes"])
    if (p.value("pid", -1) == pid) return p;
  return std::nullopt;
}

CommandResult run_shell(const std::string& cmd) {
  CommandResult r;
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.output.append(buf, n);
  int status = pclose(f);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string checkers_missing() {
  std::string modules = source_dir() + "/tests/html/node_modules/";
  if (!std::filesystem::exists(modules + "pprof-format") ||
      !std::filesystem::exists(modules + "playwright-core"))
    return "tests/html/node_modules is missing (run scripts/test-prepare.sh)";
  const char* chromium = getenv("CHROMIUM");
  if (!std::filesystem::exists(chromium ? chromium : "/usr/bin/chromium")) return "chromium is not installed";
  return "";
}

nlohmann::json pprof_summary(const std::string& path, const std::string& function) {
  auto r = run_shell("node " + shell_quote(source_dir() + "/tests/html/pprof-summary.js") + " " +
                     shell_quote(path) + (function.empty() ? "" : " " + shell_quote(function)));
  if (r.exit_code != 0) {
    ADD_FAILURE() << "pprof-summary " << path << ": " << r.output;
    return nullptr;
  }
  auto j = nlohmann::json::parse(r.output, nullptr, false);
  if (j.is_discarded()) ADD_FAILURE() << "pprof-summary printed no JSON: " << r.output;
  return j.is_discarded() ? nlohmann::json() : j;
}

FoldedFile read_folded(const std::string& path, const std::string& function) {
  FoldedFile f;
  std::ifstream in(path);
  if (!in) f.malformed = true;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto space = line.rfind(' ');
    if (space == std::string::npos || space == 0) {
      f.malformed = true;
      continue;
    }
    try {
      f.total += std::stold(line.substr(space + 1));
    } catch (...) {
      f.malformed = true;
      continue;
    }
    ++f.lines;
    if (!function.empty() && line.find(function) != std::string::npos) ++f.lines_with_function;
  }
  return f;
}

::testing::AssertionResult within(const char* what, double actual, double expected, double tolerance) {
  double diff = std::abs(actual - expected);
  if (expected != 0 && diff <= tolerance * std::abs(expected)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": memlens says " << actual << ", ground truth " << expected << " (off by "
         << (expected ? 100.0 * diff / std::abs(expected) : 0) << "%, allowed " << 100 * tolerance << "%)";
}

namespace {

std::string node_cache() {
  if (const char* c = getenv("MEMLENS_NODE_CACHE")) return c;
  return source_dir() + "/.cache/node";
}

}  // namespace

// The runnable node of a cache target ("18" .. "24", or "libnode"), fetched with scripts/fetch-node.sh when
// missing. Empty with the reason in why when it cannot be had.
std::string cached_node(const std::string& target, std::string& why) {
  std::string path =
      target == "libnode" ? node_cache() + "/libnode/run-node" : node_cache() + "/" + target + "/bin/node";
  if (access(path.c_str(), X_OK) != 0) {
    std::string cmd = source_dir() + "/scripts/fetch-node.sh " + target + " >/dev/null 2>&1";
    int rc = system(cmd.c_str());
    if (access(path.c_str(), X_OK) != 0) {
      why = "no " + path + " (scripts/fetch-node.sh " + target + " exited " + std::to_string(rc) + ")";
      return "";
    }
  }
  return path;
}

ResourceUse watch_until_exit(Child& child, std::chrono::milliseconds timeout) {
  ResourceUse use;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::string dir = "/proc/" + std::to_string(child.pid());
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream status(dir + "/status");
    std::string line;
    while (std::getline(status, line))
      if (line.rfind("VmHWM:", 0) == 0)
        use.peak_rss_bytes = std::max<uint64_t>(use.peak_rss_bytes, std::stoull(line.substr(6)) * 1024);
    std::ifstream stat(dir + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    if (auto close = text.rfind(')'); close != std::string::npos) {
      std::istringstream fields(text.substr(close + 2));
      std::string f;
      std::vector<std::string> v;
      while (fields >> f) v.push_back(f);
      // utime and stime are fields 14 and 15 of stat; v starts at field 3 (state).
      if (v.size() > 12 && v[0] != "Z") use.cpu_s = (std::stod(v[11]) + std::stod(v[12])) / ticks;
    }
    if (auto rc = child.wait(std::chrono::milliseconds(100))) {
      use.exit_code = rc;
      return use;
    }
  }
  return use;
}

// Ids of the BPF programs a process holds open (its bpf-prog fds), from /proc/PID/fdinfo.
HeldPrograms::HeldPrograms(const std::set<uint32_t>& ids) {
  for (uint32_t id : ids) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd >= 0) fds_[id] = fd;
  }
}

HeldPrograms::~HeldPrograms() {
  for (auto& [id, fd] : fds_) close(fd);
}

std::map<uint32_t, HeldPrograms::Runs> HeldPrograms::runs() const {
  std::map<uint32_t, Runs> out;
  for (const auto& [id, fd] : fds_) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) out[id] = {info.name, info.run_cnt};
  }
  return out;
}

std::set<uint32_t> programs_held_by(pid_t pid) {
  std::set<uint32_t> ids;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fdinfo", ec)) {
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("prog_id:", 0) == 0) ids.insert(static_cast<uint32_t>(std::stoul(line.substr(8))));
  }
  return ids;
}

namespace {

// `bpftool -j OBJECT list` as JSON (an array; null when bpftool fails).
nlohmann::json bpftool_list(const std::string& object) {
  auto r = run_shell("(bpftool -j " + object + " list 2>/dev/null)");  // its warnings are not JSON
  return nlohmann::json::parse(r.output, nullptr, false);
}

std::set<uint32_t> loaded_program_ids() {
  std::set<uint32_t> ids;
  auto j = bpftool_list("prog");
  if (j.is_array())
    for (const auto& p : j)
      if (p.contains("id")) ids.insert(p["id"].get<uint32_t>());
  return ids;
}

// Links (bpftool link list) of the given programs.
std::vector<uint32_t> links_of(const std::set<uint32_t>& programs) {
  std::vector<uint32_t> out;
  auto j = bpftool_list("link");
  if (j.is_array())
    for (const auto& l : j)
      if (l.contains("prog_id") && programs.count(l["prog_id"].get<uint32_t>()))
        out.push_back(l["id"].get<uint32_t>());
  return out;
}

// tracefs probe definitions a process left behind (libbpf names its legacy uprobes libbpf_<pid>_...).
std::vector<std::string> tracefs_probes_of(pid_t pid) {
  std::vector<std::string> out;
  for (const char* file : {"/sys/kernel/tracing/uprobe_events", "/sys/kernel/debug/tracing/uprobe_events",
                           "/sys/kernel/tracing/kprobe_events"}) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line))
      if (line.find("libbpf_" + std::to_string(pid) + "_") != std::string::npos) out.push_back(line);
  }
  return out;
}

}  // namespace

std::string leftovers_of(pid_t memlens_pid, const std::set<uint32_t>& programs,
                         std::chrono::milliseconds grace) {
  // The kernel releases a dead process's uprobes after a grace period each: poll until the deadline.
  auto deadline = std::chrono::steady_clock::now() + grace;
  std::string what;
  do {
    what.clear();
    auto loaded = loaded_program_ids();
    size_t still = 0;
    for (uint32_t id : programs) still += loaded.count(id);
    if (still) what += std::to_string(still) + " of memlens's BPF programs still loaded; ";
    if (!links_of(programs).empty()) what += "links of memlens's programs remain; ";
    if (!tracefs_probes_of(memlens_pid).empty()) what += "tracefs probe definitions remain; ";
    if (what.empty()) return "";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() < deadline);
  return what;
}

}  // namespace memlens::testing
