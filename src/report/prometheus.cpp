#include "report/prometheus.h"

#include <fmt/format.h>

#include <cmath>

namespace memlens::report {

std::string prom_escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string prom_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

void PromExposition::family(const std::string& name, std::string_view type, std::string_view help) {
  auto [it, added] = families_.try_emplace(name);
  if (!added) return;
  it->second.type = type;
  // HELP text escapes backslash and line feed.
  for (char c : help)
    it->second.help += c == '\n' ? std::string("\\n") : c == '\\' ? "\\\\" : std::string(1, c);
  order_.push_back(name);
}

void PromExposition::sample(const std::string& name, const MetricLabels& labels, double value,
                            std::string_view suffix) {
  auto it = families_.find(name);
  if (it == families_.end()) return;
  std::string& out = it->second.lines;
  out += name;
  out += suffix;
  if (!labels.empty()) {
    out += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i) out += ',';
      out += labels[i].first;
      out += "=\"";
      out += prom_escape_label_value(labels[i].second);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  out += prom_value(value);
  out += '\n';
}

void PromExposition::histogram(const std::string& name, const MetricLabels& labels,
                               const std::vector<double>& bounds, const std::vector<uint64_t>& cumulative,
                               double sum, uint64_t count) {
  for (size_t i = 0; i < bounds.size() && i < cumulative.size(); ++i) {
    MetricLabels l = labels;
    l.emplace_back("le", prom_value(bounds[i]));
    sample(name, l, static_cast<double>(cumulative[i]), "_bucket");
  }
  MetricLabels inf = labels;
  inf.emplace_back("le", "+Inf");
  sample(name, inf, static_cast<double>(count), "_bucket");
  sample(name, labels, sum, "_sum");
  sample(name, labels, static_cast<double>(count), "_count");
}

std::string PromExposition::text() const {
  std::string out;
  for (const auto& name : order_) {
    const Family& f = families_.at(name);
    if (f.lines.empty()) continue;
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, f.help, name, f.type);
    out += f.lines;
  }
  return out;
}

}  // namespace memlens::report
