// The Prometheus text exposition format 0.0.4 (what /metrics of `memlens serve` answers): metric families,
// each with one HELP and one TYPE line, then its samples. Label values are escaped as the format requires
// (backslash, double quote, line feed), so a command line can never break a line of the exposition.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace memlens::report {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class PromExposition {
 public:
  // Declares a family (type: "gauge", "counter", "histogram"); samples of an undeclared family are refused.
  void family(const std::string& name, std::string_view type, std::string_view help);
  // One sample of family `name`; suffix is "_bucket", "_sum" or "_count" for a histogram's series.
  void sample(const std::string& name, const MetricLabels& labels, double value,
              std::string_view suffix = {});
  // A histogram's series from its cumulative bucket counts (one per upper bound, +Inf added), sum and count.
  void histogram(const std::string& name, const MetricLabels& labels, const std::vector<double>& bounds,
                 const std::vector<uint64_t>& cumulative, double sum, uint64_t count);
  // The whole exposition; families without samples are left out.
  std::string text() const;

 private:
  struct Family {
    std::string help, type;
    std::string lines;
  };
  std::vector<std::string> order_;
  std::map<std::string, Family> families_;
};

// "a\"b" for a"b; backslash and line feed escaped too.
std::string prom_escape_label_value(std::string_view v);
// A sample value: integers without a fraction, +Inf/-Inf/NaN as the format spells them.
std::string prom_value(double v);

// Content-Type of the exposition.
inline constexpr char kPromContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace memlens::report
