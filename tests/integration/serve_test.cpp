// `memlens serve`: one agent for the whole file, scraped every second by a real Prometheus (Debian's), its
// figures checked against the kernel's (VmRSS), its exposition by promtool, its profiles by go tool pprof,
// and its memory and series over a soak of a few hundred short-lived node processes.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(a.sin_port);
}

uint64_t vm_rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

// The samples of one metric in an exposition whose labels contain every `want` pair.
std::vector<std::pair<std::map<std::string, std::string>, double>> samples_of(
    const std::string& text, const std::string& name, const std::map<std::string, std::string>& want = {}) {
  std::vector<std::pair<std::map<std::string, std::string>, double>> out;
  std::istringstream in(text);
  std::string line;
  static const std::regex label(R"re(([a-zA-Z_]+)="((?:[^"\\]|\\.)*)")re");
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0) continue;
    size_t rest = name.size();
    if (rest < line.size() && line[rest] != '{' && line[rest] != ' ') continue;
    std::map<std::string, std::string> labels;
    auto close = line.rfind('}');
    if (line[rest] == '{') {
      std::string body = line.substr(rest + 1, close - rest - 1);
      for (std::sregex_iterator it(body.begin(), body.end(), label), end; it != end; ++it)
        labels[(*it)[1]] = (*it)[2];
    }
    bool ok = true;
    for (const auto& [k, v] : want) ok = ok && labels.count(k) && labels[k] == v;
    if (!ok) continue;
    out.emplace_back(labels, std::stod(line.substr(line.rfind(' ') + 1)));
  }
  return out;
}

std::string missing_tools() {
  for (const char* tool : {"prometheus", "promtool", "go"})
    if (run_shell(std::string("command -v ") + tool).exit_code != 0)
      return std::string(tool) + " is missing (bash scripts/test-prepare.sh installs it)";
  return "";
}

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!missing_tracing_capability().empty() || !missing_tools().empty()) return;
    dir_ = new TempDir();
    port_ = free_port();
    memlens_ = new Child(Child::spawn(
        {memlens_bin(), "serve", "--listen", "127.0.0.1:" + std::to_string(port_), "--max-processes", "400"},
        dir_->path(), "serve"));
    // Prometheus, scraping memlens every second.
    prom_port_ = free_port();
    std::ofstream(dir_->file("prometheus.yml"))
        << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        << "scrape_configs:\n  - job_name: memlens\n    static_configs:\n      - targets: ['127.0.0.1:"
        << port_ << "']\n";
    prometheus_ = new Child(Child::spawn({"prometheus", "--config.file=" + dir_->file("prometheus.yml"),
                                          "--storage.tsdb.path=" + dir_->file("tsdb"),
                                          "--web.listen-address=127.0.0.1:" + std::to_string(prom_port_)},
                                         dir_->path(), "prometheus"));
    for (auto until = Clock::now() + 30s; Clock::now() < until; std::this_thread::sleep_for(200ms)) {
      auto r = memlens_client().Get("/metrics");
      if (r && r->status == 200 && r->body.find("memlens_build_info") != std::string::npos) break;
    }
    // ... and until Prometheus has scraped it (its first scrape comes a moment after it starts).
    for (auto until = Clock::now() + 30s; Clock::now() < until; std::this_thread::sleep_for(200ms))
      if (prom_value("up{job=\"memlens\"}") == 1.0) break;
  }
  static void TearDownTestSuite() {
    if (prometheus_) prometheus_->signal(SIGTERM), prometheus_->wait(10s);
    if (memlens_) memlens_->signal(SIGINT);
    if (memlens_) serve_exit_ = memlens_->wait(20s);
    delete prometheus_;
    delete memlens_;
    delete dir_;
    prometheus_ = nullptr;
    memlens_ = nullptr;
    dir_ = nullptr;
  }

  void SetUp() override {
    MEMLENS_REQUIRE_TRACING();
    if (std::string why = missing_tools(); !why.empty()) {
      if (in_ci()) FAIL() << "CI=true and " << why;
      GTEST_SKIP() << why;
    }
    ASSERT_TRUE(memlens_ && port_ && prom_port_);
    auto r = memlens_client().Get("/metrics");
    ASSERT_TRUE(r && r->status == 200) << "memlens serve does not answer: " << memlens_->stderr_text();
  }

  static httplib::Client memlens_client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(5, 0);
    c.set_read_timeout(30, 0);
    return c;
  }
  static std::string metrics() {
    auto r = memlens_client().Get("/metrics");
    return r && r->status == 200 ? r->body : "";
  }
  // Prometheus's HTTP API: the result of an instant query.
  static nlohmann::json prom_query(const std::string& q) {
    httplib::Client c("127.0.0.1", prom_port_);
    c.set_read_timeout(10, 0);
    auto r = c.Get("/api/v1/query", httplib::Params{{"query", q}}, httplib::Headers{});
    if (!r || r->status != 200) return nlohmann::json::array();
    return nlohmann::json::parse(r->body)["data"]["result"];
  }
  static std::optional<double> prom_value(const std::string& q) {
    auto res = prom_query(q);
    if (!res.is_array() || res.empty()) return std::nullopt;
    return std::stod(res[0]["value"][1].get<std::string>());
  }

  // A node process holding about 60 MB (JS objects, a Buffer, malloc'd memory); it prints "ready".
  static Child start_holder(const std::string& tag) {
    static const char* kScript =
        "const keep=[];for(let i=0;i<200000;i++)keep.push({i,s:'x'.repeat(64)});"
        "const b=Buffer.alloc(24<<20,1);globalThis.keep=[keep,b];"
        "setInterval(()=>{keep.push({t:Date.now()});if(keep.length>250000)keep.length=200000;},50);"
        "console.log(JSON.stringify({event:'ready',pid:process.pid}));";
    return Child::spawn({node_bin(), "-e", kScript}, dir_->path(), tag);
  }

  static bool wait_for_series(pid_t pid, std::chrono::seconds timeout) {
    for (auto until = Clock::now() + timeout; Clock::now() < until; std::this_thread::sleep_for(250ms))
      if (!samples_of(metrics(), "memlens_process_memory_bytes", {{"pid", std::to_string(pid)}}).empty())
        return true;
    return false;
  }

  static TempDir* dir_;
  static Child* memlens_;
  static Child* prometheus_;
  static int port_, prom_port_;
  static std::optional<int> serve_exit_;
};
TempDir* ServeTest::dir_ = nullptr;
Child* ServeTest::memlens_ = nullptr;
Child* ServeTest::prometheus_ = nullptr;
int ServeTest::port_ = 0;
int ServeTest::prom_port_ = 0;
std::optional<int> ServeTest::serve_exit_;

