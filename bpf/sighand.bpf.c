// Reads another task's disposition of one signal from the kernel (task->sighand->action[signo - 1]):
// /proc says only that a signal is caught, not by which handler. A syscall program run on demand with
// BPF_PROG_TEST_RUN: it looks the task up with bpf_task_from_pid and holds a reference only while reading.
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "memlens/sighand_abi.h"

char LICENSE[] SEC("license") = "GPL";

extern struct task_struct* bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct* p) __ksym;

SEC("syscall")
int read_signal_action(struct ml_sigaction_query* q) {
  q->found = 0;
  struct task_struct* t = bpf_task_from_pid(q->pid);
  if (!t) return 0;
  int idx = q->signo - 1;
  if (idx >= 0 && idx < 64) {
    struct sighand_struct* sh = BPF_CORE_READ(t, sighand);
    if (sh) {
      q->handler = (__u64)BPF_CORE_READ(sh, action[idx].sa.sa_handler);
      q->flags = BPF_CORE_READ(sh, action[idx].sa.sa_flags);
      q->found = 1;
    }
  }
  bpf_task_release(t);
  return 0;
}
