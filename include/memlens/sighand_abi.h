// The query the signal-disposition program (bpf/sighand.bpf.c) answers in place: shared by BPF and C++.
#ifndef MEMLENS_SIGHAND_ABI_H
#define MEMLENS_SIGHAND_ABI_H

#ifndef __bpf__
#include <linux/types.h>
#endif

struct ml_sigaction_query {
  __s32 pid;      // in: the task (a pid of the initial pid namespace)
  __s32 signo;    // in: the signal
  __u64 handler;  // out: sa_handler (0 SIG_DFL, 1 SIG_IGN, else an address in the task)
  __u64 flags;    // out: sa_flags
  __u32 found;    // out: 1 when the task was found and read
  __u32 pad;
};

#ifdef __cplusplus
static_assert(sizeof(struct ml_sigaction_query) == 32, "ml_sigaction_query layout");
#else
_Static_assert(sizeof(struct ml_sigaction_query) == 32, "ml_sigaction_query layout");
#endif

#endif