// The scrape works, its figures are the kernel's, promtool finds nothing to say, profiles open in pprof,
// and the process's series leave within two scrapes of its exit. One live process for all of it.
TEST_F(ServeTest, ScrapedFiguresProfilesAndSeriesOfOneProcess) {
  Child holder = start_holder("holder");
  ASSERT_TRUE(holder.wait_for_event("ready", 20s)) << holder.stderr_text();
  pid_t pid = holder.pid();
  std::string spid = std::to_string(pid);
  ASSERT_TRUE(wait_for_series(pid, 20s)) << "no series of pid " << pid << "\n" << memlens_->stderr_text();

  // Prometheus sees the target up, with no scrape error.
  nlohmann::json target;
  for (auto until = Clock::now() + 30s; Clock::now() < until; std::this_thread::sleep_for(500ms)) {
    httplib::Client c("127.0.0.1", prom_port_);
    auto r = c.Get("/api/v1/targets");
    if (!r || r->status != 200) continue;
    auto t = nlohmann::json::parse(r->body)["data"]["activeTargets"];
    if (t.size() == 1 && t[0]["health"] == "up" &&
        prom_value("memlens_process_resident_memory_bytes{pid=\"" + spid + "\"}")) {
      target = t[0];
      break;
    }
  }
  ASSERT_FALSE(target.is_null()) << "Prometheus never scraped pid " << pid << "'s series";
  EXPECT_EQ(target["health"], "up");
  EXPECT_EQ(target["lastError"], "");

  // RSS as Prometheus stored it, against VmRSS, once VmRSS holds still (within 1%) across the 3 s in which
  // memlens samples it and Prometheus scrapes it: the holder's heap still settles after "ready".
  std::optional<double> scraped;
  uint64_t before = 0, after = 0;
  for (auto until = Clock::now() + 40s; Clock::now() < until;) {
    before = vm_rss_bytes(pid);
    std::this_thread::sleep_for(3s);
    scraped = prom_value("memlens_process_resident_memory_bytes{pid=\"" + spid + "\"}");
    after = vm_rss_bytes(pid);
    if (std::abs(static_cast<double>(after) - static_cast<double>(before)) <=
        0.01 * static_cast<double>(after))
      break;
  }
  ASSERT_TRUE(scraped);
  EXPECT_TRUE(within("scraped RSS vs VmRSS", *scraped, after, 0.05)) << "VmRSS 3 s before: " << before;
  auto categories = prom_value("sum(memlens_process_memory_bytes{pid=\"" + spid + "\"})");
  auto rss_now = prom_value("memlens_process_resident_memory_bytes{pid=\"" + spid + "\"}");
  ASSERT_TRUE(categories && rss_now);
  EXPECT_TRUE(within("categories' sum vs RSS", *categories, *rss_now, 0.02));
  EXPECT_EQ(prom_query("memlens_process_memory_bytes{pid=\"" + spid + "\"}").size(), 8u);

  // promtool on the exposition as served: silence.
  std::string text = metrics();
  std::ofstream(dir_->file("exposition.txt")) << text;
  auto check = run_shell("promtool check metrics < " + shell_quote(dir_->file("exposition.txt")));
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output, "");
  EXPECT_EQ(samples_of(text, "memlens_build_info").size(), 1u);
  EXPECT_FALSE(samples_of(text, "process_cpu_seconds_total").empty());
  EXPECT_FALSE(samples_of(text, "memlens_events_lost_total", {{"cause", "ring_full"}}).empty());
  // The families of a traced Node process, and the OOM kill counter at 0 before any kill (a counter that
  // appeared only at its first kill would hide that kill from increase() in the alert rules).
  for (const char* name :
       {"memlens_process_open_fds", "memlens_process_open_sockets", "memlens_nodejs_heap_committed_bytes",
        "memlens_verdict", "memlens_growth_bytes_per_second"})
    EXPECT_FALSE(samples_of(text, name, {{"pid", spid}}).empty()) << name;
  EXPECT_FALSE(samples_of(text, "memlens_oom_kills_total").empty());

  // Every profile the index lists for it reads in go tool pprof, whole and for the last 5 seconds.
  auto index = memlens_client().Get("/");
  ASSERT_TRUE(index && index->status == 200);
  std::regex link("/debug/pprof/([a-z_]+)\\?pid=" + spid + "\"");
  std::set<std::string> kinds;
  for (std::sregex_iterator it(index->body.begin(), index->body.end(), link), end; it != end; ++it)
    kinds.insert((*it)[1]);
  EXPECT_TRUE(kinds.count("mmap_growth")) << index->body;
  for (const auto& kind : kinds)
    for (std::string query : {"", "&seconds=5"}) {
      std::string url =
          "http://127.0.0.1:" + std::to_string(port_) + "/debug/pprof/" + kind + "?pid=" + spid + query;
      auto r = run_shell("cd " + shell_quote(dir_->path()) + " && HOME=" + shell_quote(dir_->path()) +
                         " GOCACHE=" + shell_quote(dir_->file("gocache")) + " go tool pprof -raw " +
                         shell_quote(url) + " 2>&1");
      EXPECT_EQ(r.exit_code, 0) << url << "\n" << r.output;
      EXPECT_NE(r.output.find("Samples:"), std::string::npos) << url << "\n" << r.output;
    }
  // Reports of the state now, and clear refusals.
  auto json = memlens_client().Get("/report.json?pid=" + spid);
  ASSERT_TRUE(json && json->status == 200);
  auto report = nlohmann::json::parse(json->body);
  ASSERT_TRUE(report_process(report, pid));
  EXPECT_GT((*report_process(report, pid))["timeline"].size(), 0u);
  auto html = memlens_client().Get("/report.html?pid=" + spid);
  ASSERT_TRUE(html && html->status == 200);
  EXPECT_NE(html->body.find("<html"), std::string::npos);
  EXPECT_EQ(memlens_client().Get("/report.json?pid=999999999")->status, 404);
  EXPECT_EQ(memlens_client().Get("/report.json?pid=abc")->status, 400);
  EXPECT_EQ(memlens_client().Get("/debug/pprof/nonsense?pid=" + spid)->status, 404);
  EXPECT_EQ(memlens_client().Get("/debug/pprof/mmap_growth?pid=" + spid + "&seconds=0")->status, 400);

  // Its exit: gone from memlens's exposition at the next sample, and from Prometheus within two scrapes.
  holder.signal(SIGKILL);
  holder.wait(5s);
  auto exited = Clock::now();
  bool gone_here = false, gone_there = false;
  while (Clock::now() < exited + 4s && !(gone_here && gone_there)) {
    gone_here =
        gone_here || samples_of(metrics(), "memlens_process_resident_memory_bytes", {{"pid", spid}}).empty();
    gone_there = gone_there || !prom_value("memlens_process_resident_memory_bytes{pid=\"" + spid + "\"}");
    std::this_thread::sleep_for(100ms);
  }
  // Two scrapes (2 s) after one sample interval (1 s) in which memlens learns of the exit, plus 1 s slack.
  EXPECT_TRUE(gone_here) << "pid " << pid << "'s series still exported 4 s after its exit";
  EXPECT_TRUE(gone_there) << "Prometheus still has pid " << pid << "'s series 4 s after its exit";
}

