#!/usr/bin/env bash
# End-to-end overhead benchmark of memlens (make bench): bench/run.sh PATH-TO-MEMLENS
#
# From one run of rounds (in each round the HTTP servers run traced and untraced at the same time, sharing
# one CPU; the scripts run untraced and traced back to back, untraced first in odd rounds and traced first
# in even rounds, so that slow drift of the machine cancels out), it measures:
#   - HTTP: requests/s of bench/http_server.js under wrk on 127.0.0.1 (traced/untraced), keep-alive
#     (target >= 0.99), and again with a new connection per request (Connection: close: accept and close, which
#     are then as hot as they get: target >= 0.97), and beside it the floor under that figure: an
#     untraced server with bare uprobes (no program) where memlens reads accept (bench/bare_uprobe.cpp);
#   - alloc-heavy: run time of bench/alloc_heavy.js (untraced/traced, target >= 0.97), and traced with
#     --js-objects=sampling (V8's sampling heap profiler through the inspector) as well (target >= 0.90);
#   - Buffer-heavy: run time of bench/buffer_heavy.js (untraced/traced, target >= 0.90);
#   - memlens's own CPU seconds and peak RSS (VmHWM) in every traced run (target <= 64 MB);
#   - events lost: report.json's loss.events_lost (target 0), and untraced processes (loss.untraced_processes,
#     target 0): two figures, never added together (docs/report-schema.md).
# Each figure is the median of the per-round ratios (traced vs untraced of the same round). Run times are the workload's own (measured inside node from
# its first to its last allocation), so memlens's start-up and report writing do not count against the
# workload; memlens's wall time per run is printed separately.
#
#   - page faults (tests/programs/fault_loop.c, one fault per touched page, pinned to the server CPU):
#     the bystander's time per fault while memlens traces an idle node process, against without memlens
#     (untraced/bystander speed, target >= 0.99; several pairs a round, the loop started once memlens's
#     start-up is over), and the traced loop's time per fault against an untraced loop run at the same
#     time on the same CPU (target <= 1.02, default settings; several pairs a round, both loops started
#     once memlens's start-up is over);
#   - the unwinder's cost (unwind): the fault loop with every fault sampled with its user stack, walked by
#     frame pointers only and with the unwind tables (per-fault time side by side, no target);
#   - memlens against bpftrace on alloc-heavy: a bpftrace script doing the same job (user page faults,
#     mmap and brk entries, each with its user stack) run the same rounds; memlens's overhead (traced /
#     untraced - 1) over bpftrace's, target <= 0.25 (bpftrace is installed from Debian when missing, and
#     tracefs mounted at /sys/kernel/tracing);
#   - the same comparison and the alloc-heavy row again, accounted rather than timed (one memlens and one
#     bpftrace run a round, kernel.bpf_stats_enabled on only then): each tracer's own CPU time, its BPF
#     programs' run time and its uprobe traps (each program's runs times the cost of a hit at its sites:
#     bench/uprobe_sites.c finds them, bench/uprobe_trap.c measures each kind) over the workload's timed
#     span; same targets (work memlens/bpftrace <= 0.25; 1 - memlens's work / the
#     traced run time >= 0.97);
#   - memlens's own CPU seconds per traced second and peak RSS (VmHWM) in every traced run.
#
# Exit status: 0 when every measurement ran and met its target; 2 when a target is missed (the figures
# are printed, the missed ones marked MISSED and repeated on stderr); 1 with a message on stderr when
# something failed to run.
#
#   - JS frame reads (bench/js_frames.sh): the kernel's time per event of the page-fault and uprobe
#     programs with and without reading JS frames for naming them from V8's metadata (no target: shown).
#
#   - heap snapshots (run once per heap, not in rounds: a snapshot of a heap of millions of objects takes
#     minutes): node holding a heap of plain objects (bench/snapshot_heap.js), for each of BENCH_SNAPSHOT_HEAPS
#     (MB:RECORD_BYTES, default "100:0 500:256": 100 MB of objects of one number, the worst case, and 500
#     MB of records that each hold their own string of 256 characters, as a cache does), memlens attached
#     with --js-objects for 10 s (a baseline snapshot 5 s after the inspector opens, one at the trace's end,
#     diffed against it); per snapshot V8's pause and memlens's own peak RSS over its RSS just before
#     (reading the snapshot, then summarizing or diffing it) against V8's heap used (target < 1: memlens's
#     memory for a snapshot stays below the target's heap); a heap is skipped, saying so, when the host
#     lacks what V8 itself needs to write its snapshot (about 1.6 KB per object measured here).
#
# Settings (environment): BENCH_ONLY (a comma-separated subset of faults,http,scripts,unwind,jsframes,
# snapshots; all by default),
# BENCH_FAULT_PAGES (16384) and BENCH_FAULT_ROUNDS (30): the fault loop's size,
# BENCH_ROUNDS (5), BENCH_HTTP_KEEPALIVE_PAIRS (5: keep-alive pairs a round), BENCH_HTTP_CLOSE_PAIRS (3:
# connection-per-request pairs a round), BENCH_BYSTANDER_PAIRS (3: bystander
# pairs a round), BENCH_FAULT_PAIRS (3: traced fault loop pairs a round), BENCH_ALLOC_SETS (3:
# alloc-heavy sets a round, each untraced, traced, bpftrace and --js-objects), BENCH_WRK_DURATION (5,
# seconds), BENCH_WRK_CONNECTIONS (32),
# BENCH_SERVER_CPU (0) and BENCH_WRK_CPU (1): CPUs that the server (and memlens) and wrk are pinned to
# with taskset when it exists and the machine has at least 2 CPUs; BENCH_KEEP=1 keeps the work directory.
set -uo pipefail

die() {
  echo "bench: error: $*" >&2
  exit 1
}

