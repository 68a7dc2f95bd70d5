#!/usr/bin/env bash
# The kernel-side cost of naming JS frames without a perf map (make bench, BENCH_ONLY=jsframes):
# bench/js_frames.sh PATH-TO-MEMLENS
#
# memlens attaches to tests/scenarios/js_named_mmap_leak.js (node started without a perf map: each mmap and
# sampled page fault has JS frames under it) with the JS frame reads on (the default) and off
# (MEMLENS_JS_NAMES=0), alternating, BENCH_JS_ROUNDS (3) times each. With the kernel's BPF statistics on
# (kernel.bpf_stats_enabled, restored after), it reads memlens's programs' run time and run count from
# /proc/PID/fdinfo while they are attached, and prints the time per event of the page-fault program (one
# user stack per sampled fault) and of the uprobe programs (mmap, munmap, ...; those that take a stack and
# those that do not), medians over the rounds, with and without the reads.
set -uo pipefail

die() {
  echo "bench: error: $*" >&2
  exit 1
}
[ $# -eq 1 ] || die "usage: bench/js_frames.sh PATH-TO-MEMLENS"
MEMLENS=$1
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCENARIO=$BENCH_DIR/../tests/scenarios/js_named_mmap_leak.js
ROUNDS=${BENCH_JS_ROUNDS:-3}
[ -r /proc/sys/kernel/bpf_stats_enabled ] || die "no kernel.bpf_stats_enabled: the per-program times cannot be read"

WORK=$(mktemp -d /tmp/memlens-bench-js.XXXXXX) || die "mktemp failed"
old_stats=$(cat /proc/sys/kernel/bpf_stats_enabled)
cleanup() {
  echo "$old_stats" >/proc/sys/kernel/bpf_stats_enabled
  rm -rf "$WORK"
}
trap cleanup EXIT
echo 1 >/proc/sys/kernel/bpf_stats_enabled || die "cannot enable kernel.bpf_stats_enabled (root needed)"

# Sums run_time_ns and run_cnt of the programs of process $1 by type (numeric: 2 kprobe, which uprobes
# are, 7 perf_event), as "type time count" lines.
prog_stats() {
  local pid=$1 fd
  for fd in /proc/"$pid"/fd/*; do
    [ "$(readlink "$fd" 2>/dev/null)" = "anon_inode:bpf-prog" ] || continue
    cat /proc/"$pid"/fdinfo/"${fd##*/}" 2>/dev/null
  done | awk '/^prog_type:/ {t = $2} /^run_time_ns:/ {ns[t] += $2} /^run_cnt:/ {n[t] += $2}
              END {for (t in n) print t, ns[t] + 0, n[t]}'
}

# One attach: prints "faults_ns uprobe_ns" per event.
one_run() {
  local mode=$1 node_out=$WORK/node.out stats=$WORK/stats
  node "$SCENARIO" --duration 60 --period-ms 20 >"$node_out" 2>&1 &
  local node_pid=$!
  for _ in $(seq 100); do grep -q '"event":"ready"' "$node_out" && break; sleep 0.1; done
  local env=()
  [ "$mode" = without ] && env=(MEMLENS_JS_NAMES=0)
  env "${env[@]}" "$MEMLENS" attach "$node_pid" --duration 5 -q --no-fds --fault-sample-period 16 \
    -o "$WORK/out-$mode" >/dev/null 2>"$WORK/memlens.err" &
  local m=$!
  : >"$stats"
  while kill -0 "$m" 2>/dev/null; do
    prog_stats "$m" >>"$stats"
    sleep 0.3
  done
  wait "$m" || die "memlens attach failed: $(cat "$WORK/memlens.err")"
  kill "$node_pid" 2>/dev/null
  wait "$node_pid" 2>/dev/null
  # The last reading of each type (the one with most runs: at teardown the programs close one by one).
  awk '$3 > n[$1] {n[$1] = $3; ns[$1] = $2}
       END {printf "%.0f %.0f\n", n[7] ? ns[7] / n[7] : 0, n[2] ? ns[2] / n[2] : 0}' "$stats"
}

# The median of the non-zero figures (0: the program did not run in that round, e.g. no fault sampled).
median() { printf '%s\n' "$@" | awk '$1 > 0' | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -a with_f with_u without_f without_u
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then modes=(with without); else modes=(without with); fi
  for mode in "${modes[@]}"; do
    read -r f u < <(one_run "$mode")
    if [ "$mode" = with ]; then with_f+=("$f"); with_u+=("$u"); else without_f+=("$f"); without_u+=("$u"); fi
  done
  echo "js frames round $r: page-fault program ${with_f[-1]} / ${without_f[-1]} ns, uprobe programs ${with_u[-1]} / ${without_u[-1]} ns (with / without JS frame reads)"
done
load=$(cut -d' ' -f1 /proc/loadavg)
printf 'JS frame reads, ns per event (median of %d rounds, with / without): page-fault program %s / %s; uprobe programs %s / %s (load average %s)\n' \
  "$ROUNDS" "$(median "${with_f[@]}")" "$(median "${without_f[@]}")" "$(median "${with_u[@]}")" \
  "$(median "${without_u[@]}")" "$load"