// A client that connects, asks and never reads does not hold the scrapes of another.
TEST_F(ServeTest, StalledClientDoesNotStopScrapes) {
  Child holder = start_holder("stall-holder");
  ASSERT_TRUE(holder.wait_for_event("ready", 20s));
  ASSERT_TRUE(wait_for_series(holder.pid(), 20s));
  std::vector<int> stalled;
  for (int i = 0; i < 4; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port_));
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    std::string req = "GET /report.html?pid=" + std::to_string(holder.pid()) + " HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
    stalled.push_back(fd);  // never read
  }
  // Another client's scrapes answer in time, and Prometheus's keep coming.
  auto samples_before = prom_value("count_over_time(up{job=\"memlens\"}[1h])");
  for (int i = 0; i < 6; ++i) {
    auto t0 = Clock::now();
    auto r = memlens_client().Get("/metrics");
    ASSERT_TRUE(r && r->status == 200);
    EXPECT_LT(Clock::now() - t0, 1s) << "a scrape took more than a second beside stalled clients";
    std::this_thread::sleep_for(1s);
  }
  auto samples_after = prom_value("count_over_time(up{job=\"memlens\"}[1h])");
  auto up = prom_value("up{job=\"memlens\"}");
  ASSERT_TRUE(samples_before && samples_after && up);
  EXPECT_GE(*samples_after - *samples_before, 4) << "Prometheus's scrapes stalled";
  EXPECT_EQ(*up, 1);
  for (int fd : stalled) close(fd);
}

