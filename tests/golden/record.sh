#!/usr/bin/env bash
# Records the golden captures again (as root, on a host where `memlens run` works): run it when the capture
# format or the report files change, review the diff of expected/, and commit both.
#
#   sudo tests/golden/record.sh [BUILD_DIR]        (BUILD_DIR defaults to build)
#
# Each tests/golden/NAME/ holds capture.mlcap, recorded from a scenario of tests/scenarios, and expected/:
# the report files the live trace itself wrote (--report-dir: report.json, *.folded, *.pb.gz; report.html
# is left out for its size, and compared between two replays instead) and summary.txt, the terminal
# summary of `memlens report capture.mlcap -o out`. cut_short/ is a recording whose memlens was killed
# (SIGKILL) in the middle: its expected files come from `memlens report`, there being no live report.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
memlens="$build/memlens"
node=${MEMLENS_NODE:-node}
# The scenarios run from a fixed scratch copy, so the command lines and script paths the captures hold do
# not depend on where the source tree is.
stage=/tmp/memlens-golden
rm -rf "$stage"
mkdir -p "$stage"
cp -r "$src/tests/scenarios" "$stage/"
cd "$stage"
scenarios=scenarios
# Few stacks per page fault and a short trace keep each capture to a few tens of KiB.
common=(--interval 0.5 --fault-sample-period 256 -q)

summarize() {  # NAME: the summary of a replay, with paths relative to a scratch directory
  local dir=$1 tmp
  tmp=$(mktemp -d)
  cp "$here/$dir/capture.mlcap" "$tmp/"
  (cd "$tmp" && "$memlens" report capture.mlcap -o out 2>summary.txt >/dev/null || true)
  cp "$tmp/summary.txt" "$here/$dir/expected/summary.txt"
  rm -rf "$tmp"
}

record() {  # NAME SCENARIO ARGS...
  local name=$1 scenario=$2
  shift 2
  rm -rf "${here:?}/$name"
  mkdir -p "$here/$name"
  "$memlens" record -o "$here/$name/capture.mlcap" --report-dir "$here/$name/expected" "${common[@]}" \
    -- "$node" "$scenarios/$scenario" --report-interval 0 "$@" >/dev/null || true  # the command's status
  test -s "$here/$name/expected/report.json"
  rm -f "$here/$name/expected/report.html"
  chmod 0644 "$here/$name/capture.mlcap"  # a test fixture: read by the unprivileged replay test
  summarize "$name"
}

record js_leak js_cache_leak.js --duration 3
record buffer_leak buffer_leak.js --duration 3
record fd_leak fd_leak_files.js --duration 3 --rate 50
record fork fork_child.js --duration 3 --child-mb 20
record exit_midway exit_midway.js --duration 2

# A recording cut short: memlens killed while the command runs; its snapshots are all that is left.
rm -rf "$here/cut_short"
mkdir -p "$here/cut_short/expected"
"$memlens" record -o "$here/cut_short/capture.mlcap" "${common[@]}" \
  -- "$node" "$scenarios/js_cache_leak.js" --report-interval 0 --duration 20 >/dev/null &
recorder=$!
sleep 7
kill -KILL "$recorder"
wait "$recorder" || true
pkill -KILL -f "$scenarios/js_cache_leak.js --report-interval 0 --duration 20" || true  # the orphaned command
chmod 0644 "$here/cut_short/capture.mlcap"
tmp=$(mktemp -d)
cp "$here/cut_short/capture.mlcap" "$tmp/"
(cd "$tmp" && "$memlens" report capture.mlcap -o out 2>summary.txt >/dev/null)
cp "$tmp/summary.txt" "$tmp/out/report.json" "$here/cut_short/expected/"
rm -rf "$tmp"
rm -rf "$stage"
ls -l "$here"/*/capture.mlcap
