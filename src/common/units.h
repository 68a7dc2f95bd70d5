// Bytes as people read them, one convention for the whole product (terminal, report.json's sentences,
// the HTML report, verdicts): binary multiples with their IEC names, 1 KiB = 1024 bytes, 1 MiB = 2^20.
// These are the figures Node users compare with: V8's --trace-gc and --max-old-space-size count in 2^20
// bytes, and process.memoryUsage() divided by 1024 twice is what most Node code prints. The IEC names
// say so without ambiguity (docs/architecture.md, "Units"). The HTML page's script, which cannot call
// this, writes bytes in the same units (fmtBytes in src/report/html/report.js, with three significant
// digits for chart figures).
#pragma once

#include <string>

namespace memlens {

// "512 B", "48.9 MiB", "-1.5 KiB": whole bytes below 1 KiB, else one decimal, up to TiB.
std::string format_bytes(double bytes);
// The same with an explicit sign: "+1.2 MiB", "-3 B", "+0 B".
std::string format_signed_bytes(double bytes);

}  // namespace memlens
