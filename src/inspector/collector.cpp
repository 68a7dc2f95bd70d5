#include "inspector/collector.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <utility>

#include "inspector/cdp.h"
#include "inspector/heap_snapshot.h"
#include "inspector/net.h"
#include "inspector/signal_check.h"
#include "inspector/watchdog.h"

namespace memlens::inspector {

namespace {

constexpr uint16_t kDefaultPort = 9229;
constexpr int kCallTimeoutMs = 20000;

double mono_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The WebSocket endpoint of an inspector: host:port and the path of its target.
struct Endpoint {
  std::string host;
  uint16_t port = 0;
  std::string path;
  std::string address() const { return fmt::format("{}:{}", host, port); }
};

// Asks the inspector at host:port (in pid's namespace) for its target list; the first node target's
// WebSocket path.
Result<Endpoint> query_target(pid_t pid, const std::string& host, uint16_t port) {
  auto fd = connect_in_namespace(pid, host, port, 2000);
  if (!fd) return fd.error();
  auto body = http_get(*fd, fmt::format("{}:{}", host, port), "/json/list", 1 << 20);
  close(*fd);
  if (!body) return body.error();
  auto j = nlohmann::json::parse(*body, nullptr, false);
  if (!j.is_array()) return make_error("not an inspector's target list");
  for (const auto& t : j) {
    std::string url = t.value("webSocketDebuggerUrl", "");
    auto scheme = url.find("://");
    if (scheme == std::string::npos) continue;
    auto slash = url.find('/', scheme + 3);
    if (slash == std::string::npos) continue;
    return Endpoint{host, port, url.substr(slash)};
  }
  return make_error("the inspector lists no target");
}

// Estimated object count of a sample V8 reports as `scaled_bytes` (object size times V8's scaled count
// 1 / (1 - exp(-size / interval))): solve for the object size.
double estimated_objects(double scaled_bytes, double interval) {
  if (scaled_bytes <= 0 || interval <= 0) return 0;
  if (scaled_bytes <= interval) return 1;
  double lo = 1, hi = scaled_bytes;
  for (int i = 0; i < 40; ++i) {
    double mid = 0.5 * (lo + hi);
    double v = mid / (1.0 - std::exp(-mid / interval));
    (v < scaled_bytes ? lo : hi) = mid;
  }
  double size = 0.5 * (lo + hi);
  return std::max(1.0, scaled_bytes / size);
}

model::JsFrame frame_of(const nlohmann::json& cf) {
  model::JsFrame f;
  f.function = cf.value("functionName", "");
  f.url = cf.value("url", "");
  int64_t line = cf.value("lineNumber", -1), col = cf.value("columnNumber", -1);
  f.line = line >= 0 ? static_cast<uint32_t>(line + 1) : 0;
  f.column = col >= 0 ? static_cast<uint32_t>(col + 1) : 0;
  return f;
}

}  // namespace

model::JsLiveProfile parse_sampling_profile(const nlohmann::json& result, double t_s,
                                            uint64_t sampling_interval_bytes) {
  model::JsLiveProfile out;
  out.t_s = t_s;
  out.sampling_interval_bytes = sampling_interval_bytes;
  const nlohmann::json* profile = &result;
  if (auto p = result.find("profile"); p != result.end()) profile = &*p;
  auto head = profile->find("head");
  if (head == profile->end() || !head->is_object()) return out;
  // Objects per node, from the samples.
  std::map<int64_t, double> objects;
  if (auto samples = profile->find("samples"); samples != profile->end() && samples->is_array())
    for (const auto& s : *samples)
      objects[s.value("nodeId", int64_t{-1})] +=
          estimated_objects(s.value("size", 0.0), static_cast<double>(sampling_interval_bytes));
  // Depth-first, iteratively (a deep recursion in the app gives a deep tree).
  struct Item {
    const nlohmann::json* node;
    size_t depth;
  };
  std::vector<Item> todo{{&*head, 0}};
  model::JsStack path;
  while (!todo.empty()) {
    Item it = todo.back();
    todo.pop_back();
    const auto& node = *it.node;
    // The head is V8's "(root)": not a frame of the app.
    size_t frames = it.depth == 0 ? 0 : it.depth;
    path.resize(frames > 0 ? frames - 1 : 0);
    if (it.depth > 0) path.push_back(frame_of(node.value("callFrame", nlohmann::json::object())));
    double self = node.value("selfSize", 0.0);
    if (self > 0) {
      model::JsLiveSite site;
      site.stack = path;
      site.bytes = static_cast<uint64_t>(self);
      site.objects = static_cast<uint64_t>(std::llround(objects[node.value("id", int64_t{-1})]));
      out.sites.push_back(std::move(site));
    }
    if (auto ch = node.find("children"); ch != node.end() && ch->is_array())
      for (auto c = ch->rbegin(); c != ch->rend(); ++c) todo.push_back({&*c, it.depth + 1});
  }
  return out;
}

namespace {

// memlens's own peak RSS since the last reset_peak_rss() (VmHWM).
void reset_peak_rss() {
  if (FILE* f = fopen("/proc/self/clear_refs", "w")) {
    fputs("5", f);
    fclose(f);
  }
}

// A figure of a process's status in bytes ("VmHWM", "VmRSS"); 0 when unreadable.
uint64_t status_bytes(const std::string& status_path, const char* field) {
  uint64_t kb = 0;
  std::string fmt_str = fmt::format("{}: %lu kB", field);
  if (FILE* f = fopen(status_path.c_str(), "r")) {
    char line[256];
    while (fgets(line, sizeof(line), f))
      if (sscanf(line, fmt_str.c_str(), &kb) == 1) break;
    fclose(f);
  }
  return kb * 1024;
}

uint64_t own_status_bytes(const char* field) {
  return status_bytes("/proc/self/status", field);
}

std::string mib(int64_t bytes) {
  return fmt::format("{:.0f} MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

}  // namespace

// --save-snapshots: one snapshot's text written as it streams, mode 0600 (it holds every string of the
// heap), into a file with no name (O_TMPFILE) that gets its name only when the snapshot is whole: a trace
// cut short, memlens killed, or a full disk leaves nothing. Where the file system has no O_TMPFILE, a hidden
// `.part` file created anew (O_EXCL) stands in, removed on failure. The first write error stops the
// writing and is reported; the snapshot itself is still read. The reader thread writes while the
// collector's thread may give up on a snapshot that timed out: a mutex keeps them apart.
class SnapshotFile {
 public:
  SnapshotFile(const std::string& dir, pid_t pid, int index)
      : dir_(dir),
        path_(fmt::format("{}/heap-{}-{}.heapsnapshot", dir, pid, index)),
        tmp_(fmt::format("{}/.heap-{}-{}.heapsnapshot.part", dir, pid, index)) {
    fd_ = open(dir_.c_str(), O_WRONLY | O_TMPFILE | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      anonymous_ = false;
      unlink(tmp_.c_str());  // a stale one, from a memlens killed without O_TMPFILE
      fd_ = open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    }
    if (fd_ < 0) error_ = fmt::format("cannot create a file in {}: {}", dir_, strerror(errno));
  }
  ~SnapshotFile() { discard(); }
  SnapshotFile(const SnapshotFile&) = delete;
  SnapshotFile& operator=(const SnapshotFile&) = delete;

  void write(const std::string& text) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t done = 0; fd_ >= 0 && done < text.size();) {
      ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fail(fmt::format("cannot write {}: {}", path_, n < 0 ? strerror(errno) : "no progress"));
        return;
      }
      done += static_cast<size_t>(n);
    }
  }
  // The snapshot is whole: the file takes its name (replacing an older one). Returns the path, or ""
  // (error() says why).
  std::string finish() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (fd_ < 0) return "";
    if (fsync(fd_) != 0) {
      fail(fmt::format("cannot write {}: {}", path_, strerror(errno)));
      return "";
    }
    if (anonymous_) {
      // A name for the nameless file, then the final name in one step.
      unlink(tmp_.c_str());
      std::string self = fmt::format("/proc/self/fd/{}", fd_);
      if (linkat(AT_FDCWD, self.c_str(), AT_FDCWD, tmp_.c_str(), AT_SYMLINK_FOLLOW) != 0) {
        fail(fmt::format("cannot name {}: {}", path_, strerror(errno)));
        return "";
      }
    }
    close(std::exchange(fd_, -1));
    if (rename(tmp_.c_str(), path_.c_str()) != 0) {
      fail(fmt::format("cannot rename {} to {}: {}", tmp_, path_, strerror(errno)));
      unlink(tmp_.c_str());
      return "";
    }
    done_ = true;
    return path_;
  }
  // Not whole (failed, unreadable, timed out): nothing is left behind.
  void discard() {
    std::lock_guard<std::mutex> lock(mutex_);
    drop();
  }
  std::string error() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return error_;
  }

 private:
  void fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    drop();
  }
  void drop() {
    if (fd_ >= 0) close(std::exchange(fd_, -1));
    if (!anonymous_ && !done_) unlink(tmp_.c_str());
    done_ = true;
  }
  mutable std::mutex mutex_;
  std::string dir_, path_, tmp_, error_;
  int fd_ = -1;
  bool anonymous_ = true;  // O_TMPFILE: no name until whole
  bool done_ = false;
};

