#!/usr/bin/env bash
# Installs every build and test dependency of memlens from Debian's packages, only when missing.
# Idempotent: a second run installs nothing and prints one line. Needs root (apt-get) when something is
# missing; without root it says what to install and fails.
set -euo pipefail

# Each package and why it is needed: docs/dependencies.md.
packages=(
  clang llvm                # BPF compiler and llvm-strip for the BPF objects
  libbpf-dev bpftool        # BPF loading library and the skeleton generator
  libelf-dev zlib1g-dev     # ELF symbol tables (libbpf and symbolize/), gzip for pprof
  libdw-dev                 # DWARF call-frame information (.eh_frame) for the unwind tables
  libmnl-dev                # netlink: the target's sockets from the kernel's sock_diag
  libprotobuf-dev protobuf-compiler  # pprof profile.proto: lite runtime and protoc (code generated at build time)
  libfmt-dev                # formatting
  nlohmann-json3-dev        # report.json writer
  libcli11-dev              # command line
  libcpp-httplib-dev        # Prometheus /metrics endpoint
  libgtest-dev libgmock-dev # unit and integration tests
  libbenchmark-dev          # micro-benchmarks of the hot userspace paths
  systemtap-sdt-dev         # <sys/sdt.h> for the USDT test program
  cmake make g++ pkg-config
  wrk                       # loopback HTTP load for benchmarks and scenarios
  procps psmisc             # ps, pkill in test helpers
)

# node and npm are usually on the machine already (possibly not from Debian's archive, whose npm package
# would conflict with such a node): install Debian's only when there is no node at all.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all dependencies present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The package lists may be absent on a fresh machine; refresh them once.
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/memlens-apt.log 2>&1; then
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "install-deps: done"
