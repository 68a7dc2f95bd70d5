// Loss accounting, in one vocabulary for every output (report.json's "loss", the summary, the live line,
// the HTML page): two different things, never added together.
//  - Events lost, by cause: an event that happened in a traced process and that memlens did not count.
//  - Untraced processes: processes of the traced tree that ran (part of their life) without their probes
//    (they escaped the hold, or an attach failed), each with how long and why. What such a process did in
//    that time was never an event: it is not in the first figure.
// Stacks that could not be recorded are a third figure (the event was counted; its stack is missing).
// A host-wide trace adds a fourth: Node processes it saw start and never traced (they ended before memlens
// could attach), each listed with why (model::MissedProcess in trace.h, report.json's discovery.missed).
#pragma once

#include <array>
#include <cstdint>
#include <set>
#include <string>
#include <utility>

namespace memlens::model {

// Events lost, by cause. Names are the report's keys (docs/report-schema.md).
struct EventLoss {
  uint64_t ring_full = 0;  // "ring_full": the kernel found the ring buffer full (memlens drained too late)
  uint64_t map_full = 0;   // "map_full": a kernel map had no room for what the event needed
  uint64_t malformed = 0;  // "malformed": an event too short, or of a type no one reads
  uint64_t unknown_process = 0;  // "unknown_process": an event of a process memlens does not know
  uint64_t unpaired = 0;         // "unpaired": a GC end whose start was not seen

  uint64_t total() const { return ring_full + map_full + malformed + unknown_process + unpaired; }
  EventLoss& operator+=(const EventLoss& o) {
    ring_full += o.ring_full;
    map_full += o.map_full;
    malformed += o.malformed;
    unknown_process += o.unknown_process;
    unpaired += o.unpaired;
    return *this;
  }
  // (name, count) of every cause, in the report's order.
  std::array<std::pair<const char*, uint64_t>, 5> by_cause() const {
    return {{{"ring_full", ring_full},
             {"map_full", map_full},
             {"malformed", malformed},
             {"unknown_process", unknown_process},
             {"unpaired", unpaired}}};
  }
};

// When and why a process ran without (some of) its probes. Several capabilities can be missing at once
// (the address-space probes, the fd probes): the time counted is the time at least one was missing.
class UntracedTime {
 public:
  // From now_s on, `what` is not traced, because of `reason`.
  void begin(const std::string& what, double now_s, const std::string& reason);
  // `what` is traced again from now_s.
  void end(const std::string& what, double now_s);
  void end_all(double now_s);
  // A closed stretch of d seconds in the past (a process that ran before its probes were attached).
  void add(double d_s, const std::string& reason);

  bool any() const { return !reasons_.empty(); }
  double seconds(double now_s) const;  // so far, counting an open stretch up to now_s
  std::string reason() const;          // the reasons, "; "-separated

 private:
  std::set<std::string> open_;
  double open_since_s_ = 0;
  double closed_s_ = 0;
  std::set<std::string> reasons_;
  std::string reason_order_;  // reasons in the order they came
};

}  // namespace memlens::model