[ $# -eq 1 ] || die "usage: bench/run.sh PATH-TO-MEMLENS"
MEMLENS=$1
[ -x "$MEMLENS" ] || die "memlens binary not found or not executable: $MEMLENS (run make first)"
MEMLENS=$(cd "$(dirname "$MEMLENS")" && pwd)/$(basename "$MEMLENS")
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

command -v node >/dev/null || die "node not found in PATH"
command -v wrk >/dev/null || die "wrk not found (Debian package wrk; scripts/install-deps.sh installs it)"
command -v perl >/dev/null || die "perl not found"

ROUNDS=${BENCH_ROUNDS:-5}
HTTP_KEEPALIVE_PAIRS=${BENCH_HTTP_KEEPALIVE_PAIRS:-5}
HTTP_CLOSE_PAIRS=${BENCH_HTTP_CLOSE_PAIRS:-3}
ALLOC_SETS=${BENCH_ALLOC_SETS:-3}
WRK_DURATION=${BENCH_WRK_DURATION:-5}
WRK_CONNECTIONS=${BENCH_WRK_CONNECTIONS:-32}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
WRK_CPU=${BENCH_WRK_CPU:-1}

PIN_SERVER=()
PIN_WRK=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_SERVER=(taskset -c "$SERVER_CPU")
  PIN_WRK=(taskset -c "$WRK_CPU")
fi

WORK=$(mktemp -d /tmp/memlens-bench.XXXXXX) || die "mktemp failed"
cleanup() {
  [ -n "${OLD_BPF_STATS:-}" ] && echo "$OLD_BPF_STATS" >/proc/sys/kernel/bpf_stats_enabled
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs a command as a child of perl, samples the child's VmHWM every 20 ms while it runs, and reads its
# CPU time (utime + stime) once it has exited but before it is reaped (a zombie still has its times).
# Only the child's own figures: GNU time would report the traced node too, because memlens waits for it.
# Writes "cpu_s=.. peak_rss_kb=.. wall_s=.. rc=.." to the file given as first argument; exits with the
# child's status.
MEASURE_PL='
use strict; use warnings; use POSIX ();
use Time::HiRes qw(time sleep);
my $out = shift @ARGV;
my $t0 = time;
my $pid = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0) {
  { no warnings "exec"; exec { $ARGV[0] } @ARGV; }
  print STDERR "bench: cannot run $ARGV[0]: $!\n";
  POSIX::_exit(127);
}
$SIG{TERM} = $SIG{INT} = sub { kill "TERM", $pid; };
my $tck = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
my ($hwm, $cpu) = (0, 0);
# With MEASURE_SERIES=FILE, every 100 ms: "time cpu_s bpf_run_ns bpf_runs uprobe_runs ID:RUNS,..." of the
# child: its CPU time in nanoseconds summed over its threads (/proc/PID/task/TID/schedstat: the clock ticks
# of /proc/PID/stat are 10 ms, too coarse here), its BPF programs summed from /proc/PID/fdinfo (run time
# and count need kernel.bpf_stats_enabled; uprobe programs are of type 2, kprobe), and the runs of each
# uprobe program by its id. With MEASURE_SITES=FILE too, every second: where those programs are attached
# (the output of the command in MEASURE_SITES_TOOL, bench/uprobe_sites.c, appended).
my ($series, $iter, $samples) = (undef, 0, 0);
if ($ENV{MEASURE_SERIES}) { open $series, ">", $ENV{MEASURE_SERIES} or die "$ENV{MEASURE_SERIES}: $!"; }
sub bpf_sample {
  my ($ns, $runs, $uprobe_runs, $on_cpu, %per_prog, %seen) = (0, 0, 0, 0);
  if ($ENV{MEASURE_SITES} && $samples++ % 10 == 5) {
    # No shell: every process started here runs mmap and brk of the C library, which a tracer whose
    # uprobes fire host-wide (bpftrace) pays for. The tool is linked statically for the same reason.
    my $k = fork();
    if (defined $k && $k == 0) {
      open STDOUT, ">>", $ENV{MEASURE_SITES} or POSIX::_exit(1);
      open STDERR, ">>", "$ENV{MEASURE_SITES}.err" or POSIX::_exit(1);
      exec { $ENV{MEASURE_SITES_TOOL} } $ENV{MEASURE_SITES_TOOL}, $pid;
      POSIX::_exit(127);
    }
    waitpid($k, 0) if defined $k;
  }
  if (opendir my $t, "/proc/$pid/task") {
    for my $tid (readdir $t) {
      next unless $tid =~ /^\d+$/;
      open my $f, "<", "/proc/$pid/task/$tid/schedstat" or next;
      my $line = <$f>;
      close $f;
      $on_cpu += (split " ", $line)[0] if defined $line;
    }
    closedir $t;
  }
  if (opendir my $d, "/proc/$pid/fd") {
    for my $fd (readdir $d) {
      next unless $fd =~ /^\d+$/;
      my $l = readlink "/proc/$pid/fd/$fd";
      next unless defined $l && $l eq "anon_inode:bpf-prog";
      open my $fi, "<", "/proc/$pid/fdinfo/$fd" or next;
      my ($type, $t, $c, $id) = (0, 0, 0, 0);
      while (<$fi>) {
        $type = $1 if /^prog_type:\s+(\d+)/;
        $t = $1 if /^run_time_ns:\s+(\d+)/;
        $c = $1 if /^run_cnt:\s+(\d+)/;
        $id = $1 if /^prog_id:\s+(\d+)/;
      }
      close $fi;
      next if $id && $seen{$id}++;  # a program held by two fds counts once
      $ns += $t; $runs += $c;
      if ($type == 2) { $uprobe_runs += $c; $per_prog{$id} = $c; }
    }
    closedir $d;
  }
  printf $series "%.3f %.6f %d %d %d %s\n", time, $on_cpu / 1e9, $ns, $runs, $uprobe_runs,
    %per_prog ? join(",", map { "$_:$per_prog{$_}" } sort keys %per_prog) : "-";
}
while (1) {
  my $state = "?";
  if (open my $f, "<", "/proc/$pid/stat") {
    my $s = <$f>; close $f;
    if (defined $s) {
      $s =~ s/^.*\)\s+//s;
      my @x = split " ", $s;
      $state = $x[0];
      $cpu = ($x[11] + $x[12]) / $tck;   # fields 14 and 15: utime, stime
    }
  }
  last if $state eq "Z" || $state eq "X" || $state eq "?";
  bpf_sample() if $series && $iter++ % 5 == 0;
  if (open my $f, "<", "/proc/$pid/status") {
    while (<$f>) { $hwm = $1 if /^VmHWM:\s+(\d+)/ && $1 > $hwm; }
    close $f;
  }
  sleep 0.02;
}
close $series if $series;
waitpid($pid, 0);
my $st = $?;
my $rc = ($st & 127) ? 128 + ($st & 127) : ($st >> 8);
open my $o, ">", $out or die "$out: $!";
printf $o "cpu_s=%.3f peak_rss_kb=%d wall_s=%.3f rc=%d\n", $cpu, $hwm, time - $t0, $rc;
close $o;
exit $rc;
'

measured() { # measured STATSFILE CMD... : runs CMD under the sampler above
  perl -e "$MEASURE_PL" "$@"
}

stat_field() { # stat_field FILE NAME
  sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" "$1"
}

json_field() { # json_field FILE FIELD
  node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(d[process.argv[2]]);' "$1" "$2"
}

# report.json's events lost and untraced processes, as "EVENTS UNTRACED" ("missing" without them).
loss_sum() {
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const l = r.loss;
    if (!l || typeof l.events_lost !== "number") { console.log("missing"); process.exit(0); }
    console.log(l.events_lost + " " + (typeof l.untraced_processes === "number" ? l.untraced_processes : 0));' "$1"
}

median() { # median NUMBERS...
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "nan" }'; }

verdict() { # verdict VALUE OP TARGET
  awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    if (v == "nan" || v == "") { print "n/a"; exit }
    ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0)
    print ok ? "ok" : "MISSED" }'
}

# Checks what a traced run left behind; its figures are collected from the files at the end.
check_traced() { # check_traced NAME OUTDIR STATSFILE
  local rc
  rc=$(stat_field "$3" rc)
  [ -f "$2/report.json" ] || die "$1: memlens wrote no $2/report.json (exit status $rc; see $2.log)"
}

