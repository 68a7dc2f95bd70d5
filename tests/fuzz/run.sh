#!/usr/bin/env bash
# Builds the fuzz harnesses with clang's libFuzzer (+ ASan/UBSan) and runs each for a while.
#   tests/fuzz/run.sh [seconds per harness, default 60]      e.g. tests/fuzz/run.sh 10 (a smoke run)
# Needs clang and libclang-rt-14-dev (scripts/install-deps.sh). Crashes are left in the work directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
secs="${1:-60}"
work="${FUZZ_WORK:-$root/build-fuzz}"
mkdir -p "$work"
CXX="${CXX_FUZZ:-clang++}"

# The parsers under test are compiled in with coverage; fmt and libelf come from the system.
srcs=("$root"/src/common/*.cpp "$root"/src/proc/*.cpp "$root"/src/elf/*.cpp "$root"/src/symbolize/*.cpp
      "$root"/src/model/*.cpp "$root"/src/collect/capture_file.cpp "$root"/src/collect/capture_records.cpp
      "$root"/src/collect/end_state_cbor.cpp "$root"/src/collect/record_json.cpp "$root"/src/collect/decode.cpp)
flags=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root/src" -I"$root/include")

for name in perf_map proc_maps elf capture; do
  echo "fuzz: building $name"
  "$CXX" "${flags[@]}" "$here/${name}_fuzz.cpp" "${srcs[@]}" -lelf -ldw -lfmt -lz -o "$work/${name}_fuzz"
done

# Seed corpora: the perf map fixtures, this machine's maps, a small compiled program, a capture with an
# address-space event, an fd event and a record of a type this build does not know, the golden captures.
mkdir -p "$work/corpus/perf_map" "$work/corpus/proc_maps" "$work/corpus/elf" "$work/corpus/capture"
cp "$root"/tests/data/capture/*.mlcap "$work/corpus/capture/"
for g in "$root"/tests/golden/*/capture.mlcap; do  # real recordings: every record type, stack profiles
  cp "$g" "$work/corpus/capture/golden-$(basename "$(dirname "$g")").mlcap"
done
cp "$root"/tests/data/symbolize/*.map "$work/corpus/perf_map/" 2>/dev/null || true
cat /proc/self/maps >"$work/corpus/proc_maps/self"
printf 'int f(int x){return x+1;}\nint main(){return f(2);}\n' >"$work/seed.c"
cc -O1 -o "$work/corpus/elf/seed" "$work/seed.c"

# Leaks of system libraries that memlens cannot free (tests/fuzz/lsan.supp): matched by the function that
# called into the library, which the slow unwinder finds (the fast one stops at a library without frame
# pointers).
export LSAN_OPTIONS="suppressions=$here/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
for name in perf_map proc_maps elf capture; do
  echo "fuzz: running $name for ${secs}s"
  (cd "$work" && "./${name}_fuzz" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 \
      -print_final_stats=1 "corpus/$name" 2>"$work/$name.log") ||
    { echo "fuzz: $name FAILED, see $work/$name.log"; tail -40 "$work/$name.log"; exit 1; }
  grep -E "stat::number_of_executed_units|Done" "$work/$name.log" | tail -2
done
echo "fuzz: all harnesses ran clean"
