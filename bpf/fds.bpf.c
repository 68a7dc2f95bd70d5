// File descriptors (fd.bpf.h): uprobes on the C library's fd calls, attached per tracked process, and the
// exit program that snapshots a watched process's fd table. Loaded only when fds are traced (not with
// --no-fds); its shared maps are the core object's (tracked.bpf.h), handed over by userspace before load.
#include "common.bpf.h"
#include "tracked.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#include "fd.bpf.h"