wait_for_file() { # wait_for_file FILE PID SECONDS: until FILE exists, PID dies, or time runs out
  local i
  for ((i = 0; i < $3 * 20; i++)); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# --- HTTP throughput -------------------------------------------------------------------------------
# The traced and the untraced server run at the same time, both pinned to the server CPU, each under its
# own wrk (both pinned to the wrk CPU). Sharing the CPU every moment, the ratio of their throughputs is
# the ratio of their costs per request, free of the drift between runs made one after the other (here
# the same untraced connection-per-request run gives 6,300 to 9,800 req/s from one run to the next; two
# untraced servers measured at once stay within 1-3% of each other). memlens shares that CPU too: the
# scheduler takes its (small, see the CPU figures) time from both servers alike.
start_http_server() { # start_http_server MODE READY OUT STATS: starts it in the background
  if [ "$1" = traced ]; then
    measured "$4" "${PIN_SERVER[@]}" "$MEMLENS" run -q -o "$3" -- \
      node "$BENCH_DIR/http_server.js" --ready-file "$2" >"$3.log" 2>&1 &
  else
    "${PIN_SERVER[@]}" node "$BENCH_DIR/http_server.js" --ready-file "$2" >"$3.log" 2>&1 &
  fi
}

# The floor: an untraced server with bare uprobes (no BPF program, only the kernel's counting) where
# memlens reads accept and accept4 (bench/bare_uprobe.cpp). What it loses against the untraced one is what
# the kernel's breakpoint trap alone costs a connection on this machine.
BARE_UPROBE=$(dirname "$MEMLENS")/bench/bare_uprobe
[ -x "$BARE_UPROBE" ] || BARE_UPROBE=""

http_pair_round() { # http_pair_round ROUND NAME MODE [WRK-ARGS...] -> prints "MODE_RPS UNTRACED_RPS"
  local r=$1 name=$2 first=$3
  shift 3
  local -a wrk_args=("$@")
  local mode bare_pid=""
  local -A launcher port node_pid out rps
  local -a modes=("$first" untraced)
  for mode in "${modes[@]}"; do
    out[$mode]="$WORK/$name-$mode-$r"
    rm -f "${out[$mode]}.ready"
    start_http_server "$mode" "${out[$mode]}.ready" "${out[$mode]}" "${out[$mode]}.stats"
    launcher[$mode]=$!
  done
  for mode in "${modes[@]}"; do
    wait_for_file "${out[$mode]}.ready" "${launcher[$mode]}" 60 || {
      kill "${launcher[$first]}" "${launcher[untraced]}" 2>/dev/null
      cat "${out[$mode]}.log" >&2
      die "HTTP $name $mode round $r: the server did not start (log above)"
    }
    node_pid[$mode]=$(json_field "${out[$mode]}.ready" pid)
    port[$mode]=$(json_field "${out[$mode]}.ready" port)
  done
  if [ "$first" = bare ]; then
    "$BARE_UPROBE" "${node_pid[bare]}" >"${out[bare]}.probe" 2>&1 &
    bare_pid=$!
    wait_for_file "${out[bare]}.probe" "$bare_pid" 10 && grep -q '^attached' "${out[bare]}.probe" || {
      kill "${node_pid[bare]}" "${node_pid[untraced]}" 2>/dev/null
      die "HTTP $name round $r: bare_uprobe failed: $(cat "${out[bare]}.probe")"
    }
  fi
  # Warm-up (JIT, connection set-up), then the measured runs, both at once.
  local -a warmups=()
  for mode in "${modes[@]}"; do
    "${PIN_WRK[@]}" wrk -t1 -c"$WRK_CONNECTIONS" -d1s "${wrk_args[@]}" "http://127.0.0.1:${port[$mode]}/" \
      >/dev/null 2>&1 &
    warmups+=($!)
  done
  wait "${warmups[@]}"
  for mode in "${modes[@]}"; do
    "${PIN_WRK[@]}" wrk -t1 -c"$WRK_CONNECTIONS" -d"${WRK_DURATION}s" "${wrk_args[@]}" \
      "http://127.0.0.1:${port[$mode]}/" >"${out[$mode]}.wrk" 2>&1 &
    rps[$mode]=$!
  done
  wait "${rps[$first]}" "${rps[untraced]}"
  if [ -n "$bare_pid" ]; then
    kill -INT "$bare_pid"
    wait "$bare_pid" || die "HTTP $name round $r: bare_uprobe failed: $(cat "${out[bare]}.probe")"
    grep -Eq '^hits [1-9]' "${out[bare]}.probe" ||
      die "HTTP $name round $r: the bare uprobes were not hit: $(cat "${out[bare]}.probe")"
  fi
  for mode in "${modes[@]}"; do
    rps[$mode]=$(awk '/^Requests\/sec:/ {print $2}' "${out[$mode]}.wrk")
    kill -TERM "${node_pid[$mode]}" 2>/dev/null
  done
  for mode in "${modes[@]}"; do
    wait "${launcher[$mode]}"
    local rc=$?
    [ -n "${rps[$mode]}" ] || die "HTTP $name $mode round $r: wrk printed no Requests/sec"
    [ "$rc" -eq 0 ] || die "HTTP $name $mode round $r: the server (or memlens) exited with status $rc (see ${out[$mode]}.log)"
  done
  [ "$first" = traced ] && check_traced "$name" "${out[traced]}" "${out[traced]}.stats"
  echo "${rps[$first]} ${rps[untraced]}"
}

# --- run-time workloads ----------------------------------------------------------------------------
script_round() { # script_round NAME MODE ROUND -> prints the workload's elapsed seconds
  local name=$1 mode=$2 r=$3 out="$WORK/$1-$2-$3" stats="$WORK/$1-$2-$3.stats" result="$WORK/$1-$2-$3.result"
  local rc
  rm -f "$result"
  if [ "$mode" = traced ] || [ "$mode" = jsobjects ]; then
    local extra=()
    # jsobjects: traced with V8's sampling heap profiler on as well (--js-objects=sampling).
    [ "$mode" = jsobjects ] && extra=(--js-objects=sampling)
    measured "$stats" "${PIN_SERVER[@]}" "$MEMLENS" run -q -o "$out" "${extra[@]}" -- \
      node "$BENCH_DIR/$name.js" --result-file "$result" >"$out.log" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || die "$name traced round $r: memlens exited with status $rc (see $out.log)"
    check_traced "$name" "$out" "$stats"
  elif [ "$mode" = bpftrace ]; then
    "${PIN_SERVER[@]}" bpftrace -e "$BPFTRACE_SCRIPT" \
      -c "$(command -v node) $BENCH_DIR/$name.js --result-file $result" >"$out.log" 2>&1 ||
      die "$name bpftrace round $r failed: $(tail -5 "$out.log")"
  else
    "${PIN_SERVER[@]}" node "$BENCH_DIR/$name.js" --result-file "$result" >"$out.log" 2>&1 ||
      die "$name untraced round $r failed: $(cat "$out.log")"
  fi
  [ -s "$result" ] || die "$name $mode round $r: no result (see $out.log)"
  json_field "$result" elapsed_s
}

# --- page faults ----------------------------------------------------------------------------------
# The fault loop, built here from the test program's source.
FAULT_LOOP="$WORK/fault_loop"
FAULT_PAGES=${BENCH_FAULT_PAGES:-16384}
FAULT_ROUNDS=${BENCH_FAULT_ROUNDS:-30}

fault_ns() { # fault_ns LOG [PREFIX...]: CPU ns (user + system) per fault of one fault loop run
  local log=$1
  shift
  "$@" "$FAULT_LOOP" "$FAULT_PAGES" "$FAULT_ROUNDS" >"$log" 2>&1 || die "fault loop failed: $(tail -3 "$log")"
  fault_figure "$log"
}

fault_figures() { # fault_figures LOG: the CPU ns per fault of every block a fault loop printed in LOG
  sed -n 's/.*"cpu_ns_per_fault":\([0-9.]*\).*/\1/p' "$1"
}

fault_figure() { # fault_figure LOG: the CPU ns per fault a fault loop printed last in LOG
  local ns
  ns=$(fault_figures "$1" | tail -1)
  [ -n "$ns" ] || die "fault loop printed no figure (see $1)"
  echo "$ns"
}

# The bystander: while memlens traces an idle node process (memlens and node on the wrk CPU, so that only
# what the kernel makes other processes pay is measured), the fault loop runs untraced on the server CPU.
# One loop's CPU time per fault varies by up to 30% from one run to the next on a virtual machine, and by
# about 5% from one block of rounds to the next within one process, drifting over seconds: so one loop
# process a round runs 2 x BYSTANDER_PAIRS + 1 gated blocks, alternately without memlens and with one
# (its own memlens, started before the block and stopped after), beginning and ending without. Each block
# with memlens is weighed against the mean of the blocks without it just before and after it: a drift
# that is linear over the three cancels out.
BYSTANDER_PAIRS=${BENCH_BYSTANDER_PAIRS:-3}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null; }

