#include "report/fd_section.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "report/folded.h"  // valid_utf8
#include "report/sections.h"

namespace memlens::report {

using nlohmann::json;

namespace {

std::unique_ptr<symbolize::ProcessSymbolizer> symbolizer_for(const model::Process& p) {
  if (!p.alive()) return nullptr;
  auto s = symbolize::ProcessSymbolizer::create(p.pid());
  if (!s) return nullptr;
  return std::move(*s);
}

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
  if (e.stack_id < 0) return {};
  auto it = table.stacks.find(e.stack_id);
  if (it == table.stacks.end() || it->second.empty()) return {};
  // The first address is where the probe fired (the C library function's entry); the others are return
  // addresses, named by the call before them.
  std::vector<uint64_t> addrs = it->second;
  // A frame-pointer walk from a function's first instruction misses its caller unless the kernel adds
  // it: the return address read at entry fills the gap.
  if (e.caller_ip != 0 && (addrs.size() < 2 || addrs[1] != e.caller_ip))
    addrs.insert(addrs.begin() + 1, e.caller_ip);
  for (size_t i = 1; i < addrs.size(); ++i) addrs[i] -= 1;
  if (sym) return sym->symbolize(addrs);
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
  auto stack = fd_opening_stack(table, e, sym);
  if (stack.empty()) {
    j["stack"] = nullptr;
  } else {
    json frames = json::array();
    for (const auto& f : stack) frames.push_back(valid_utf8(f.label()));
    j["stack"] = std::move(frames);
  }
  return j;
}

std::vector<const model::FdEntry*> longest_open(const model::FdTable& table, size_t n) {
  std::vector<const model::FdEntry*> all;
  for (const auto& [fd, e] : table.entries()) all.push_back(&e);
  auto key = [](const model::FdEntry* e) {
    return std::make_tuple(!e->before_tracing, e->opened_at_s, e->fd);
  };
  size_t k = std::min(n, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<long>(k), all.end(),
                    [&](const auto* a, const auto* b) { return key(a) < key(b); });
  all.resize(k);
  return all;
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
  auto sym = symbolizer_for(p);
  json longest = json::array();
  for (const auto* e : longest_open(t, kLongestOpenFds)) longest.push_back(fd_entry_json(t, *e, sym.get()));
  j["longest_open"] = std::move(longest);
  return j;
}

}  // namespace memlens::report
