#!/usr/bin/env bash
# make demo: traces the bundled demo service (examples/demo/server.js) with memlens and shows where the
# report went. Usage: scripts/demo.sh PATH-TO-MEMLENS [DURATION_SECONDS]
# The demo service drives itself with loopback load and exits by itself after DURATION seconds (default
# 30); memlens prints its live line while it runs and its summary at the end.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: scripts/demo.sh PATH-TO-MEMLENS [DURATION_SECONDS]" >&2
  exit 2
fi
memlens=$1
duration=${2:-${DEMO_DURATION:-30}}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root/out/demo

if [ ! -x "$memlens" ]; then
  echo "demo: memlens binary not found or not executable: $memlens (run make first)" >&2
  exit 1
fi
if ! command -v node >/dev/null 2>&1; then
  echo "demo: node not found in PATH; install Node.js (scripts/install-deps.sh installs Debian's nodejs)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: memlens loads BPF programs and needs root (or CAP_BPF and CAP_PERFMON)." >&2
  echo "demo: run it as root: sudo make demo    (or: sudo bash scripts/demo.sh $memlens)" >&2
  exit 1
fi

mkdir -p "$out"
echo "demo: tracing node examples/demo/server.js for about ${duration} s; report in $out"
echo
set +e
"$memlens" run -o "$out" -- node "$root/examples/demo/server.js" --duration "$duration"
status=$?
set -e
echo
if [ ! -f "$out/report.json" ]; then
  echo "demo: memlens exited with status $status and wrote no report in $out" >&2
  exit 1
fi
echo "demo: report files:"
for f in "$out"/*; do
  [ -f "$f" ] && printf '  %s (%s bytes)\n' "$f" "$(stat -c %s "$f")"
done
if [ -f "$out/report.html" ]; then
  echo "demo: open $out/report.html in a browser for the charts and flame graphs."
fi
if [ "$status" -ne 0 ]; then
  echo "demo: the traced demo exited with status $status" >&2
  exit "$status"
fi
