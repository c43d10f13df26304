#!/usr/bin/env bash
# Puts the prebuilt addon in place for `npm pack` (run by package.json's prepack; README "Install"):
# prebuilds/linux-x64/crunet.napi.glibc.node (node-gyp-build's prebuildify layout), a copy of
# build/Release/crunet.node, with the libraries it needs that a plain glibc system lacks beside it
# (oneDNN's libdnnl.so.2, its libOpenCL.so.1, OpenMP's libgomp.so.1, and Gloo's libgloo.so.0 with the
# libraries Debian's Gloo links: hiredis, ibverbs, libnl; copied from this machine's Debian packages),
# their copyright files in licenses/, and RUNPATH $ORIGIN in the addon and in each bundled library that
# needs another (RUNPATH is not inherited: libdnnl finds libgomp/libOpenCL, libgloo its own, through theirs).
# The addon must be up to date with the sources (same test as scripts/setup.sh), so the package holds
# what this commit builds. Needs patchelf (apt-get install patchelf).
set -euo pipefail
cd "$(dirname "$0")/.."

addon=build/Release/crunet.node
out=prebuilds/linux-x64
libs=(libdnnl.so.2 libgomp.so.1 libOpenCL.so.1 libgloo.so.0 libhiredis.so.0.14 libibverbs.so.1 libnl-route-3.so.200 libnl-3.so.200)  # lib/engine/platform.ts PREBUILT.bundled
with_deps=(libdnnl.so.2 libgloo.so.0 libibverbs.so.1 libnl-route-3.so.200)  # bundled libraries that load others of the list
fail() { echo "prebuild: $*" >&2; exit 1; }

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || fail "the prebuilt addon is made on linux-x64 only, this is $(uname -s)-$(uname -m)"
command -v patchelf >/dev/null || fail "patchelf is needed (apt-get install patchelf)"
[ -f "$addon" ] || fail "$addon is missing: run 'npm run build:native' first"
stale=$(find native CMakeLists.txt binding.gyp sources.json -type f -newer "$addon" -print -quit)
[ -z "$stale" ] || fail "$addon is older than $stale: run 'npm run build:native' so the package holds this commit's addon"

rm -rf "$out"
mkdir -p "$out/licenses"
cp "$addon" "$out/crunet.napi.glibc.node"
for lib in "${libs[@]}"; do
  # Where this machine's loader finds it for the addon (ldd resolves transitive dependencies too).
  src=$(ldd "$addon" | awk -v l="$lib" '$1 == l { print $3 }')
  [ -n "$src" ] && [ -f "$src" ] || fail "$lib: not found by the loader for $addon (install libdnnl-dev and libgloo-dev, then npm run build:native)"
  cp -L "$src" "$out/$lib"
  # Under usrmerge a file may be registered under /lib only: then its own path is looked up.
  pkg=$(dpkg -S "$(readlink -f "$src")" 2>/dev/null | cut -d: -f1 | head -1 || true)
  [ -n "$pkg" ] || pkg=$(dpkg -S "$src" | cut -d: -f1 | head -1)
  cp "/usr/share/doc/$pkg/copyright" "$out/licenses/$pkg.copyright"
  echo "$lib $(dpkg-query -W -f '${Package} ${Version}' "$pkg")" >>"$out/licenses/BUNDLED"
done
# The Debian copyright files name these licenses by reference.
cp /usr/share/common-licenses/Apache-2.0 /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/GPL-2 /usr/share/common-licenses/LGPL-2.1 "$out/licenses/"
# Provenance: the commit the addon was built from (and whether the native sources differed from it).
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain -- native CMakeLists.txt binding.gyp sources.json 2>/dev/null)" ] || commit="$commit, with uncommitted native changes"
echo "crunet $(node -p "require('./package.json').version"), addon built from commit $commit on $(date -u +%F)" >"$out/BUILD"
patchelf --set-rpath '$ORIGIN' "$out/crunet.napi.glibc.node"
for lib in "${with_deps[@]}"; do patchelf --set-rpath '$ORIGIN' "$out/$lib"; done
chmod 755 "$out"/*.so.* "$out"/*.node

# Checks: RUNPATH (not RPATH) is $ORIGIN, and with an empty environment the loader takes every bundled
# library from $out, not from the system.
for f in "$out/crunet.napi.glibc.node" "${with_deps[@]/#/$out/}"; do
  readelf -d "$f" | grep -q 'RUNPATH.*\[\$ORIGIN\]' || fail "$f: RUNPATH is not \$ORIGIN: $(readelf -d "$f" | grep -E 'R(UN)?PATH')"
done
resolved=$(env -i ldd "$out/crunet.napi.glibc.node")
for lib in "${libs[@]}"; do
  echo "$resolved" | grep -q "$lib => $(realpath "$out")/$lib" || fail "$lib does not resolve to $out: $resolved"
done
echo "prebuild: $out: $(du -sh "$out" | cut -f1) ($(cd "$out" && ls *.node *.so.* | tr '\n' ' '))"
