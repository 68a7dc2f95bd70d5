#include "report/fd_section.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "report/folded.h"  // valid_utf8
#include "report/sections.h"

namespace memlens::report {

using nlohmann::json;

namespace {

symbolize::Frame bare_frame(uint64_t address) {
  symbolize::Frame f;
  f.kind = symbolize::FrameKind::kUnknown;
  f.address = address;
  f.function = fmt::format("0x{:x}", address);
  return f;
}

}  // namespace

symbolize::Stack fd_opening_stack(const model::FdTable& table, const model::FdEntry& e,
                                  symbolize::ProcessSymbolizer* sym) {
  auto addrs = model::opening_addresses(table, e);
  if (sym && !addrs.empty()) return sym->symbolize(addrs);
  symbolize::Stack out;
  for (uint64_t a : addrs) out.push_back(bare_frame(a));
  return out;
}

json fd_entry_json(const model::FdTable& table, const model::FdEntry& e, symbolize::ProcessSymbolizer* sym) {
  json j;
  j["fd"] = e.fd;
  j["type"] = std::string(proc::fd_type_name(model::effective_type(e)));
  if (e.socket) {
    j["family"] = e.socket->family;
    j["protocol"] = e.socket->protocol;
    if (!e.socket->local.empty()) j["local"] = e.socket->local;
    if (!e.socket->remote.empty()) j["remote"] = e.socket->remote;
    if (!e.socket->state.empty()) j["state"] = e.socket->state;
  } else if (!e.path.empty()) {
    j["path"] = valid_utf8(e.path);
  }
  if (e.before_tracing)
    j["opened_at"] = nullptr;
  else
    j["opened_at"] = e.opened_at_s;
  j["opened_by"] = e.opened_by;
  j["cloexec"] = e.cloexec;
  // Names resolved at the end of the trace come first: a report (live or of a capture) is written after
  // the process's binaries may have gone.
  json frames = json::array();
  if (auto named = table.stack_labels.find({e.stack_id, e.caller_ip});
      !sym && named != table.stack_labels.end())
    for (const auto& label : named->second) frames.push_back(valid_utf8(label));
  else
    for (const auto& f : fd_opening_stack(table, e, sym)) frames.push_back(valid_utf8(f.label()));
  j["stack"] = frames.empty() ? json(nullptr) : std::move(frames);
  return j;
}

json fd_section(const model::Process& p) {
  const auto& t = p.fds;
  if (t.open_count() == 0 && t.opened_total() == 0 && t.seeded_total() == 0) return nullptr;
  json j;
  j["open"] = t.open_count();
  j["peak"] = t.peak();
  j["opened_total"] = t.opened_total();
  j["closed_total"] = t.closed_total();
  j["totals_lower_bound"] = t.totals_lower_bound;
  j["seeded"] = t.seeded_total();
  j["opened_unseen"] = t.opened_unseen();
  j["closed_unseen"] = t.closed_unseen();
  j["unknown_closes"] = t.unknown_closes();
  j["sockets_open"] = t.sockets_open();
  json by_type = json::object();
  for (const auto& [type, n] : t.by_type()) by_type[type] = n;
  j["by_type"] = std::move(by_type);
  json longest = json::array();
  for (const auto* e : model::longest_open(t, model::kLongestOpenFds))
    longest.push_back(fd_entry_json(t, *e, nullptr));
  j["longest_open"] = std::move(longest);
  return j;
}

}  // namespace memlens::report