# wait_started PID: waits until memlens's start-up is over (its CPU time rose by at most one tick in the
# last half second; 20 s at most), so that the loop measures what tracing costs, not memlens starting on
# the other CPU. Prints the seconds waited.
wait_started() {
  local pid=$1 before after halves=0
  sleep 3 # loaded, attached, node started
  before=$(cpu_ticks "$pid")
  while [ -n "$before" ] && [ "$halves" -lt 34 ]; do
    sleep 0.5
    after=$(cpu_ticks "$pid")
    halves=$((halves + 1))
    [ -n "$after" ] && [ $((after - before)) -le 1 ] && break
    before=$after
  done
  awk -v h="$halves" 'BEGIN { printf "%.1f\n", 3 + h / 2 }'
}

# Gated fault loops: the loop of gated_command reads one byte from the gate (a fifo) before each block
# of rounds. The bench holds the gate open for writing on fd 9 (open_gate), which no process it starts
# inherits ("9>&-"): when the bench exits, however, the loops read end-of-file and exit, and so does a
# memlens waiting for one.
open_gate() { # open_gate FIFO
  mkfifo "$1" || die "cannot make $1"
  exec 9<>"$1"
}
# A command with its quoting cannot be printed and read back: gated_command sets the array GATED instead.
gated_command() { # gated_command FIFO [BLOCKS]: GATED = the command of the fault loop, gated (run it with 9>&-)
  GATED=("${PIN_SERVER[@]}" sh -c 'exec "$0" "$1" "$2" 3 "$4" 3<"$3"' "$FAULT_LOOP" "$FAULT_PAGES" "$FAULT_ROUNDS"
    "$1" "${2:-1}")
}
wait_ready() { # wait_ready LOG PID: until the loop writing LOG says ready (it waits at its gate) or PID dies
  until grep -q '^ready' "$1" 2>/dev/null; do
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
}
# stop_jobs: stops the background jobs of the calling (sub)shell and the processes memlens traces for them.
stop_jobs() {
  local j
  for j in $(jobs -p); do
    pkill -TERM -P "$j" 2>/dev/null
    kill -TERM "$j" 2>/dev/null
  done
}

bystander_round() { # bystander_round ROUND -> prints "WITH_NS WITHOUT_NS" for each pair, one per line
  local r=$1 k mode pid loop_pid blocks=0 gate="$WORK/bystander-$r.gate" log="$WORK/bystander-$r.loop"
  local -a figures=()
  open_gate "$gate"
  gated_command "$gate" $((2 * BYSTANDER_PAIRS + 1))
  "${GATED[@]}" >"$log" 2>&1 9>&- &
  loop_pid=$!
  wait_ready "$log" "$loop_pid" || die "bystander round $r: the fault loop failed: $(tail -3 "$log")"
  # The kernel frees what a memlens held (its maps, the unwind tables) in deferred work after it exits: a
  # block started at once pays for that, not for tracing, at up to 1.3x its time per fault here. So every
  # block starts 3 s or more after the last memlens exited, this round's or the last workload's.
  sleep 3
  # Blocks 1, 3, ... 2 x BYSTANDER_PAIRS + 1 without memlens, 2, 4, ... with.
  for ((k = 1; k <= 2 * BYSTANDER_PAIRS + 1; k++)); do
    mode=without
    ((k % 2)) || mode=with
    if [ "$mode" = with ]; then
      "${PIN_WRK[@]}" "$MEMLENS" run -q -o "$WORK/bystander-$r.$k" -- \
        node -e 'setTimeout(() => {}, 600000)' >"$WORK/bystander-$r.$k.log" 2>&1 9>&- &
      pid=$!
      wait_started "$pid" >"$WORK/bystander-$r.$k.waited"
      kill -0 "$pid" 2>/dev/null ||
        { stop_jobs; die "bystander round $r: memlens exited early (see $WORK/bystander-$r.$k.log)"; }
    fi
    blocks=$((blocks + 1))
    printf x >&9
    # One line per block, printed as it ends.
    while [ "$(grep -c cpu_ns_per_fault "$log")" -lt "$blocks" ]; do
      kill -0 "$loop_pid" 2>/dev/null ||
        { stop_jobs; die "bystander round $r: the fault loop failed: $(tail -3 "$log")"; }
      sleep 0.05
    done
    if [ "$mode" = with ]; then
      pkill -TERM -P "$pid" node 2>/dev/null # the traced node: memlens then writes its report and exits
      wait "$pid"
      sleep 3
    fi
  done
  exec 9>&-
  wait "$loop_pid" || die "bystander round $r: the fault loop failed: $(tail -3 "$log")"
  mapfile -t figures < <(fault_figures "$log")
  [ "${#figures[@]}" -eq $((2 * BYSTANDER_PAIRS + 1)) ] || die "bystander round $r: ${#figures[@]} blocks (see $log)"
  for ((k = 1; k < 2 * BYSTANDER_PAIRS + 1; k += 2)); do
    awk -v w="${figures[k]}" -v a="${figures[k - 1]}" -v b="${figures[k + 1]}" 'BEGIN { printf "%s %.1f\n", w, (a + b) / 2 }'
  done
}

# The traced fault loop: the traced loop (memlens run, default settings) and an untraced one run at the same
# time, both pinned to the server CPU with memlens, like the HTTP servers. Run one after the other, the
# same untraced loop gives 0.85 to 1.15 of its own time per fault from one run to the next here, far more
# than the 2% to be resolved; two untraced loops sharing the CPU every moment stay within 1-2% of each
# other. Both loops wait at a gate until memlens's start-up (loading, the image's unwind tables) is over,
# then start at once: the figure is what tracing costs each fault, not start-up. What memlens costs every
# process of the host alike (the bystander's share) slows both loops and is not in this figure: the
# results print it with that share too.
FAULT_PAIRS=${BENCH_FAULT_PAIRS:-3}

