#!/usr/bin/env bash
# Regenerates bpf/vmlinux.h from a kernel's BTF. The committed copy is what builds use, so a build does
# not depend on the build host's kernel; CO-RE relocates field offsets at load time on the target.
set -euo pipefail
btf=${1:-/sys/kernel/btf/vmlinux}
out=$(dirname "$0")/../bpf/vmlinux.h
[ -r "$btf" ] || { echo "gen-vmlinux: cannot read $btf (a kernel with CONFIG_DEBUG_INFO_BTF=y is needed)" >&2; exit 1; }
bpftool btf dump file "$btf" format c > "$out.tmp"
mv "$out.tmp" "$out"
echo "gen-vmlinux: wrote $out from $btf"
