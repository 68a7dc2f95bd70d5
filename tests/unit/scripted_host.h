// A TraceHost for tests: no /proc, no probe. It records what the trace builder asked of it, in order, and
// gives each new process a made-up identity.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "collect/trace_builder.h"

namespace memlens::collect::scripted {

constexpr uint64_t kStart = 1'000'000'000;  // the trace's start, boot clock
constexpr uint64_t kSecond = 1'000'000'000;

class ScriptedHost : public TraceHost {
 public:
  double now = 0;
  std::vector<std::string> calls;
  std::map<pid_t, pid_t> parents;
  bool take_capability_events = true;

  double now_s() const override { return now; }
  void read_new_process(model::Process& p) override {
    calls.push_back("new " + std::to_string(p.pid()));
    p.exe = "/bin/" + std::to_string(p.pid());
  }
  void refresh_identity(model::Process& p) override {
    calls.push_back("identity " + std::to_string(p.pid()));
    p.exe = "/usr/bin/node";
  }
  pid_t parent_of(pid_t pid) override {
    auto it = parents.find(pid);
    return it == parents.end() ? 0 : it->second;
  }
  void seed_address_space(model::Process& p) override { calls.push_back("seed " + std::to_string(p.pid())); }
  void attach_probes(model::Process& p) override { calls.push_back("attach " + std::to_string(p.pid())); }
  void exec_probes(model::Process& p, double) override { calls.push_back("exec " + std::to_string(p.pid())); }
  void finish_hold(model::Process& p, const ProcEvent&, double) override {
    calls.push_back("release " + std::to_string(p.pid()));
  }
  void image_loaded(model::Process& p) override { calls.push_back("loaded " + std::to_string(p.pid())); }
  void exited(model::Process& p, int wait_status, double t_s) override {
    calls.push_back("exited " + std::to_string(p.pid()));
    p.exit_status = decode_wait_status(wait_status);
    p.exited_at_s = t_s;
  }
  bool capability_event(model::Process& p, const Event&) override {
    calls.push_back("capability " + std::to_string(p.pid()));
    return take_capability_events;
  }
};

}  // namespace memlens::collect::scripted