// Takes one heap snapshot through `session`, streaming its chunks into the parser (the session's event
// callback hands them to stream()), and diffs it against the first one.
class SnapshotTaker {
 public:
  SnapshotTaker(const CollectorOptions& opts, pid_t pid)
      : opts_(opts), pid_(pid), status_path_(fmt::format("/proc/{}/status", pid)) {}
  void use(CdpSession* session) { session_ = session; }

  void on_chunk(const nlohmann::json& params) {
    std::shared_ptr<HeapSnapshotStream> s;
    std::shared_ptr<SnapshotFile> f;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      s = stream_;
      f = file_;
    }
    if (!s) return;
    if (auto c = params.find("chunk"); c != params.end() && c->is_string()) {
      const std::string& text = c->get_ref<const std::string&>();
      s->feed(text);
      if (f) f->write(text);
    }
  }
  // The latest sampling profile's live objects: their mean size gives the heap's object count, which a
  // snapshot's cost follows.
  void note_profile(const model::JsLiveProfile& p) { profile_ = profile_objects(p); }
  bool profile_gives_mean() const { return profile_.bytes >= opts_.snapshot_cost.min_profile_bytes; }
  // The last snapshot was refused on an estimate made with the assumed mean object size.
  bool last_refusal_assumed_mean() const { return last_refusal_assumed_mean_; }
  int taken() const { return taken_; }
  bool has_baseline() const { return baseline_.has_value(); }
  uint64_t baseline_heap_used() const { return baseline_heap_used_; }
  uint64_t last_heap_used() const { return last_heap_used_; }  // at the last snapshot taken
  // V8's heap used now (after the full GC of a profile read: what stays live).
  std::optional<uint64_t> heap_used() {
    auto usage = session_->call("Runtime.getHeapUsage", nlohmann::json::object(), 5000);
    if (!usage) return std::nullopt;
    return usage->value("usedSize", uint64_t{0});
  }

  // Emits a JsHeapSnapshot (and, after the baseline, a JsHeapDiff).
  void take(const std::string& reason, double t_s, const std::function<void(model::JsObjectsEvent)>& emit,
            const std::function<double()>& now) {
    model::JsHeapSnapshot snap;
    snap.t_s = t_s;
    snap.reason = reason;
    auto usage = session_->call("Runtime.getHeapUsage", nlohmann::json::object(), 5000);
    if (usage) snap.heap_used_bytes = usage->value("usedSize", uint64_t{0});
    SnapshotRoom room = opts_.room ? opts_.room() : SnapshotRoom{};
    snap.cgroup_free_bytes = room.cgroup_free_bytes;
    snap.host_free_bytes = room.host_free_bytes;
    SnapshotNeed estimate =
        estimate_snapshot_need(snap.heap_used_bytes, profile_, opts_.snapshot_cost, first_cost_, first_heap_);
    int64_t need = estimate.bytes;
    std::string tight;
    if (room.cgroup_free_bytes >= 0 && room.cgroup_free_bytes < need)
      tight = fmt::format("the target's memory cgroup has {} free", mib(room.cgroup_free_bytes));
    else if (int64_t host_need = need + static_cast<int64_t>(opts_.snapshot_reader_factor *
                                                             static_cast<double>(snap.heap_used_bytes));
             room.host_free_bytes >= 0 && room.host_free_bytes < host_need)
      tight = fmt::format(
          "the host has {} available, and memlens's own reading needs up to about {:.2g}x the heap",
          mib(room.host_free_bytes), opts_.snapshot_reader_factor);
    last_refusal_assumed_mean_ = false;
    if (!usage || !tight.empty()) {
      snap.refused = true;
      last_refusal_assumed_mean_ = usage && !estimate.measured && !estimate.mean_from_profile;
      snap.error =
          usage ? fmt::format(
                      "heap snapshot not taken: V8's heap holds {} and a snapshot of it can need about {} "
                      "{}, but {}: it could get the target OOM-killed",
                      mib(static_cast<int64_t>(snap.heap_used_bytes)), mib(need), estimate.basis, tight)
                : fmt::format("heap snapshot not taken: V8's heap usage could not be read ({})",
                              usage.error().describe());
      emit(snap);
      return;
    }
    ++taken_;
    auto stream = std::make_shared<HeapSnapshotStream>();
    std::shared_ptr<SnapshotFile> file;
    if (!opts_.snapshot_dir.empty()) file = std::make_shared<SnapshotFile>(opts_.snapshot_dir, pid_, taken_);
    reset_peak_rss();
    snap.memlens_rss_before_bytes = own_status_bytes("VmRSS");
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stream_ = stream;
      file_ = file;
    }
    Result<HeapSnapshot> parsed = make_error("not parsed");
    std::thread parser([&]() { parsed = stream->parse(); });
    // The target's RSS while V8 writes the snapshot, sampled beside the request.
    snap.target_rss_before_bytes = status_bytes(status_path_, "VmRSS");
    std::atomic<bool> answered{false};
    std::atomic<uint64_t> target_peak{snap.target_rss_before_bytes};
    std::thread sampler([&]() {
      while (!answered) {
        uint64_t rss = status_bytes(status_path_, "VmRSS");
        if (rss > target_peak) target_peak = rss;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
    double t0 = mono_s();
    // V8 takes about 0.2-0.45 s per MiB of a heap of small objects on a busy machine (98 s for 219 MiB):
    // 2 minutes, and 0.6 s more per MiB of heap used.
    int timeout_ms = static_cast<int>(
        std::min<double>(120000.0 + 0.6 * static_cast<double>(snap.heap_used_bytes) / 1024.0, 3600000.0));
    auto answer = session_->call("HeapProfiler.takeHeapSnapshot",
                                 {{"reportProgress", false}, {"captureNumericValue", false}}, timeout_ms);
    snap.pause_ms = (mono_s() - t0) * 1000.0;
    answered = true;
    sampler.join();
    snap.target_rss_peak_bytes = target_peak;
    if (answer && first_cost_ == 0 && snap.target_rss_peak_bytes > snap.target_rss_before_bytes) {
      first_cost_ = snap.target_rss_peak_bytes - snap.target_rss_before_bytes;
      first_heap_ = snap.heap_used_bytes;
    }
    stream->end();
    parser.join();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stream_.reset();
      file_.reset();
    }
    if (file) {
      if (answer && parsed)
        snap.file = file->finish();
      else
        file->discard();
      if (snap.file.empty())
        snap.file_error =
            file->error().empty() ? "the snapshot was not whole: no file written" : file->error();
    }
    // The baseline's summary, or the diff against it, while the snapshot is held: memlens's peak covers both.
    std::optional<model::JsHeapDiff> d;
    bool first = !baseline_.has_value();
    if (answer && parsed) {
      snap.ok = true;
      snap.json_bytes = parsed->json_bytes;
      snap.nodes = parsed->nodes();
      snap.edges = parsed->edge_total();
      snap.parsed_bytes = parsed->bytes_in_memory();
      if (first)
        baseline_ = summarize(*parsed);
      else
        d = diff(*baseline_, *parsed);
      parsed = make_error("released");
    }
    snap.memlens_peak_rss_bytes = own_status_bytes("VmHWM");
    if (!answer) {
      snap.error = fmt::format("heap snapshot failed: {}", answer.error().describe());
    } else if (!snap.ok) {
      snap.error = fmt::format("heap snapshot unreadable: {}", parsed.error().describe());
    }
    emit(snap);
    if (!snap.ok) return;
    last_heap_used_ = snap.heap_used_bytes;
    if (first) {
      baseline_t_ = t_s;
      baseline_heap_used_ = snap.heap_used_bytes;
      return;
    }
    d->t_s = now();
    d->from_t_s = baseline_t_;
    emit(std::move(*d));
  }

 private:
  CdpSession* session_ = nullptr;
  const CollectorOptions& opts_;
  std::mutex mutex_;
  std::shared_ptr<HeapSnapshotStream> stream_;
  std::optional<HeapSummary> baseline_;
  pid_t pid_;
  std::string status_path_;  // the target's /proc/PID/status
  uint64_t first_cost_ = 0;  // the target's RSS growth while V8 wrote the first snapshot
  uint64_t first_heap_ = 0;  // and V8's heap used then
  ProfileObjects profile_;
  bool last_refusal_assumed_mean_ = false;
  std::shared_ptr<SnapshotFile> file_;  // --save-snapshots: where the snapshot being taken is written
  double baseline_t_ = 0;
  uint64_t baseline_heap_used_ = 0;
  uint64_t last_heap_used_ = 0;
  int taken_ = 0;
};

