// V8 inside node (v8.bpf.h): GC and heap figures, ArrayBuffer backing stores; uprobes and USDT probes
// attached per traced node process. Loaded only when V8 is traced (not with --no-v8); its shared maps are
// the core object's (tracked.bpf.h), handed over by userspace before load. `memlens top` loads the GC
// programs alone (v8_gc.bpf.c).
#include "common.bpf.h"
#include "tracked.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#include "v8.bpf.h"