traced_fault_pair() { # traced_fault_pair NAME ID [MEMLENS OPTION...] -> prints "TRACED_NS UNTRACED_NS"
  local name=$1 id=$2 pid memlens_pid="" untraced_pid traced_ns untraced_ns i
  shift 2
  local out="$WORK/$name-traced-$id" untraced_out="$WORK/$name-untraced-$id.out" gate="$WORK/$name-$id.gate"
  open_gate "$gate"
  gated_command "$gate"
  perl -e "$MEASURE_PL" "$out.stats" "${PIN_SERVER[@]}" "$MEMLENS" run -q "$@" -o "$out" -- "${GATED[@]}" \
    >"$out.out" 2>&1 9>&- &
  pid=$! # perl, the sampler; memlens is its child
  "${GATED[@]}" >"$untraced_out" 2>&1 9>&- &
  untraced_pid=$!
  for ((i = 0; i < 200 && ${#memlens_pid} == 0; i++)); do
    sleep 0.05
    memlens_pid=$(pgrep -o -P "$pid")
  done
  [ -n "$memlens_pid" ] || { stop_jobs; die "$name pair $id: memlens did not start (see $out.out)"; }
  wait_started "$memlens_pid" >"$out.waited"
  # Both loops at their gate, so that each takes one byte.
  wait_ready "$out.out" "$memlens_pid" && wait_ready "$untraced_out" "$untraced_pid" ||
    { stop_jobs; die "$name pair $id: a loop or memlens exited early (see $out.out, $untraced_out)"; }
  printf xy >&9
  exec 9>&-
  wait "$untraced_pid" || die "$name pair $id: the untraced loop failed: $(tail -3 "$untraced_out")"
  wait "$pid" || die "$name pair $id failed: $(tail -3 "$out.out")"
  check_traced "$name" "$out" "$out.stats"
  traced_ns=$(fault_figure "$out.out") || exit 1
  untraced_ns=$(fault_figure "$untraced_out") || exit 1
  echo "$traced_ns $untraced_ns"
}

# --- bpftrace, the reference ------------------------------------------------------------------------
LIBC_PATH=$(ldconfig -p 2>/dev/null | awk '/libc\.so\.6 .*x86-64/ {print $NF; exit}')
[ -n "$LIBC_PATH" ] || LIBC_PATH=/lib/x86_64-linux-gnu/libc.so.6
# The same job as memlens's default profile of alloc-heavy: user page faults, mmap and brk entries, each
# with its user stack, of the traced process only.
BPFTRACE_SCRIPT="tracepoint:exceptions:page_fault_user /pid == cpid/ { @faults[ustack] = count(); }
uprobe:$LIBC_PATH:mmap /pid == cpid/ { @mmap[ustack] = count(); }
uprobe:$LIBC_PATH:brk /pid == cpid/ { @brk[ustack] = count(); }"

# --- the tracers' work, accounted ---------------------------------------------------------------------
# The timed rows above compare run times, and the same untraced run varies by more than the targets from
# one run to the next here. The work a tracer adds can also be counted, free of the machine's speed: its
# own CPU time (pinned to the workload's CPU, it takes that time from the workload), its BPF programs' run
# time (kernel.bpf_stats_enabled, on only during these runs), and the breakpoint traps of its uprobes,
# which that run time does not include. Each taken over the workload's own timed span (from its result
# file), not the tracer's start-up or its report.
#
# A trap's cost depends on the instruction under the probe (bench/uprobe_trap.c, measured once on this
# machine): the kernel emulates a call, jump, branch or push in one exception and single-steps any other
# instruction out of line, at about ten times the cost here; a return probe adds its return through the
# kernel's trampoline. Each uprobe program's runs are charged at the dearest of the sites it is attached
# at (bench/uprobe_sites.c, read every second during the run): a program attached at a stepped and an
# emulated site pays the stepped price for every run. A return probe whose function entry another
# program probes shares that entry's trap (one breakpoint, two programs): it pays the return alone. A
# program whose sites were never seen (attached and detached between two readings) pays the stepped price.
TRAP_NS=""
TRAP_EMULATED_NS=""
TRAP_RETURN_NS=""
OLD_BPF_STATS=""

accounted_run() { # accounted_run MODE ROUND -> prints "WORK_S ELAPSED_S CPU_S BPF_S UPROBE_RUNS TRAPS_S UNPLACED_RUNS"
  # Not named *-traced-*: these runs, with the statistics on, stay out of the traced runs' figures.
  local mode=$1 r=$2 rc started ended elapsed v out result
  out="$WORK/accounted-${1/traced/memlens}-$2"
  result="$out.result"
  local -a cmd
  rm -f "$result" "$out.sites"
  if [ "$mode" = traced ]; then
    cmd=("$MEMLENS" run -q -o "$out" -- node "$BENCH_DIR/alloc_heavy.js" --result-file "$result")
  else
    cmd=(bpftrace -e "$BPFTRACE_SCRIPT" -c "$(command -v node) $BENCH_DIR/alloc_heavy.js --result-file $result")
  fi
  echo 1 >/proc/sys/kernel/bpf_stats_enabled || die "cannot enable kernel.bpf_stats_enabled"
  MEASURE_SERIES="$out.series" MEASURE_SITES="$out.sites" MEASURE_SITES_TOOL="$WORK/uprobe_sites" \
    measured "$out.stats" "${PIN_SERVER[@]}" "${cmd[@]}" >"$out.log" 2>&1
  rc=$?
  echo "$OLD_BPF_STATS" >/proc/sys/kernel/bpf_stats_enabled
  [ "$rc" -eq 0 ] || die "accounted $mode run, round $r: exit status $rc (see $out.log)"
  [ -s "$result" ] || die "accounted $mode run, round $r: no result (see $out.log)"
  touch "$out.sites"
  started=$(json_field "$result" started_epoch_s)
  ended=$(json_field "$result" ended_epoch_s)
  elapsed=$(json_field "$result" elapsed_s)
  # The first and last readings inside the timed span, scaled up to the whole span.
  v=$(awk -v s="$started" -v e="$ended" -v el="$elapsed" -v stepped="$TRAP_NS" -v emulated="$TRAP_EMULATED_NS" \
    -v ret="$TRAP_RETURN_NS" -v sites="$out.sites" '
    BEGIN {
      # Sites: "PROG_ID KIND CLASS OFFSET PATH".
      while ((getline line < sites) > 0) {
        split(line, f, " ")
        n++; id[n] = f[1]; kind[n] = f[2]; class[n] = f[3]; at[n] = f[5] " " f[4]
        if (f[2] == "entry") entry_at[at[n]] = 1
      }
      for (i = 1; i <= n; i++) {
        c = class[i] == "emulated" ? emulated : stepped
        if (kind[i] == "return") c = ret + (entry_at[at[i]] ? 0 : c)
        if (!(id[i] in cost) || c > cost[id[i]]) cost[id[i]] = c
      }
    }
    $1 >= s && !a { a = 1; t0 = $1; c0 = $2; n0 = $3; u0 = $5; p0 = $6 }
    $1 <= e { t1 = $1; c1 = $2; n1 = $3; u1 = $5; p1 = $6 }
    END {
      if (!a || t1 <= t0) exit
      k = (e - s) / (t1 - t0); cpu = (c1 - c0) * k; bpf = (n1 - n0) * k / 1e9; up = (u1 - u0) * k
      np = split(p0, q, ","); for (i = 1; i <= np; i++) { split(q[i], x, ":"); before[x[1]] = x[2] }
      np = split(p1, q, ",")
      for (i = 1; i <= np; i++) {
        split(q[i], x, ":"); runs = (x[2] - before[x[1]]) * k
        if (x[1] in cost) traps += runs * cost[x[1]]; else { traps += runs * stepped; unplaced += runs }
      }
      printf "%.4f %.3f %.4f %.4f %.0f %.4f %.0f\n", cpu + bpf + traps / 1e9, el, cpu, bpf, up, traps / 1e9, unplaced
    }' "$out.series")
  [ -n "$v" ] || die "accounted $mode run, round $r: fewer than two readings within the workload's span (see $out.series)"
  echo "$v"
}

ensure_bpftrace() {
  if ! command -v bpftrace >/dev/null; then
    echo "bench: installing bpftrace (Debian package) for the reference measurement"
    DEBIAN_FRONTEND=noninteractive apt-get install -y bpftrace >"$WORK/apt.log" 2>&1 ||
      die "cannot install bpftrace (see $WORK/apt.log)"
  fi
  if [ ! -e /sys/kernel/tracing/events ]; then
    mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || die "cannot mount tracefs at /sys/kernel/tracing"
  fi
}

declare -A SAMPLES
add_sample() { SAMPLES[$1]="${SAMPLES[$1]:-} $2"; }

ONLY=",${BENCH_ONLY:-faults,http,scripts,unwind,jsframes,snapshots},"
want() { [[ "$ONLY" == *",$1,"* ]]; }

echo "memlens benchmark: $ROUNDS rounds, traced and untraced alternating; $(nproc) CPUs" \
  "${PIN_SERVER:+(server on CPU $SERVER_CPU, wrk on CPU $WRK_CPU)}"
echo "memlens: $MEMLENS"
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
  echo "warning: load average $load: other work on this machine makes the ratios noisy"
fi
want http && echo "node: $(node --version), wrk -t1 -c$WRK_CONNECTIONS -d${WRK_DURATION}s on 127.0.0.1"
if want faults || want unwind; then
  command -v cc >/dev/null || die "cc not found (the fault loop is built from tests/programs/fault_loop.c)"
  cc -O2 -o "$FAULT_LOOP" "$BENCH_DIR/../tests/programs/fault_loop.c" || die "cannot build the fault loop"
  echo "fault loop: $FAULT_PAGES pages x $FAULT_ROUNDS rounds per run"
fi
want scripts && ensure_bpftrace && echo "bpftrace: $(bpftrace --version 2>&1 | head -1)"
if want scripts; then
  if [ -w /proc/sys/kernel/bpf_stats_enabled ] && command -v cc >/dev/null; then
    OLD_BPF_STATS=$(cat /proc/sys/kernel/bpf_stats_enabled)
    cc -O2 -o "$WORK/uprobe_trap" "$BENCH_DIR/uprobe_trap.c" || die "cannot build bench/uprobe_trap.c"
    cc -O2 -static -o "$WORK/uprobe_sites" "$BENCH_DIR/uprobe_sites.c" || die "cannot build bench/uprobe_sites.c"
    "${PIN_SERVER[@]}" "$WORK/uprobe_trap" >"$WORK/uprobe_trap.out" 2>&1 ||
      die "the uprobe trap could not be measured: $(cat "$WORK/uprobe_trap.out")"
    # A figure a little below zero (the return: a difference of two small ones) counts as zero.
    trap_figure() { sed -n "s/.*\"$1\":\(-\{0,1\}[0-9.]*\).*/\1/p" "$WORK/uprobe_trap.out" | awk '{ print ($1 < 0 ? 0 : $1) }'; }
    TRAP_NS=$(trap_figure trap_ns)
    TRAP_EMULATED_NS=$(trap_figure emulated_ns)
    TRAP_RETURN_NS=$(trap_figure return_ns)
    [ -n "$TRAP_NS" ] && [ -n "$TRAP_EMULATED_NS" ] && [ -n "$TRAP_RETURN_NS" ] ||
      die "bench/uprobe_trap.c printed no figures: $(cat "$WORK/uprobe_trap.out")"
    echo "one uprobe hit, no program: $TRAP_NS ns stepped, $TRAP_EMULATED_NS ns emulated, a return" \
      "$TRAP_RETURN_NS ns more ($(cat "$WORK/uprobe_trap.out"))"
  else
    echo "the tracers' work is not accounted: no writable kernel.bpf_stats_enabled, or no cc"
  fi
fi
echo

# Each workload's traced and untraced runs see the same machine: the servers and the traced fault loops
# at once, the scripts back to back, the bystander's blocks in one loop process.
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then modes=(untraced traced); else modes=(traced untraced); fi
  line="round $r:"
  if want faults; then
    v=$(bystander_round "$r") || exit 1
    while read -r with_ns without_ns; do
      add_sample bystander-with "$with_ns"
      add_sample bystander-without "$without_ns"
      line+=$(printf '  bystander %.0f vs %.0f ns/fault' "$with_ns" "$without_ns")
    done <<<"$v"
    for ((k = 1; k <= FAULT_PAIRS; k++)); do
      v=$(traced_fault_pair faults "$r.$k") || exit 1
      read -r traced_ns untraced_ns <<<"$v"
      add_sample faults-traced "$traced_ns"
      add_sample faults-untraced "$untraced_ns"
      line+=$(printf '  faults traced %.0f vs untraced %.0f ns' "$traced_ns" "$untraced_ns")
    done
    # Fault sampling on (off by default): what the traced process pays for it beyond a bystander.
    v=$(traced_fault_pair sampled "$r" --fault-sample-period 1024) || exit 1
    read -r traced_ns untraced_ns <<<"$v"
    add_sample sampled-traced "$traced_ns"
    add_sample sampled-untraced "$untraced_ns"
    line+=$(printf '  sampled %.0f vs %.0f ns' "$traced_ns" "$untraced_ns")
  fi
  if want unwind; then
    # The unwinder's cost: every fault sampled with its user stack (--fault-sample-period 1), walked by
    # frame pointers only (--unwind-table-mib 0) and with the unwind tables, one run after the other.
    for mode in fp cfi; do
      if [ "$mode" = fp ]; then tables=0; else tables=32; fi
      v=$(fault_ns "$WORK/unwind-$mode-$r.out" measured "$WORK/unwind-$mode-$r.stats" "${PIN_SERVER[@]}" \
        "$MEMLENS" run -q --fault-sample-period 1 --unwind-table-mib "$tables" -o "$WORK/unwind-$mode-$r" --) || exit 1
      check_traced unwind "$WORK/unwind-$mode-$r" "$WORK/unwind-$mode-$r.stats"
      add_sample "unwind-$mode" "$v"
      line+=$(printf '  every fault with its stack, %s %.0f ns' "$mode" "$v")
    done
  fi
  if want http; then
    # Keep-alive pairs: HTTP_KEEPALIVE_PAIRS a round (fresh servers each). Two untraced servers side by side
    # differ by up to 3% in a pair (JIT and GC timing of each process), so the 1% target needs more pairs
    # than the other rows to be resolved by their median.
    for k in $(seq "$HTTP_KEEPALIVE_PAIRS"); do
      v=$(http_pair_round "$r.$k" http traced) || exit 1
      read -r traced_rps untraced_rps <<<"$v"
      add_sample http-traced "$traced_rps"
      add_sample http-untraced "$untraced_rps"
      line+=$(printf '  http traced %.0f untraced %.0f req/s' "$traced_rps" "$untraced_rps")
    done
    # Connection-per-request pairs: one pair a round ranged 0.93 to 1.00 here for the same binary.
    for k in $(seq "$HTTP_CLOSE_PAIRS"); do
      v=$(http_pair_round "$r.$k" http_close traced -H "Connection: close") || exit 1
      read -r traced_rps untraced_rps <<<"$v"
      add_sample http_close-traced "$traced_rps"
      add_sample http_close-untraced "$untraced_rps"
      line+=$(printf '  http-close traced %.0f untraced %.0f req/s' "$traced_rps" "$untraced_rps")
    done
    if [ -n "$BARE_UPROBE" ]; then
      v=$(http_pair_round "$r" http_close_floor bare -H "Connection: close") || exit 1
      read -r bare_rps untraced_rps <<<"$v"
      add_sample http_floor-bare "$bare_rps"
      add_sample http_floor-untraced "$untraced_rps"
      line+=$(printf '  floor bare-uprobe %.0f untraced %.0f req/s' "$bare_rps" "$untraced_rps")
    fi
  fi
  if want scripts; then
    # ALLOC_SETS sets a round of untraced, traced and bpftrace runs back to back (and one with
    # --js-objects=sampling): the same untraced run varies by 10% or more from run to run here (its CPU
    # time as much as its wall time: the machine's speed, not preemption), and the targets are a few
    # percent, so five sets cannot resolve them. Each takes its turn at each place in the order.
    for k in $(seq "$ALLOC_SETS"); do
      case $(((r * ALLOC_SETS + k) % 3)) in
        1) amodes=(untraced traced bpftrace) ;;
        2) amodes=(traced bpftrace untraced) ;;
        *) amodes=(bpftrace untraced traced) ;;
      esac
      for mode in "${amodes[@]}" jsobjects; do
        v=$(script_round alloc_heavy "$mode" "$r.$k") || exit 1
        add_sample "alloc-$mode" "$v"
        line+=$(printf '  alloc %s %.3f s' "$mode" "$v")
      done
    done
    if [ -n "$TRAP_NS" ]; then
      if ((r % 2)); then amodes=(traced bpftrace); else amodes=(bpftrace traced); fi
      for mode in "${amodes[@]}"; do
        v=$(accounted_run "$mode" "$r") || exit 1
        read -r work elapsed cpu bpf uprobes traps unplaced <<<"$v"
        add_sample "acct-$mode-work" "$work"
        add_sample "acct-$mode-traps" "$traps"
        add_sample "acct-$mode-unplaced" "$unplaced"
        add_sample "acct-$mode-elapsed" "$elapsed"
        add_sample "acct-$mode-cpu" "$cpu"
        add_sample "acct-$mode-bpf" "$bpf"
        add_sample "acct-$mode-uprobes" "$uprobes"
        line+=$(printf '  accounted %s %.3f s of work in %.3f s' "$mode" "$work" "$elapsed")
      done
    fi
    for mode in "${modes[@]}"; do
      v=$(script_round buffer_heavy "$mode" "$r") || exit 1
      add_sample "buffer-$mode" "$v"
      line+=$(printf '  buffer %s %.3f s' "$mode" "$v")
    done
  fi
  echo "$line"
done

# The rounds ran in subshells ($(...)); memlens's figures are collected from the files they left.
TRACED_CPU=()
TRACED_RSS_KB=()
LOSS_SUMS=()
for stats in "$WORK"/*-traced-*.stats; do
  [ -e "$stats" ] || continue
  out=${stats%.stats}
  name=$(basename "$out")
  name=${name%%-traced-*}
  TRACED_CPU+=("$name $(stat_field "$stats" cpu_s) $(stat_field "$stats" wall_s)")
  TRACED_RSS_KB+=("$(stat_field "$stats" peak_rss_kb)")
  LOSS_SUMS+=("$(loss_sum "$out/report.json")")
done

m() { median ${SAMPLES[$1]}; }
spread() { # spread KEY: "min-max" of the samples
  printf '%s\n' ${SAMPLES[$1]} | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%g-%g", lo, hi}'
}
# The figure of a workload is the median of its per-round ratios: each round's traced and untraced runs
# are a pair that saw the same machine, so a round on which the whole machine was slower (it happens: the
# same untraced HTTP run gives 55,000 to 69,000 req/s from one round to the next here) cancels out in its
# own ratio instead of being matched against another round's run.
paired_ratios() { # paired_ratios NUMERATOR-KEY DENOMINATOR-KEY: one ratio per pair (a round has one, keep-alive HTTP several)
  local -a a=(${SAMPLES[$1]}) b=(${SAMPLES[$2]})
  local i
  for ((i = 0; i < ${#a[@]}; i++)); do ratio "${a[$i]}" "${b[$i]}"; echo; done
}
paired_median() { median $(paired_ratios "$1" "$2"); }
paired_list() { paired_ratios "$1" "$2" | paste -sd' ' -; }
list_spread() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%g-%g", lo, hi}'; }

MISSED=()
# result LABEL VALUE OP TARGET DETAIL: one line of the results, the missed ones remembered.
result() {
  local v
  v=$(verdict "$2" "$3" "$4")
  printf '  %-38s %10s   %9s   %-6s %s\n' "$1" "$2" "$3 $4" "$v" "$5"
  [ "$v" = MISSED ] && MISSED+=("$1: $2 (target $3 $4)")
  return 0
}

echo
echo "Results (median of the per-round ratios; fault loops, keep-alive and alloc-heavy: of every pair or set)  measured      target"
if want faults; then
  by_ratio=$(paired_median bystander-without bystander-with)
  result "bystander per-fault speed with/without" "$by_ratio" ">=" 0.99 \
    "(each block with memlens against the mean of its neighbours without: $(paired_list bystander-without bystander-with); medians $(m bystander-with) vs $(m bystander-without) ns/fault; ranges $(spread bystander-with) vs $(spread bystander-without); each loop started $(list_spread $(cat "$WORK"/bystander-*.waited)) s after memlens)"
  tf_ratio=$(paired_median faults-traced faults-untraced)
  result "traced per-fault time, beside untraced" "$tf_ratio" "<=" 1.02 \
    "(pairs side by side: $(paired_list faults-traced faults-untraced); medians $(m faults-traced) vs $(m faults-untraced) ns/fault; ranges $(spread faults-traced) vs $(spread faults-untraced); each pair started $(list_spread $(cat "$WORK"/faults-traced-*.waited)) s after memlens)"
  # Side by side, what memlens costs every process alike slows both loops: with the bystander's share,
  # the traced loop against no memlens at all.
  printf '  %-52s %s (the row above over the bystander speed)\n' "traced per-fault time, against no memlens" \
    "$(awk -v t="$tf_ratio" -v b="$by_ratio" 'BEGIN { if (b > 0) printf "%.3f", t / b; else print "nan" }')"
  printf '  %-52s %s (pairs: %s; medians %s vs %s ns/fault; no target: off by default; the software event\n    it opens slows every fault of the host, the untraced loop too: see docs/probes.md)\n' \
    "with --fault-sample-period 1024, beside untraced" "$(paired_median sampled-traced sampled-untraced)" \
    "$(paired_list sampled-traced sampled-untraced)" "$(m sampled-traced)" "$(m sampled-untraced)"
fi
if want unwind; then
  printf '  %-52s %s (rounds: %s; every fault sampled with its stack: %s vs %s ns/fault, the difference is the\n    unwind tables'"'"' cost per stack walk)\n' "per-fault time, unwind tables / frame pointers only" \
    "$(paired_median unwind-cfi unwind-fp)" "$(paired_list unwind-cfi unwind-fp)" "$(m unwind-cfi)" "$(m unwind-fp)"
fi
if want http; then
  http_ratio=$(paired_median http-traced http-untraced)
  http_close_ratio=$(paired_median http_close-traced http_close-untraced)
  result "HTTP keep-alive traced/untraced" "$http_ratio" ">=" 0.99 \
    "(pairs: $(paired_list http-traced http-untraced); medians $(m http-traced) vs $(m http-untraced) req/s; ranges $(spread http-traced) vs $(spread http-untraced))"
  result "HTTP, a connection per request" "$http_close_ratio" ">=" 0.97 \
    "(pairs: $(paired_list http_close-traced http_close-untraced); medians $(m http_close-traced) vs $(m http_close-untraced) req/s; ranges $(spread http_close-traced) vs $(spread http_close-untraced))"
  if [ -n "$BARE_UPROBE" ]; then
    printf '    floor: bare uprobes on accept, no program %s (rounds: %s; the trap alone at those sites)\n' \
      "$(paired_median http_floor-bare http_floor-untraced)" "$(paired_list http_floor-bare http_floor-untraced)"
  fi
fi
if want scripts; then
  alloc_ratio=$(paired_median alloc-untraced alloc-traced)
  result "alloc-heavy run time untraced/traced" "$alloc_ratio" ">=" 0.97 \
    "(sets: $(paired_list alloc-untraced alloc-traced); medians $(m alloc-untraced) vs $(m alloc-traced) s; ranges $(spread alloc-untraced) vs $(spread alloc-traced))"
  # Overheads per set (run time / untraced - 1), each side's median, and memlens's median over
  # bpftrace's. Not the median of the per-set quotients: memlens's overhead (a percent or two) is below
  # the run-to-run spread of the untraced time (several percent), so one set's quotient is mostly that
  # noise over bpftrace's overhead (anywhere from 0 to near 1 within one run), while each side's median
  # is robust to it.
  mapfile -t ml_over < <(paired_ratios alloc-traced alloc-untraced | awk '{printf "%.4f\n", $1 - 1}')
  mapfile -t bt_over < <(paired_ratios alloc-bpftrace alloc-untraced | awk '{printf "%.4f\n", $1 - 1}')
  ml_over_median=$(median "${ml_over[@]}")
  bt_over_median=$(median "${bt_over[@]}")
  over_ratio=$(awk -v a="$ml_over_median" -v b="$bt_over_median" \
    'BEGIN { if (b > 0) printf "%.3f", (a < 0 ? 0 : a) / b; else print "nan" }')
  result "overhead memlens/bpftrace (alloc)" "$over_ratio" "<=" 0.25 \
    "(median overheads: memlens $ml_over_median (sets ${ml_over[*]}), bpftrace $bt_over_median (sets ${bt_over[*]}))"
  if [ -n "$TRAP_NS" ]; then
    acct_ratio=$(median $(paired_ratios acct-traced-work acct-bpftrace-work))
    result "  accounted: work memlens/bpftrace" "$acct_ratio" "<=" 0.25 \
      "(rounds: $(paired_list acct-traced-work acct-bpftrace-work); medians memlens: own CPU $(m acct-traced-cpu) s, BPF $(m acct-traced-bpf) s, $(m acct-traced-uprobes) uprobe runs, traps $(m acct-traced-traps) s ($(m acct-traced-unplaced) runs at sites unseen); bpftrace: own CPU $(m acct-bpftrace-cpu) s, BPF $(m acct-bpftrace-bpf) s, $(m acct-bpftrace-uprobes) uprobe runs, traps $(m acct-bpftrace-traps) s ($(m acct-bpftrace-unplaced) unseen); a hit $TRAP_NS ns stepped, $TRAP_EMULATED_NS ns emulated, a return $TRAP_RETURN_NS ns more)"
    mapfile -t acct_speed < <(paired_ratios acct-traced-work acct-traced-elapsed | awk '{printf "%.4f\n", 1 - $1}')
    result "  accounted: alloc-heavy speed" "$(median "${acct_speed[@]}")" ">=" 0.97 \
      "(rounds: ${acct_speed[*]}: 1 - memlens's work / the traced run time)"
  fi
  alloc_js_ratio=$(paired_median alloc-untraced alloc-jsobjects)
  result "  with --js-objects=sampling too" "$alloc_js_ratio" ">=" 0.90 \
    "(sets: $(paired_list alloc-untraced alloc-jsobjects); median $(m alloc-jsobjects) s: V8's sampling heap profiler on top of the tracing)"
  buffer_ratio=$(paired_median buffer-untraced buffer-traced)
  result "Buffer-heavy run time untraced/traced" "$buffer_ratio" ">=" 0.90 \
    "(rounds: $(paired_list buffer-untraced buffer-traced); medians $(m buffer-untraced) vs $(m buffer-traced) s; ranges $(spread buffer-untraced) vs $(spread buffer-traced))"
fi
if want snapshots; then
  echo
  echo "Heap snapshots (one run per heap; the machine may be shared, so pauses vary from run to run):"
  for heap in ${BENCH_SNAPSHOT_HEAPS:-100:0 500:256}; do
    mb=${heap%%:*} record_bytes=${heap##*:}
    # V8 itself needs far more than the heap to write a snapshot of millions of objects, in proportion to
    # their number: node's RSS rose by about 1.6 KB per object here (1.9 GB for 1.2 M objects in 49 MiB,
    # past 18 GB for 10 M in 421 MiB). A record is two objects (the object, its string). Run only when
    # the host has that much available.
    if ((record_bytes > 0)); then objects=$((mb * 1048576 / (record_bytes + 56) * 2)); else objects=$((mb * 1048576 / 40)); fi
    need_mb=$((objects * 1600 / 1048576))
    avail_mb=$(awk '/^MemAvailable:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
    label="${mb} MB"
    ((record_bytes > 0)) && label="${mb} MB of ${record_bytes}-character records"
    if ((avail_mb < need_mb)); then
      result "snapshot ${label}: memlens/heap" "" "<=" 1 \
        "(not run: V8 needs about $((need_mb / 1024)) GB to write this snapshot and the host has $((avail_mb / 1024)) GB available)"
      continue
    fi
    dir=$WORK/snapshot-$mb-$record_bytes
    mkdir -p "$dir"
    node --max-old-space-size=$((mb * 4 + 1024)) --expose-gc "$BENCH_DIR/snapshot_heap.js" --mb "$mb" \
      --record-bytes "$record_bytes" \
      >"$dir/node.out" 2>&1 &
    heap_pid=$!
    for ((i = 0; i < 1800; i++)); do
      grep -q '"ready"' "$dir/node.out" && break
      kill -0 "$heap_pid" 2>/dev/null || break
      sleep 0.5
    done
    grep -q '"ready"' "$dir/node.out" || die "the ${label} heap did not build: $(tail -3 "$dir/node.out")"
    "$MEMLENS" attach "$heap_pid" --duration 10 --js-objects -q -o "$dir/out" >/dev/null 2>"$dir/memlens.err"
    rc=$?
    kill "$heap_pid" 2>/dev/null
    wait "$heap_pid" 2>/dev/null
    [ "$rc" -eq 0 ] || die "memlens attach on the ${label} heap failed (exit $rc): $(tail -3 "$dir/memlens.err")"
    # One line per snapshot: reason pause_ms heap_used_bytes rss_before_bytes peak_bytes nodes json_bytes
    mapfile -t rows < <(node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      for (const p of r.processes || []) for (const s of ((p.js_objects || {}).snapshots || []))
        console.log([s.reason.replace(/ /g, "_"), s.ok ? s.pause_ms : -1, s.heap_used_bytes,
          s.memlens_rss_before_bytes, s.memlens_peak_rss_bytes, s.nodes, s.json_bytes].join(" "));' \
      "$dir/out/report.json")
    ((${#rows[@]})) || die "the ${label} heap's report lists no snapshot"
    for row in "${rows[@]}"; do
      read -r reason pause heap before peak nodes json <<<"$row"
      [ "$pause" != -1 ] || die "the $reason snapshot of the ${label} heap failed: see $dir/out/report.json"
      share=$(awk -v p="$peak" -v b="$before" -v h="$heap" 'BEGIN { printf "%.2f", (p - b) / h }')
      result "snapshot ${label} ($reason): memlens/heap" "$share" "<=" 1 \
        "$(awk -v p="$peak" -v b="$before" -v h="$heap" -v t="$pause" -v n="$nodes" -v j="$json" 'BEGIN {
          printf "(pause %.1f s; memlens +%.0f MB (peak %.0f MB) for a heap of %.0f MB, %.1f M objects, %.0f MB of JSON)",
            t / 1000, (p - b) / 1048576, p / 1048576, h / 1048576, n / 1e6, j / 1048576 }')"
    done
  done
fi
peak_kb=$(printf '%s\n' "${TRACED_RSS_KB[@]}" | sort -n | tail -1)
peak_mb=$(awk -v k="$peak_kb" 'BEGIN { printf "%.1f", k / 1024 }')
lost_note=""
if printf '%s\n' "${LOSS_SUMS[@]}" | grep -q '^missing$'; then lost_note=" (a report has no loss figures)"; fi
lost=$(printf '%s\n' "${LOSS_SUMS[@]}" | grep -v '^missing$' | awk '{s += $1} END {print s + 0}')
untraced=$(printf '%s\n' "${LOSS_SUMS[@]}" | grep -v '^missing$' | awk '{s += $2} END {print s + 0}')
if ((${#LOSS_SUMS[@]})); then
  result "events lost (all traced runs)" "$lost" "<=" 0 "$lost_note"
  result "untraced processes (all traced runs)" "$untraced" "<=" 0 ""
fi
if ((${#TRACED_RSS_KB[@]})); then
  result "memlens peak RSS, MB (max of runs)" "$peak_mb" "<=" 64 \
    "(runs: $(list_spread $(printf '%s\n' "${TRACED_RSS_KB[@]}" | awk '{printf "%.1f\n", $1 / 1024}')) MB)"
else
  echo "  (no traced rounds in this selection: no loss or peak RSS figures)"
fi
echo
echo "memlens's own CPU per traced second (CPU seconds user+system / wall seconds of the run, median and range):"
# (Not the fault loops: their memlens waits seconds at the gate with the loops.)
for name in http http_close alloc_heavy buffer_heavy; do
  per=$(printf '%s\n' "${TRACED_CPU[@]}" | awk -v n="$name" '$1 == n && $3 > 0 { printf "%.4f\n", $2 / $3 }')
  [ -n "$per" ] || continue
  printf '  %-13s %s s/s (%s over %d runs)\n' "$name" "$(median $per)" "$(list_spread $per)" "$(echo "$per" | wc -l)"
done
if want jsframes; then
  echo
  bash "$BENCH_DIR/js_frames.sh" "$MEMLENS" || echo "bench: the JS frame cost could not be measured" >&2
fi
if ((${#MISSED[@]})); then
  echo
  printf 'bench: target missed: %s\n' "${MISSED[@]}" >&2
  exit 2
fi