JsObjectsCollector::JsObjectsCollector(pid_t pid, CollectorOptions opts) : pid_(pid), opts_(std::move(opts)) {
  worker_ = std::thread([this]() { run(); });
}

JsObjectsCollector::~JsObjectsCollector() {
  stop();
}

void JsObjectsCollector::stop() {
  stop_ = true;
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

std::vector<model::JsObjectsEvent> JsObjectsCollector::drain() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<model::JsObjectsEvent> out;
  out.swap(events_);
  return out;
}

bool JsObjectsCollector::request_full_gc(const std::string& reason) {
  if (opts_.sampling_only || !open_) return false;  // sampling: no pause before the trace ends
  std::lock_guard<std::mutex> lock(mutex_);
  if (gc_request_) return false;
  double t = now();
  if (last_gc_s_ && t - *last_gc_s_ < opts_.min_forced_gc_gap_s) return false;
  gc_request_ = reason;
  last_gc_s_ = t;
  wake_.notify_all();
  return true;
}

std::optional<double> JsObjectsCollector::last_forced_gc_s() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_gc_s_;
}

void JsObjectsCollector::emit(model::JsObjectsEvent e) {
  std::lock_guard<std::mutex> lock(mutex_);
  events_.push_back(std::move(e));
}

void JsObjectsCollector::unavailable(std::string reason, std::string handler) {
  model::JsInspectorStatus s;
  s.t_s = now();
  s.state = "unavailable";
  s.reason = std::move(reason);
  s.handler = std::move(handler);
  emit(std::move(s));
}