// Soak: hundreds of short-lived node processes and a few long-lived ones. memlens's memory stays under a
// bound, no dead process keeps series, and every process is either traced or counted as missed.
TEST_F(ServeTest, SoakOfShortLivedProcessesStaysBounded) {
  std::vector<Child> long_lived;
  for (int i = 0; i < 3; ++i) long_lived.push_back(start_holder("soak-long-" + std::to_string(i)));
  for (auto& c : long_lived) ASSERT_TRUE(c.wait_for_event("ready", 20s));
  std::string before = metrics();
  auto counter = [](const std::string& text, const std::string& name,
                    std::map<std::string, std::string> want = {}) {
    double sum = 0;
    for (const auto& [l, v] : samples_of(text, name, want)) sum += v;
    return sum;
  };
  // 200 node processes, 8 at a time, each living a few tens of milliseconds to a second.
  constexpr int kShort = 200;
  auto r = run_shell("for i in $(seq 1 25); do for j in 1 2 3 4 5 6 7 8; do " + shell_quote(node_bin()) +
                     " -e 'const b=Buffer.alloc((1+" +
                     "Math.random()*8|0)<<20,1);setTimeout(()=>{},Math.random()*300|0)' & done; wait; done");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::this_thread::sleep_for(3s);  // two samples: the last exits are seen and dropped
  std::string after = metrics();

  // Every process of the soak was traced or is counted as missed (other node processes of the host may
  // add to both counts, never take from them).
  double traced = counter(after, "memlens_processes_total") - counter(before, "memlens_processes_total");
  double missed = counter(after, "memlens_untraced_processes_total", {{"how", "missed"}}) -
                  counter(before, "memlens_untraced_processes_total", {{"how", "missed"}});
  EXPECT_GE(traced + missed, kShort) << "traced " << traced << ", missed " << missed;
  // No series of a process that is gone: one dead when `after` was read (the host's other node processes
  // come and go too) must be gone from a scrape two sample intervals later.
  std::set<std::string> dead;
  for (const auto& [labels, v] : samples_of(after, "memlens_process_resident_memory_bytes"))
    if (kill(std::stoi(labels.at("pid")), 0) != 0) dead.insert(labels.at("pid"));
  std::this_thread::sleep_for(2500ms);
  std::string later = metrics();
  for (const auto& pid : dead)
    EXPECT_TRUE(samples_of(later, "memlens_process_resident_memory_bytes", {{"pid", pid}}).empty())
        << "pid " << pid << " is gone and still has series";
  EXPECT_LE(counter(after, "memlens_traced_processes"), counter(before, "memlens_traced_processes") + 10);
  // memlens's own memory: what it held before the soak plus a bound that a model of 200 processes kept
  // after their exit would exceed (about 1 MiB each, with their address spaces, stacks and timelines).
  constexpr double kBoundBytes = 64.0 * 1024 * 1024;
  double rss_before = counter(before, "process_resident_memory_bytes");
  double rss_after = vm_rss_bytes(memlens_->pid());
  EXPECT_LT(rss_after, rss_before + kBoundBytes)
      << "memlens grew from " << rss_before / 1048576 << " MiB to " << rss_after / 1048576 << " MiB";
  EXPECT_LT(rss_after, 256.0 * 1024 * 1024);
  std::cout << "soak: " << traced << " processes traced, " << missed << " missed; memlens RSS "
            << rss_before / 1048576 << " MiB before, " << rss_after / 1048576 << " MiB after\n";
  for (auto& c : long_lived) {
    pid_t pid = c.pid();
    EXPECT_FALSE(
        samples_of(after, "memlens_process_resident_memory_bytes", {{"pid", std::to_string(pid)}}).empty())
        << "long-lived pid " << pid << " has no series";
  }
}

// The example alert rules pass their own test.
TEST_F(ServeTest, AlertRulesPassPromtool) {
  auto r = run_shell("cd " + shell_quote(source_dir() + "/docs/alerts") +
                     " && promtool test rules memlens-rules-test.yml");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("SUCCESS"), std::string::npos) << r.output;
}

// Last (gtest runs a file's tests in order): SIGINT stops it cleanly.
TEST_F(ServeTest, StopsCleanlyOnSigint) {
  memlens_->signal(SIGINT);
  auto rc = memlens_->wait(20s);
  ASSERT_TRUE(rc) << "memlens serve did not stop within 20 s of SIGINT";
  EXPECT_EQ(*rc, 0) << memlens_->stderr_text();
  EXPECT_NE(memlens_->stderr_text().find("every probe detached"), std::string::npos)
      << memlens_->stderr_text();
}

}  // namespace
}  // namespace memlens::testing