bool JsObjectsCollector::wait_stop(double seconds) {
  std::unique_lock<std::mutex> lock(mutex_);
  wake_.wait_for(lock, std::chrono::duration<double>(seconds),
                 [&]() { return stop_.load() || gc_request_.has_value() || target_exiting_.load(); });
  return stop_;
}

void JsObjectsCollector::run() {
  // The process, pinned: a signal goes to it and never to a later process that reuses its pid.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd < 0) return unavailable(fmt::format("pid {} is gone", pid_));
  struct PidFd {
    int fd;
    ~PidFd() { close(fd); }
  } pidfd_owner{pidfd};

  auto flags = read_inspector_flags(pid_);
  if (!flags) return unavailable(fmt::format("cannot read its command line: {}", flags.error().describe()));
  if (flags->disable_sigusr1)
    return unavailable(
        "the process was started with --disable-sigusr1, so SIGUSR1 cannot open its inspector; memlens "
        "sent nothing (restart it without that flag, or with --inspect=127.0.0.1:0, to see JS objects)");
  if (flags->permission && !flags->allow_inspector)
    return unavailable(
        "the process runs under Node's permission model (--permission) without --allow-inspector, so its "
        "inspector cannot open; memlens sent nothing");
  if (!is_loopback_host(flags->host))
    return unavailable(fmt::format(
        "the process's inspector is configured to listen on {}, not on loopback: opening it would let the "
        "network run code in the app; memlens sent nothing",
        flags->host));
  uint16_t expected_port = flags->port.value_or(kDefaultPort);

  auto before = listening_sockets(pid_);
  if (!before) return unavailable(fmt::format("cannot read its sockets: {}", before.error().describe()));

  // An inspector already open (a developer's debugger, --inspect): used, never closed.
  std::optional<Endpoint> endpoint;
  bool opened_by_memlens = false;
  std::string handler_name;
  for (const auto& s : *before)
    if (s.local_port == expected_port || (flags->inspect_at_start && flags->port == 0))
      if (auto ep = query_target(pid_, connect_host(s.local_address), s.local_port)) {
        endpoint = *ep;
        break;
      }

  if (!endpoint) {
    HandlerCheck check = check_sigusr1_handler(pid_);
    double give_up = mono_s() + opts_.wait_for_handler_s;
    while (check.owner == HandlerOwner::kDefault && mono_s() < give_up && !stop_) {
      // Still starting: node installs its handler early in its start-up.
      if (wait_stop(0.1)) return;
      check = check_sigusr1_handler(pid_);
    }
    handler_name = handler_owner_name(check.owner);
    switch (check.owner) {
      case HandlerOwner::kNodeInspector:
        break;
      case HandlerOwner::kAppListener:
        return unavailable(
            "the app listens for SIGUSR1 itself (process.on('SIGUSR1'): libuv's uv__signal_handler holds the "
            "signal), so SIGUSR1 would reach the app's code and open no inspector; memlens sent nothing",
            handler_name);
      case HandlerOwner::kDefault:
        return unavailable(
            "SIGUSR1 has its default action in this process (it would end it): node's inspector handler is "
            "not installed; memlens sent nothing",
            handler_name);
      case HandlerOwner::kIgnored:
        return unavailable(
            "SIGUSR1 is ignored by this process, so it cannot open the inspector; memlens sent nothing",
            handler_name);
      case HandlerOwner::kUnknown:
        if (!opts_.force)
          return unavailable(
              fmt::format("memlens could not tell who handles SIGUSR1 ({}), so it sent nothing "
                          "(--js-objects=force overrides this unknown result)",
                          check.detail),
              handler_name);
        break;
    }
    if (syscall(SYS_pidfd_send_signal, pidfd, SIGUSR1, nullptr, 0) != 0)
      return unavailable(fmt::format("cannot send SIGUSR1: {}", strerror(errno)), handler_name);
    opened_by_memlens = true;
    std::set<uint64_t> old_inodes;
    for (const auto& s : *before) old_inodes.insert(s.inode);
    double deadline = mono_s() + 5.0;
    std::optional<TcpSocket> found;
    while (!found && mono_s() < deadline) {
      if (wait_stop(0.1)) break;
      if (auto now_listening = listening_sockets(pid_))
        for (const auto& s : *now_listening)
          if (!old_inodes.count(s.inode)) found = s;
    }
    if (!found) {
      // Someone else may hold the port in the target's namespace.
      std::string why = "no inspector started within 5 s of SIGUSR1";
      if (auto all = namespace_listening_sockets(pid_))
        for (const auto& s : *all)
          if (s.local_port == expected_port)
            why = fmt::format(
                "port {} is taken in the target's network namespace, so its inspector could not start "
                "(start the app with --inspect-port=<free port>)",
                expected_port);
      return unavailable(why, handler_name);
    }
    // The inspector answers a moment after it listens.
    for (int i = 0; i < 20 && !endpoint; ++i) {
      auto ep = query_target(pid_, connect_host(found->local_address), found->local_port);
      if (ep)
        endpoint = *ep;
      else if (wait_stop(0.1))
        break;
    }
    if (!endpoint)
      return unavailable(fmt::format("the inspector memlens opened on port {} did not answer its target list",
                                     found->local_port),
                         handler_name);
  }

  InspectorWatchdog watchdog;
  if (opened_by_memlens) {
    auto w = InspectorWatchdog::start(pid_, endpoint->host, endpoint->port, endpoint->path);
    if (w) watchdog = std::move(*w);
  }
  auto fd = connect_in_namespace(pid_, endpoint->host, endpoint->port, 2000);
  std::unique_ptr<WebSocket> ws;
  if (fd) {
    auto opened = WebSocket::open(*fd, endpoint->address(), endpoint->path);
    if (opened) ws = std::move(*opened);
  }
  if (!ws) {
    unavailable(fmt::format("cannot connect to the inspector at {}", endpoint->address()), handler_name);
    return;  // the watchdog (not dismissed) closes what memlens opened
  }
  uint16_t my_port = 0;
  {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (getsockname(ws->fd(), reinterpret_cast<sockaddr*>(&ss), &len) == 0)
      my_port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    timeval tv{0, 100000};
    setsockopt(ws->fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  CdpSession* session_ptr = nullptr;
  SnapshotTaker snapshots(opts_, pid_);  // outlives the session, whose reader thread hands it chunks
  CdpSession session(std::move(ws), [&](const std::string& method, const nlohmann::json& params) {
    if (method == "HeapProfiler.addHeapSnapshotChunk") {
      snapshots.on_chunk(params);
      return;
    }
    // The target is exiting and would wait for memlens ("Waiting for the debugger to disconnect"): let
    // it go at once.
    if (method == "NodeRuntime.waitingForDisconnect" || method == "Inspector.detached") {
      target_exiting_ = true;
      wake_.notify_all();
      if (!session_ptr) return;
      // Sampling mode has read nothing yet: one quick read, and the connection closes within a second
      // whatever happens.
      if (opts_.sampling_only && method == "NodeRuntime.waitingForDisconnect")
        session_ptr->disconnect_after(0.8);
      else
        session_ptr->disconnect();
    }
  });
  session_ptr = &session;
  snapshots.use(&session);
  bool snapshots_on = opts_.snapshots && !opts_.sampling_only && opts_.max_snapshots > 0;
  double baseline_at = mono_s() + opts_.snapshot_baseline_after_s;
  // A baseline refused on an assumed mean object size (the profile held too little yet) is tried once more
  // when a profile read gives the mean: the estimate may then allow it.
  enum class Baseline { due, waiting_for_profile, settled } baseline = Baseline::due;
  auto take_snapshot = [&](const std::string& reason) {
    snapshots.take(
        reason, now(), [this](model::JsObjectsEvent e) { emit(std::move(e)); }, [this]() { return now(); });
  };
  (void)session.call("NodeRuntime.notifyWhenWaitingForDisconnect", {{"enabled", true}}, 5000);
  auto started = session.call("HeapProfiler.startSampling",
                              {{"samplingInterval", opts_.sampling_interval_bytes}}, kCallTimeoutMs);
  if (!started) {
    unavailable(
        fmt::format("the inspector refused the sampling heap profiler: {}", started.error().describe()),
        handler_name);
  } else {
    model::JsInspectorStatus st;
    st.t_s = now();
    st.state = "open";
    st.address = endpoint->address();
    st.opened_by_memlens = opened_by_memlens;
    st.handler = handler_name;
    st.reason = opened_by_memlens ? "opened with SIGUSR1 after checking node's own handler holds it"
                                  : "the process's inspector was already open: used, and left open";
    emit(st);
    open_ = true;
  }

  std::set<std::string> clients_connected;
  // V8 runs a full GC before every sampling-profile read (so that the profile holds live objects only):
  // each read is a pause memlens causes, measured and reported, and paced to the pause budget. In sampling
  // mode the profile is read once, when the trace ends.
  double interval = opts_.profile_min_interval_s;
  double next_profile = opts_.sampling_only ? 1e300 : mono_s() + interval;
  double next_clients = mono_s() + 1.0;
  auto read_profile = [&](const std::string& reason, const char* method, int timeout_ms = kCallTimeoutMs) {
    double t = now();
    double t0 = mono_s();
    auto prof = session.call(method, nlohmann::json::object(), timeout_ms);
    model::JsForcedGc g;
    g.t_s = t;
    g.pause_ms = (mono_s() - t0) * 1000.0;
    g.reason = reason;
    g.ok = prof.ok();
    if (!prof) g.error = prof.error().describe();
    if (prof) {
      model::JsLiveProfile parsed = parse_sampling_profile(*prof, t, opts_.sampling_interval_bytes);
      snapshots.note_profile(parsed);
      emit(std::move(parsed));
    }
    emit(g);
    interval = std::clamp(g.pause_ms / 1000.0 / opts_.pause_budget, opts_.profile_min_interval_s,
                          opts_.profile_max_interval_s);
  };
  while (open_ && session.connected() && !target_exiting_) {
    double next_snapshot = snapshots_on && baseline == Baseline::due ? baseline_at : 1e300;
    double wait = std::max(0.0, std::min({next_profile, next_clients, next_snapshot}) - mono_s());
    if (wait_stop(wait)) break;
    std::optional<std::string> gc;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      gc.swap(gc_request_);
    }
    if (mono_s() >= next_clients) {
      next_clients = mono_s() + 2.0;
      // Other connections to the inspector's port, the target's side of them.
      // A client is new when it was not connected at the last check: the set holds only connections
      // that are open now, so it stays as small as the target's fds however many come and go.
      if (auto theirs = other_connections_to_port(pid_, endpoint->port, my_port)) {
        std::set<std::string> connected;
        for (const auto& s : *theirs) {
          std::string peer = fmt::format("{}:{}", unmapped(s.remote_address), s.remote_port);
          if (!clients_connected.count(peer)) emit(model::JsOtherClient{now(), peer});
          connected.insert(std::move(peer));
        }
        clients_connected = std::move(connected);
      }
    }
    // A full GC asked for (growth unconfirmed) is a profile read now: the same pause, and the data too.
    if (gc || mono_s() >= next_profile) {
      read_profile(gc ? *gc : "sampling profile read (V8 runs a full GC first)",
                   "HeapProfiler.getSamplingProfile");
      next_profile = mono_s() + interval;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        last_gc_s_ = now();
      }
      if (snapshots_on && baseline == Baseline::waiting_for_profile && snapshots.profile_gives_mean() &&
          !stop_) {
        take_snapshot("baseline, again: the sampling profile now gives the heap's mean object size");
        baseline = Baseline::settled;
        if (!snapshots.has_baseline()) snapshots_on = false;
      }
      // A growth judged (asked for, or the heap live after this read's full GC grew well past the
      // last snapshot's): one snapshot to diff against the baseline; one is kept for the trace's end.
      if (snapshots_on && snapshots.has_baseline() && snapshots.taken() + 1 < opts_.max_snapshots && !stop_) {
        std::optional<uint64_t> used = gc ? std::nullopt : snapshots.heap_used();
        // Since the last snapshot: with more than three asked for, each growth snapshot shows more growth.
        uint64_t base = snapshots.last_heap_used();
        double grew = used ? static_cast<double>(*used) - static_cast<double>(base) : 0;
        if (gc)
          take_snapshot("JS heap growth judged: " + *gc);
        else if (grew >= std::max(opts_.snapshot_growth_bytes,
                                  opts_.snapshot_growth_ratio * static_cast<double>(base)))
          take_snapshot(fmt::format("JS heap live after a full GC grew by {} since the last snapshot",
                                    mib(static_cast<int64_t>(grew))));
      }
    }
    if (snapshots_on && baseline == Baseline::due && mono_s() >= baseline_at && !stop_) {
      take_snapshot("baseline");
      baseline = snapshots.has_baseline()                ? Baseline::settled
                 : snapshots.last_refusal_assumed_mean() ? Baseline::waiting_for_profile
                                                         : Baseline::settled;
      // Refused or failed for good: no diff this trace.
      if (baseline == Baseline::settled && !snapshots.has_baseline()) snapshots_on = false;
    }
  }

  model::JsInspectorStatus st;
  st.address = endpoint->address();
  st.opened_by_memlens = opened_by_memlens;
  st.state = "closed";
  if (target_exiting_ && open_ && opts_.sampling_only && session.connected())
    read_profile("sampling profile read as the target exited (V8 runs a full GC first)",
                 "HeapProfiler.getSamplingProfile", 600);
  if (target_exiting_ || !session.connected()) {
    st.reason = target_exiting_ ? "the target exited; memlens disconnected at once"
                                : fmt::format("the inspector connection ended: {}", session.end_reason());
    session.disconnect();
    watchdog.dismiss();
  } else {
    if (open_ && snapshots_on && snapshots.has_baseline() && snapshots.taken() < opts_.max_snapshots)
      take_snapshot("trace end");
    // One last read that also stops the profiler, so the profile covers the end of the trace.
    if (open_)
      read_profile("final sampling profile read (V8 runs a full GC first)", "HeapProfiler.stopSampling");
    if (opened_by_memlens) {
      // process._debugEnd() stops the inspector memlens started; the connection ends with it.
      (void)session.send("Runtime.evaluate", {{"expression", "process._debugEnd()"}});
      for (int i = 0; i < 20 && session.connected(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      st.reason = "memlens closed the inspector it opened";
    } else {
      st.reason = "the inspector was open before memlens: left open";
    }
    // Still connected after process._debugEnd(): the watchdog (not dismissed) tries once more.
    bool closed = !opened_by_memlens || !session.connected();
    session.disconnect();
    if (closed) watchdog.dismiss();
  }
  st.t_s = now();
  open_ = false;
  emit(st);
}

}  // namespace memlens::inspector
